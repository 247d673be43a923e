"""The scheduler's statements; each runs inside the caller's transaction.

They are built from the table modules' predicates (``herald_common.tables``): what makes a
mailing due, ended or settled, or a client part of an audience, is said there once.

Fan-out is set-based: one INSERT … SELECT per chunk of clients (a range of client ids), so that
a crash resumes from ``fanout_cursor`` and ``ON CONFLICT DO NOTHING`` absorbs any overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    Interval,
    Select,
    and_,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from herald_common.models import (
    IDEMPOTENCY_KEEP_HOURS,
    Client,
    IdempotencyKey,
    Mailing,
    MailingMessageCount,
    MailingProgress,
    Message,
)
from herald_common.outbox import OutboxBacklog, outbox_backlog
from herald_common.rules.delivery import CLAIMABLE
from herald_common.statuses import MessageStatus
from herald_common.tables import client, mailing, message, message_count

NOW = func.now()
# A mailing whose start passed this long ago and that has not started is overdue (a gauge).
OVERDUE_AFTER = timedelta(minutes=1)
# How long progress samples are kept: rates look one minute back, the dashboard fifteen.
PROGRESS_KEPT = timedelta(minutes=15)
# A mailing finished this recently still gets its final count sampled.
PROGRESS_AFTER_FINISH = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class DueMailing:
    id: int
    starts_at: datetime
    fanout_cursor: int
    operator_codes: list[str]
    tags: list[str]
    started: bool


@dataclass(frozen=True, slots=True)
class ClientRange:
    """Matching clients with ``after < id <= last``, whose messages one transaction creates."""

    after: int
    last: int


@dataclass(frozen=True, slots=True)
class FanOutStep:
    ranges: list[ClientRange]
    cursor: int | None  # the new fanout_cursor (None: no client left)
    done: bool


class Requeued(NamedTuple):
    """A message given back to ``pending``, for a new delivery job."""

    message_id: int
    mailing_id: int


def by_mailing(requeued: Sequence[Requeued]) -> dict[int, list[int]]:
    """Mailing id → its message ids (a delivery job holds messages of one mailing)."""
    grouped: dict[int, list[int]] = {}
    for one in requeued:
        grouped.setdefault(one.mailing_id, []).append(one.message_id)
    return grouped


async def lock_due_mailing(
    conn: AsyncConnection, held_back: Sequence[int] = ()
) -> DueMailing | None:
    """The earliest due mailing whose fan-out is unfinished, locked; other replicas skip it.
    ``held_back``: mailings whose fan-out just failed, which wait their turn.

    ``NO KEY UPDATE``: the lock must not block the foreign-key checks of the transactions
    that insert the mailing's messages meanwhile (they take ``KEY SHARE``).
    """
    query = (
        select(
            Mailing.id,
            Mailing.starts_at,
            Mailing.fanout_cursor,
            Mailing.filter_operator_codes.label("operator_codes"),
            Mailing.filter_tags.label("tags"),
            Mailing.started_at.is_not(None).label("started"),
        )
        .where(mailing.is_due(NOW))
        .order_by(Mailing.starts_at, Mailing.id)
        .limit(1)
        .with_for_update(key_share=True, skip_locked=True)
    )
    if held_back:
        query = query.where(Mailing.id.not_in(list(held_back)))
    row = (await conn.execute(query)).first()
    return None if row is None else DueMailing(**row._mapping)


async def plan_fan_out_step(
    conn: AsyncConnection, due: DueMailing, size: int, parallel: int
) -> FanOutStep:
    """Split the next ``parallel`` chunks of ``size`` matching clients into id ranges."""
    next_clients = (
        select(Client.id)
        .where(Client.id > due.fanout_cursor, client.in_audience(due.operator_codes, due.tags))
        .order_by(Client.id)
        .limit(size * parallel)
        .subquery("next_clients")
    )
    numbered = select(
        next_clients.c.id, func.row_number().over(order_by=next_clients.c.id).label("n")
    ).subquery("numbered")
    row = (
        await conn.execute(
            select(
                func.count().label("clients"),
                func.max(numbered.c.id).label("last"),
                func.array_agg(aggregate_order_by(numbered.c.id, numbered.c.id))
                .filter(numbered.c.n % size == 0)
                .label("bounds"),
            )
        )
    ).one()
    count, last, bounds = int(row.clients), row.last, list(row.bounds or [])
    if count == 0:
        return FanOutStep([], None, True)
    if not bounds or bounds[-1] != last:
        bounds.append(last)
    ranges = []
    after = due.fanout_cursor
    for bound in bounds:
        ranges.append(ClientRange(after, bound))
        after = bound
    return FanOutStep(ranges, last, count < size * parallel)


async def create_messages(
    conn: AsyncConnection, due: DueMailing, clients: ClientRange
) -> list[int]:
    """Messages for the matching clients in ``clients``; ids of those created (a redo after
    a crash finds most of them there already: ``ON CONFLICT DO NOTHING``)."""
    created = (
        insert(Message)
        .from_select(
            [Message.mailing_id, Message.client_id, Message.status],
            select(
                literal(due.id, BigInteger), Client.id, literal(MessageStatus.PENDING.value)
            ).where(
                Client.id > clients.after,
                Client.id <= clients.last,
                client.in_audience(due.operator_codes, due.tags),
            ),
        )
        .on_conflict_do_nothing(index_elements=[Message.mailing_id, Message.client_id])
        .returning(Message.id)
        .cte("created")
    )
    ids = await conn.scalar(select(func.array_agg(aggregate_order_by(created.c.id, created.c.id))))
    return list(ids or [])


async def advance_fan_out(conn: AsyncConnection, due: DueMailing, step: FanOutStep) -> None:
    """Move the cursor past the ranges whose messages are committed; mark the start and end."""
    values: dict[str, object] = {"fanout_done_at": NOW if step.done else None}
    if step.cursor is not None:
        values["fanout_cursor"] = step.cursor
    if not due.started:
        values["started_at"] = NOW
    await conn.execute(update(Mailing).where(Mailing.id == due.id).values(**values))
    if not due.started:
        # "Nothing settled yet" is the mailing's first progress sample: rates and the
        # dashboard's per-minute chart then count from the real start, also for a mailing
        # that is over before the next periodic sample. (``due`` was read under the lock.)
        await conn.execute(
            insert(MailingProgress)
            .values(mailing_id=due.id, sampled_at=NOW, done=0)
            .on_conflict_do_nothing()
        )


async def _requeue(conn: AsyncConnection, chosen: Select[int], **values: object) -> list[Requeued]:
    """The ``chosen`` messages (locked, SKIP LOCKED) go back to ``pending``."""
    rows = await conn.execute(
        update(Message)
        .where(Message.id.in_(chosen.with_for_update(skip_locked=True).scalar_subquery()))
        .values(status=MessageStatus.PENDING, updated_at=NOW, **values)
        .returning(Message.id, Message.mailing_id)
    )
    return [Requeued(row.id, row.mailing_id) for row in rows]


async def requeue_deferred(conn: AsyncConnection, limit: int) -> list[Requeued]:
    """Deferred messages whose window has opened go back to ``pending``."""
    opened = (
        select(Message.id)
        .where(Message.status == MessageStatus.DEFERRED, Message.next_attempt_at <= NOW)
        .order_by(Message.next_attempt_at)
        .limit(limit)
    )
    return await _requeue(conn, opened, next_attempt_at=None)


async def recover_expired_leases(conn: AsyncConnection, limit: int) -> list[Requeued]:
    """Messages a sender claimed and never settled (it died): back to ``pending``.

    The provider may have seen them: this is the at-least-once case of rule 4.
    """
    orphaned = (
        select(Message.id)
        .where(Message.status == MessageStatus.SENDING, Message.lease_until < NOW)
        .order_by(Message.lease_until)
        .limit(limit)
    )
    return await _requeue(
        conn,
        orphaned,
        lease_until=None,
        last_error="the sender handling it stopped; sending again",
    )


async def requeue_lost_jobs(
    conn: AsyncConnection, limit: int, stale_after: timedelta
) -> list[Requeued]:
    """Messages whose delivery job is gone (a purged queue, a broker that lost its data) get
    one again: ``pending`` ones unchanged for ``stale_after``, and ``retrying`` ones that
    many seconds past their ``next_attempt_at`` beyond the lateness a retry queue allows.

    A retry job's delay is at least 3/4 of its queue's TTL and a queue expires from its head,
    so a job can come back at most a third of its delay late: ``(next_attempt_at -
    updated_at) / 3``. Both become ``pending`` with ``updated_at = now()``, so a message gets
    at most one new job per ``stale_after``. Call this only when the delivery queue holds no
    ready job: otherwise a message may just be waiting its turn behind a backlog, and a second
    job per message would only grow it. Duplicate jobs are harmless (the claim skips a
    message that is no longer claimable). Paused, deleted and ended mailings are left to
    their own sweeps.
    """
    # The delivering mailings first (a few rows, on ix_mailing_unfinished), then their
    # messages on ix_message_mailing_id_status: no index of its own, which every fan-out
    # insert would have to maintain for a sweep that runs only when the queue is empty.
    delivering = list(
        (await conn.execute(select(Mailing.id).where(mailing.is_delivering(NOW)))).scalars()
    )
    if not delivering:
        return []
    pending_stale = and_(
        Message.status == MessageStatus.PENDING, Message.updated_at < NOW - stale_after
    )
    retry_delay = (Message.next_attempt_at - Message.updated_at).self_group()
    retry_lost = and_(
        Message.status == MessageStatus.RETRYING,
        Message.next_attempt_at < NOW - stale_after - retry_delay.op("/", return_type=Interval)(3),
    )
    lost = (
        select(Message.id)
        .where(
            Message.mailing_id.in_(delivering),
            Message.status.in_(sorted(CLAIMABLE)),
            or_(pending_stale, retry_lost),
        )
        .limit(limit)
    )
    return await _requeue(conn, lost, next_attempt_at=None)


async def expire_ended(conn: AsyncConnection, limit: int) -> int:
    """Idle messages of mailings whose end has passed become ``expired``. Returns a count.

    The end decides, whatever ``finished_at`` says: the mailings are those past their end
    whose counters still show idle messages (a partial index holds just the idle counter
    rows, which only unfinished mailings have). They are looked up first: a single statement
    joining them to ``message`` let the planner walk the whole message table in id order
    every second, looking for rows that are almost never there.
    """
    ended = list(
        (
            await conn.execute(
                select(MailingMessageCount.mailing_id)
                .join(Mailing, Mailing.id == MailingMessageCount.mailing_id)
                .where(message_count.is_idle(), mailing.is_past_end(NOW))
                .group_by(MailingMessageCount.mailing_id)
                .having(func.sum(MailingMessageCount.count) > 0)
            )
        ).scalars()
    )
    if not ended:
        return 0
    idle = (
        select(Message.id)
        .where(Message.mailing_id.in_(ended), message.is_idle())
        .order_by(Message.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await conn.execute(
        update(Message)
        .where(Message.id.in_(idle.scalar_subquery()))
        .values(
            status=MessageStatus.EXPIRED,
            updated_at=NOW,
            next_attempt_at=None,
            last_error=func.coalesce(Message.last_error + "; ", "") + "the mailing ended first",
        )
    )
    return int(result.rowcount)


async def finish_settled(conn: AsyncConnection) -> list[int]:
    """Mark finished the mailings with nothing left to do: ended, deleted or fanned out, and
    with every message settled (``tables.mailing.may_finish``).

    In two statements. The first locks the candidates (``SKIP LOCKED``: a mailing that
    retry-failed, pause or resume holds right now is left for the next round). The second
    counts again and marks: it runs on a snapshot taken after the locks were granted, so it
    sees what a retry-failed that committed meanwhile moved out of ``failed``. A single
    UPDATE re-checks a row changed under it against its own older snapshot of the counters,
    and could finish a mailing that had just been given work again.
    """
    candidates = list(
        (
            await conn.execute(
                select(Mailing.id)
                .where(mailing.may_finish(NOW))
                .order_by(Mailing.id)
                .with_for_update(key_share=True, skip_locked=True)
            )
        ).scalars()
    )
    if not candidates:
        return []
    rows = await conn.execute(
        update(Mailing)
        .where(Mailing.id.in_(candidates), Mailing.finished_at.is_(None), mailing.is_settled())
        .values(finished_at=NOW)
        .returning(Mailing.id)
    )
    return sorted(rows.scalars())


@dataclass(frozen=True, slots=True)
class Pruned:
    mailing_id: int
    messages: int
    done: bool  # the mailing has no message rows left


async def prune_finished_messages(conn: AsyncConnection, days: int, batch: int) -> Pruned | None:
    """Retention: delete up to ``batch`` message rows of the oldest mailing finished, and
    ended, more than ``days`` days ago; its counters (folded when it finished) are left as
    they are, so its statistics stay exact. Marks it ``messages_pruned_at`` once empty."""
    mailing_id = await conn.scalar(
        select(Mailing.id)
        .where(
            Mailing.messages_pruned_at.is_(None),
            Mailing.finished_at < NOW - timedelta(days=days),
            mailing.is_past_end(NOW),
        )
        .order_by(Mailing.finished_at, Mailing.id)
        .limit(1)
        .with_for_update(key_share=True, skip_locked=True)
    )
    if mailing_id is None:
        return None
    await message_count.keep_counts_in_this_transaction(conn)
    deleted = (
        await conn.execute(
            delete(Message).where(
                Message.id.in_(
                    select(Message.id)
                    .where(Message.mailing_id == mailing_id)
                    .limit(batch)
                    .scalar_subquery()
                )
            )
        )
    ).rowcount
    done = deleted < batch
    if done:
        await conn.execute(
            update(Mailing).where(Mailing.id == mailing_id).values(messages_pruned_at=NOW)
        )
    return Pruned(mailing_id, int(deleted), done)


async def prune_idempotency_keys(
    conn: AsyncConnection, keep_hours: int = IDEMPOTENCY_KEEP_HOURS
) -> int:
    """Forget the API's idempotency keys once a retry of their request is no longer expected."""
    result = await conn.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < NOW - timedelta(hours=keep_hours))
    )
    return int(result.rowcount)


