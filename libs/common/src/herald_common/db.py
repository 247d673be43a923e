"""Async SQLAlchemy engine over psycopg 3, and retrying of transactions that lost a race."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import bindparam, column, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import TypeEngine

from herald_common.settings import HeraldSettings

T = TypeVar("T")

# serialization_failure, deadlock_detected: PostgreSQL rolled back, running again is correct.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


# A peer that vanished without closing (a node lost, a cable pulled) is noticed within
# idle + interval × count seconds, instead of the kernel's two hours.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def create_engine(
    settings: HeraldSettings | str, pool_size: int | None = None, *, pre_ping: bool = True
) -> AsyncEngine:
    """``pre_ping`` costs a round trip per checkout; workers that retry or requeue any
    transaction that fails on a dead connection turn it off (SQLAlchemy then drops the whole
    pool at the first disconnect error, so a database restart costs one failed attempt).

    Every connection has a connect timeout, a statement timeout and TCP keepalives, and a
    checkout waits a bounded time: a database that hangs rather than refuses is an error
    after a known time, never a worker stuck for good.

    Statement parameters are phones and mailing texts, personal data: they never appear in
    an error's text nor in SQLAlchemy's log lines (``hide_parameters``).
    """
    if isinstance(settings, str):
        # A bare URL (tests, tools): every other setting at its default, none read from env.
        settings = HeraldSettings.model_construct(database_url=settings, amqp_url="")
    size = pool_size or settings.db_pool_size
    options = f"-c timezone=UTC -c statement_timeout={settings.db_statement_timeout_ms}"
    return create_async_engine(
        settings.sqlalchemy_url,
        pool_size=size,
        max_overflow=size,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        pool_timeout=settings.db_pool_timeout_s,
        hide_parameters=True,
        # Every timestamp leaves PostgreSQL in UTC, whatever the server default.
        connect_args={
            "options": options,
            "connect_timeout": settings.db_connect_timeout_s,
            **KEEPALIVES,
        },
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


def array_rows(name: str, **columns: tuple[str, TypeEngine[Any]]) -> TableValuedAlias:
    """Rows from array parameters, one element a row: ``unnest(:a, :b) AS name(x, y)``.

    ``columns`` maps each column to its parameter and element type. A batch of any size is
    then one statement of one shape, e.g. the sender's claims and outcomes in one UPDATE."""
    return (
        func.unnest(*(bindparam(param, type_=ARRAY(kind)) for param, kind in columns.values()))
        .table_valued(*(column(col, kind) for col, (_, kind) in columns.items()))
        .render_derived(name=name)
    )
