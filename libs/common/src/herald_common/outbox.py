"""The transactional outbox: jobs are committed with the state change that needs them.

Whoever writes rows publishes them right after the commit and deletes them (the fast path);
the scheduler's relay publishes whatever a crash left behind. A job can therefore reach the
broker twice, never zero times; senders tolerate duplicates (see ``plan_delivery``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiormq.exceptions import ChannelNotFoundEntity, PublishError
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from herald_common.broker import Outgoing, Publisher
from herald_common.models import Outbox


async def add_to_outbox(conn: AsyncConnection, items: Sequence[Outgoing]) -> list[int]:
    """Insert in the caller's transaction; returns the row ids for ``publish_written``."""
    if not items:
        return []
    result = await conn.execute(
        text(
            """
            INSERT INTO outbox (exchange, routing_key, body, headers, expiration_ms)
            SELECT e, k, b, CAST(h AS jsonb), x FROM unnest(
                CAST(:exchanges AS varchar[]), CAST(:keys AS varchar[]),
                CAST(:bodies AS bytea[]), CAST(:headers AS text[]), CAST(:expirations AS int[])
            ) AS u(e, k, b, h, x)
            RETURNING id
            """
        ),
        {
            "exchanges": [i.exchange for i in items],
            "keys": [i.routing_key for i in items],
            "bodies": [i.body for i in items],
            "headers": [_json(i.headers) for i in items],
            "expirations": [i.expiration_ms for i in items],
        },
    )
    return list(result.scalars())


def _json(headers: dict[str, object]) -> str:
    return json.dumps(headers, separators=(",", ":"), default=str)


async def publish_written(
    engine: AsyncEngine, publisher: Publisher, ids: Sequence[int], items: Sequence[Outgoing]
) -> None:
    """The fast path, after the writer's commit: publish what it wrote, then forget the rows.

    If publishing fails the rows stay, and the relay retries them later.
    """
    if not ids:
        return
    await publisher.publish_all(items)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM outbox WHERE id = ANY(:ids)"), {"ids": list(ids)})


# A row the broker refused this many times (it cannot route it) is quarantined.
MAX_REFUSALS = 10


@dataclass(frozen=True, slots=True)
class Relayed:
    """One relay pass: rows published (and deleted), rows that failed, rows quarantined."""

    published: int = 0
    failed: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    error: str | None = None  # the first failure, for the log


@dataclass(frozen=True, slots=True)
class Quarantined:
    id: int
    exchange: str
    routing_key: str
    error: str


def refused_by_broker(error: BaseException) -> bool:
    """The broker answered and will not take this message (unroutable, or no such exchange),
    as opposed to a broker that is away, blocked or slow, which every row would meet."""
    return isinstance(error, PublishError | ChannelNotFoundEntity)


async def relay_stale(
    engine: AsyncEngine,
    publisher: Publisher,
    older_than: timedelta,
    limit: int = 500,
    max_refusals: int = MAX_REFUSALS,
) -> Relayed:
    """Publish rows their writer did not (it crashed, or the broker was away).

    Row by row: every row the broker confirmed is deleted, whatever happened to the others,
    so one bad row neither blocks the rows behind it nor gets them published again each
    pass. A row the broker refuses counts a refusal; at ``max_refusals`` it is quarantined
    (``quarantined_at``), left for a human, and no longer relayed.
    """
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                text(
                    """
                    SELECT id, exchange, routing_key, body, headers, expiration_ms FROM outbox
                    WHERE created_at < now() - :age AND quarantined_at IS NULL
                    ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
                    """
                ),
                {"age": older_than, "limit": limit},
            )
        ).all()
        if not rows:
            return Relayed()
        results = await asyncio.gather(
            *(
                publisher.publish(
                    Outgoing(r.exchange, r.routing_key, bytes(r.body), r.headers, r.expiration_ms)
                )
                for r in rows
            ),
            return_exceptions=True,
        )
        published = [r.id for r, result in zip(rows, results, strict=True) if result is None]
        failures = [
            (r, result)
            for r, result in zip(rows, results, strict=True)
            if isinstance(result, BaseException)
        ]
        if published:
            await conn.execute(text("DELETE FROM outbox WHERE id = ANY(:ids)"), {"ids": published})
        quarantined = await _note_failures(conn, failures, max_refusals)
    first = repr(failures[0][1]) if failures else None
    return Relayed(len(published), len(failures), quarantined, first)


async def _note_failures(
    conn: AsyncConnection, failures: Sequence[tuple[Any, BaseException]], max_refusals: int
) -> list[Quarantined]:
    if not failures:
        return []
    rows = await conn.execute(
        text(
            """
            UPDATE outbox o SET
                attempts = o.attempts + v.refused,
                last_error = v.error,
                quarantined_at = CASE WHEN o.attempts + v.refused >= :max THEN now() END
            FROM unnest(CAST(:ids AS bigint[]), CAST(:refused AS int[]), CAST(:errors AS text[]))
                AS v(id, refused, error)
            WHERE o.id = v.id
            RETURNING o.id, o.exchange, o.routing_key, o.last_error,
                      o.quarantined_at IS NOT NULL AS quarantined
            """
        ),
        {
            "ids": [row.id for row, _ in failures],
            "refused": [int(refused_by_broker(error)) for _, error in failures],
            "errors": [repr(error)[:500] for _, error in failures],
            "max": max_refusals,
        },
    )
    return [
        Quarantined(r.id, r.exchange, r.routing_key, r.last_error) for r in rows if r.quarantined
    ]


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    waiting: int  # rows the relay will publish
    quarantined: int  # rows the broker kept refusing, left for a human


async def outbox_backlog(conn: AsyncConnection) -> OutboxBacklog:
    quarantined = Outbox.quarantined_at.is_not(None)
    row = (
        await conn.execute(
            select(
                func.count().filter(~quarantined).label("waiting"),
                func.count().filter(quarantined).label("quarantined"),
            )
        )
    ).one()
    return OutboxBacklog(int(row.waiting), int(row.quarantined))