@dataclass(frozen=True, slots=True)
class Overview:
    """What the scheduler's gauges show."""

    mailings: dict[str, int]
    overdue: int
    active_messages: dict[str, int]
    outbox: OutboxBacklog


async def overview(conn: AsyncConnection) -> Overview:
    by_state = await mailing.count_by_state(conn, NOW)
    overdue = await conn.scalar(
        select(func.count()).where(mailing.is_live(), mailing.is_overdue(NOW, OVERDUE_AFTER))
    )
    active = await conn.execute(
        select(MailingMessageCount.status, func.sum(MailingMessageCount.count).label("messages"))
        .join(Mailing, Mailing.id == MailingMessageCount.mailing_id)
        .where(Mailing.finished_at.is_(None))
        .group_by(MailingMessageCount.status)
    )
    return Overview(
        mailings=by_state,
        overdue=int(overdue or 0),
        active_messages={row.status: int(row.messages) for row in active},
        outbox=await outbox_backlog(conn),
    )


async def sample_progress(conn: AsyncConnection) -> None:
    """Record how many messages each running mailing has settled, for its current rate; a
    mailing finished in the last minute gets its final count in too."""
    settled = func.sum(MailingMessageCount.count).filter(message_count.is_settled())
    await conn.execute(
        insert(MailingProgress)
        .from_select(
            [MailingProgress.mailing_id, MailingProgress.sampled_at, MailingProgress.done],
            select(Mailing.id, NOW, func.coalesce(settled, 0))
            .select_from(Mailing)
            .outerjoin(MailingMessageCount, MailingMessageCount.mailing_id == Mailing.id)
            .where(
                or_(
                    Mailing.finished_at.is_(None),
                    Mailing.finished_at > NOW - PROGRESS_AFTER_FINISH,
                ),
                Mailing.started_at.is_not(None),
                mailing.is_live(),
            )
            .group_by(Mailing.id),
        )
        .on_conflict_do_nothing()
    )
    await conn.execute(
        delete(MailingProgress).where(MailingProgress.sampled_at < NOW - PROGRESS_KEPT)
    )


async def next_start_in_s(conn: AsyncConnection) -> float | None:
    """Seconds until the next not-yet-due mailing starts, to sleep exactly that long."""
    value = await conn.scalar(
        select(func.extract("epoch", func.min(Mailing.starts_at) - NOW)).where(
            mailing.is_upcoming(NOW)
        )
    )
    return float(value) if value is not None else None
