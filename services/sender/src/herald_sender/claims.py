"""Claiming a job's messages: read them with their mailing and client, decide, write it down.

One transaction per job, no matter how many messages: it locks the rows (in id order, so
concurrent claims cannot deadlock), applies every decision in a single UPDATE and commits
before any provider call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from herald_common.rules.delivery import (
    STATUS_OF,
    Action,
    Decision,
    MessageSnapshot,
    plan_delivery,
)
from herald_common.rules.windows import SendWindow
from herald_common.statuses import MessageStatus


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message this sender now owns, with what the provider call needs."""

    id: int
    mailing_id: int
    client_id: int
    attempts: int  # including the attempt about to be made; fences the outcome write
    phone: str
    text: str
    timezone: str
    ends_at: datetime
    window: SendWindow | None


@dataclass(frozen=True, slots=True)
class Settled:
    """A message decided without a provider call (skipped, cancelled, expired, deferred…)."""

    id: int
    mailing_id: int
    client_id: int
    decision: Decision


_SELECT = text(
    """
    SELECT m.id, m.mailing_id, m.client_id, m.status, m.attempts, m.lease_until,
           c.phone, c.timezone, c.deleted_at IS NOT NULL AS client_deleted,
           ml.text, ml.ends_at, ml.window_start, ml.window_end,
           ml.deleted_at IS NOT NULL AS mailing_deleted,
           ml.paused_at IS NOT NULL AS mailing_paused
    FROM message m
    JOIN client c ON c.id = m.client_id
    JOIN mailing ml ON ml.id = m.mailing_id
    WHERE m.id = ANY(:ids)
    ORDER BY m.id
    FOR UPDATE OF m
    """
)

_APPLY = text(
    """
    UPDATE message m SET
        status = v.status,
        attempts = m.attempts + v.increment,
        lease_until = v.lease_until,
        next_attempt_at = v.next_attempt_at,
        last_error = coalesce(v.reason, m.last_error),
        updated_at = now()
    FROM unnest(
        CAST(:ids AS bigint[]), CAST(:statuses AS varchar[]), CAST(:increments AS int[]),
        CAST(:leases AS timestamptz[]), CAST(:nexts AS timestamptz[]), CAST(:reasons AS text[])
    ) AS v(id, status, increment, lease_until, next_attempt_at, reason)
    WHERE m.id = v.id
    """
)


async def claim(
    conn: AsyncConnection,
    message_ids: list[int],
    now: datetime,
    *,
    lease: timedelta,
    guard: timedelta,
    max_attempts: int,
) -> tuple[list[Claimed], list[Settled]]:
    rows = (await conn.execute(_SELECT, {"ids": message_ids})).all()
    claimed: list[Claimed] = []
    settled: list[Settled] = []
    updates: list[tuple[int, str, int, datetime | None, datetime | None, str | None]] = []
    for r in rows:
        window = SendWindow(r.window_start, r.window_end) if r.window_start is not None else None
        snapshot = MessageSnapshot(
            status=r.status,
            attempts=r.attempts,
            lease_until=r.lease_until,
            mailing_deleted=r.mailing_deleted,
            client_deleted=r.client_deleted,
            ends_at=r.ends_at,
            window=window,
            timezone=r.timezone,
            mailing_paused=r.mailing_paused,
        )
        decision = plan_delivery(snapshot, now, guard, max_attempts)
        if decision.action == Action.SEND:
            updates.append((r.id, MessageStatus.SENDING, 1, now + lease, None, None))
            claimed.append(
                Claimed(
                    r.id,
                    r.mailing_id,
                    r.client_id,
                    r.attempts + 1,
                    r.phone,
                    r.text,
                    r.timezone,
                    r.ends_at,
                    window,
                )
            )
            continue
        settled.append(Settled(r.id, r.mailing_id, r.client_id, decision))
        if decision.action != Action.SKIP:
            status = STATUS_OF[decision.action]
            updates.append((r.id, status, 0, None, decision.until, decision.reason))
    if updates:
        columns = list(zip(*updates, strict=True))
        await conn.execute(
            _APPLY,
            {
                "ids": list(columns[0]),
                "statuses": [str(s) for s in columns[1]],
                "increments": list(columns[2]),
                "leases": list(columns[3]),
                "nexts": list(columns[4]),
                "reasons": list(columns[5]),
            },
        )
    return claimed, settled
