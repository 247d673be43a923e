"""Fixtures shared by every test tier: a migrated database, clean tables, broker vhosts."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.db import create_engine
from herald_common.migrate import upgrade
from herald_devstack.admin import DatabaseAdmin

pytest_plugins = ["herald_devstack.pytest_plugin"]

TABLES = (
    "mailing_progress, mailing_message_count, outbox, message, mailing, client, idempotency_key, "
    "daily_report, admin_session"
)


@pytest.fixture
def no_herald_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """No HERALD_* variable of the machine running the tests reaches the settings a test reads.

    Cleared on entry; the returned function clears again, for a test that reads one set of
    settings after another."""

    def clear() -> None:
        for name in list(os.environ):
            if name.upper().startswith("HERALD_"):
                monkeypatch.delenv(name)

    clear()
    return clear


@pytest.fixture(scope="session")
def migrated_db_url(postgres_server: DatabaseAdmin) -> str:
    """One database for the session, migrated once with the real migrations."""
    name = f"herald_test_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(name)
    url = postgres_server.url(name)
    upgrade(url)
    return url


@pytest.fixture
async def engine(migrated_db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_db_url, pool_size=5)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def clean_engine(engine: AsyncEngine) -> AsyncEngine:
    """An engine on empty tables, for tests of code that commits on its own."""
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        await conn.execute(text("UPDATE provider_throttle SET tat = now(), paused_until = NULL"))
    return engine


@pytest.fixture
def amqp_url(fresh_vhost: str) -> str:
    """A fresh vhost per test (the devstack plugin's), so queues never leak between tests."""
    return fresh_vhost
