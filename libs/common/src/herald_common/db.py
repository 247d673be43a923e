"""Async SQLAlchemy engine over psycopg 3, and retrying of transactions that lost a race."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from herald_common.settings import HeraldSettings, to_sqlalchemy_url

T = TypeVar("T")

# serialization_failure, deadlock_detected: PostgreSQL rolled back, running again is correct.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def create_engine(
    settings: HeraldSettings | str, pool_size: int | None = None, *, pre_ping: bool = True
) -> AsyncEngine:
    """``pre_ping`` costs a round trip per checkout; workers that retry or requeue any
    transaction that fails on a dead connection turn it off (SQLAlchemy then drops the whole
    pool at the first disconnect error, so a database restart costs one failed attempt)."""
    url = settings if isinstance(settings, str) else settings.sqlalchemy_url
    size = pool_size or (10 if isinstance(settings, str) else settings.db_pool_size)
    return create_async_engine(
        to_sqlalchemy_url(url),
        pool_size=size,
        max_overflow=size,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        # Every timestamp leaves PostgreSQL in UTC, whatever the server default.
        connect_args={"options": "-c timezone=UTC"},
    )


def is_retryable(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


async def with_retries(work: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """Run a whole transaction again when PostgreSQL aborted it for a deadlock or serialization."""
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except DBAPIError as error:
            if attempt == attempts or not is_retryable(error):
                raise
            await asyncio.sleep(0.01 * attempt)
    raise AssertionError("unreachable")
