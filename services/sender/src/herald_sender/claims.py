"""Claiming a job's messages: read them with their mailing and client, decide, write it down.

One transaction per job, no matter how many messages: it locks the rows (in id order, so
concurrent claims cannot deadlock), applies every decision in a single UPDATE and commits
before any provider call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Text,
    any_,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from herald_common.db import array_rows
from herald_common.models import TZ, Client, Mailing, Message
from herald_common.rules.delivery import (
    STATUS_OF,
    Action,
    Decision,
    MessageSnapshot,
    plan_delivery,
)
from herald_common.rules.windows import SendWindow
from herald_common.statuses import MessageStatus
from herald_common.tables import client, mailing


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


_SELECT = (
    select(
        Message.id,
        Message.mailing_id,
        Message.client_id,
        Message.status,
        Message.attempts,
        Message.lease_until,
        Client.phone,
        Client.timezone,
        (~client.is_live()).label("client_deleted"),
        Mailing.text,
        Mailing.ends_at,
        Mailing.window_start,
        Mailing.window_end,
        (~mailing.is_live()).label("mailing_deleted"),
        mailing.is_paused().label("mailing_paused"),
    )
    .join(Client, Client.id == Message.client_id)
    .join(Mailing, Mailing.id == Message.mailing_id)
    .where(Message.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
    .order_by(Message.id)
    .with_for_update(of=Message)
)

# Every decision of a job in one UPDATE: the columns come in as arrays, one element a message.
_DECIDED = array_rows(
    "v",
    id=("ids", BigInteger()),
    status=("statuses", String()),
    increment=("increments", Integer()),
    lease_until=("leases", TZ),
    next_attempt_at=("nexts", TZ),
    reason=("reasons", Text()),
)
_APPLY = (
    update(Message)
    .where(Message.id == _DECIDED.c.id)
    .values(
        status=_DECIDED.c.status,
        attempts=Message.attempts + _DECIDED.c.increment,
        lease_until=_DECIDED.c.lease_until,
        next_attempt_at=_DECIDED.c.next_attempt_at,
        last_error=func.coalesce(_DECIDED.c.reason, Message.last_error),
        updated_at=func.now(),
    )
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
    # _APPLY's parameters, one array per column, one element per message changed.
    changes: dict[str, list[Any]] = {
        key: [] for key in ("ids", "statuses", "increments", "leases", "nexts", "reasons")
    }

    def change(
        message_id: int,
        status: MessageStatus,
        increment: int,
        lease_until: datetime | None,
        next_attempt_at: datetime | None,
        reason: str | None,
    ) -> None:
        changes["ids"].append(message_id)
        changes["statuses"].append(str(status))
        changes["increments"].append(increment)
        changes["leases"].append(lease_until)
        changes["nexts"].append(next_attempt_at)
        changes["reasons"].append(reason)

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
            change(r.id, MessageStatus.SENDING, 1, now + lease, None, None)
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
            change(r.id, status, 0, None, decision.until, decision.reason)
    if changes["ids"]:
        await conn.execute(_APPLY, changes)
    return claimed, settled
