"""The transactional outbox: jobs are committed with the state change that needs them.

Whoever writes rows publishes them right after the commit and deletes them (the fast path);
the scheduler's relay publishes whatever a crash left behind. A job can therefore reach the
broker twice, never zero times; senders tolerate duplicates (see ``plan_delivery``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from herald_common.broker import Outgoing, Publisher


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
    return [row[0] for row in result]


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


async def relay_stale(
    engine: AsyncEngine, publisher: Publisher, older_than: timedelta, limit: int = 500
) -> int:
    """Publish rows their writer did not (it crashed, or the broker was away). Returns a count."""
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                text(
                    """
                    SELECT id, exchange, routing_key, body, headers, expiration_ms FROM outbox
                    WHERE created_at < now() - :age
                    ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
                    """
                ),
                {"age": older_than, "limit": limit},
            )
        ).all()
        if not rows:
            return 0
        await publisher.publish_all(
            [
                Outgoing(r.exchange, r.routing_key, bytes(r.body), r.headers, r.expiration_ms)
                for r in rows
            ]
        )
        await conn.execute(
            text("DELETE FROM outbox WHERE id = ANY(:ids)"), {"ids": [r.id for r in rows]}
        )
    return len(rows)
