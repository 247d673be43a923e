"""API test fixtures: the real app on a real PostgreSQL (tables emptied per test) and a fresh vhost.

The API commits for real, so isolation comes from truncating the tables before each test, not
from a rolled-back transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import herald_testing.api

# Herald refuses API tokens under 32 characters (herald_common.safety).
TOKEN = "test-token-0123456789abcdef0123456789"


@asynccontextmanager
async def started_app(db_url: str, amqp_url: str, **overrides: Any) -> AsyncIterator[FastAPI]:
    """The real app through its lifespan, connected to the broker; ``overrides`` are settings."""
    async with herald_testing.api.started_app(db_url, amqp_url, TOKEN, **overrides) as app:
        yield app


@pytest.fixture
async def app(
    clean_engine: AsyncEngine, migrated_db_url: str, amqp_url: str
) -> AsyncIterator[FastAPI]:
    async with started_app(migrated_db_url, amqp_url) as app:
        yield app


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that carries the API token."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client without any Authorization header."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://test"
    ) as client:
        yield client


async def insert_message(
    conn: AsyncConnection,
    mailing_id: int,
    client_id: int,
    status: str,
    *,
    sent_at: datetime | None = None,
    next_attempt_at: datetime | None = None,
) -> int:
    message_id = await conn.scalar(
        text(
            """
            INSERT INTO message (mailing_id, client_id, status, sent_at, next_attempt_at)
            VALUES (:m, :c, :s, :sent_at, :next_at)
            RETURNING id
            """
        ),
        {
            "m": mailing_id,
            "c": client_id,
            "s": status,
            "sent_at": sent_at,
            "next_at": next_attempt_at,
        },
    )
    assert message_id is not None
    return int(message_id)


async def insert_messages(
    conn: AsyncConnection, mailing_id: int, client_ids: Sequence[int], statuses: Sequence[str]
) -> list[int]:
    """One message per client, with the statuses given in the same order."""
    assert len(client_ids) == len(statuses)
    return [
        await insert_message(conn, mailing_id, c, s)
        for c, s in zip(client_ids, statuses, strict=True)
    ]


async def count_rows(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(text(f"SELECT count(*) FROM {table}"))
    assert count is not None
    return int(count)


def assert_invalid(response: httpx.Response, *loc_suffix: Any, case: str = "") -> None:
    """A 422 whose first error's location ends with ``loc_suffix`` and that gives a reason."""
    assert response.status_code == 422, f"{case}: {response.status_code} {response.text}"
    error = response.json()["detail"][0]
    assert tuple(error["loc"][-len(loc_suffix) :]) == loc_suffix, f"{case}: {error}"
    assert isinstance(error["msg"], str), f"{case}: {error}"
    assert error["msg"], f"{case}: {error}"
