"""The ``mailing`` table: a mailing's state, whether it is due, ended or settled, and
whether it was active in a window.

A mailing's state is derived from its timestamps, never stored. ``state`` says it of one row
in Python; ``in_state`` and the other predicates say it in SQL for queries over many rows.
Both live here, and tests/tables/test_mailing.py checks on PostgreSQL that they agree case by
case. ``now`` is a parameter: the API passes its own clock to show states and the database's (read
under the row lock) to decide an action, the scheduler ``func.now()`` (its transaction's
time).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from herald_common.models import Mailing, MailingMessageCount
from herald_common.statuses import MailingState
from herald_common.tables import message_count

Now = datetime | ColumnElement[datetime]


def is_past_end_at(now: datetime, ends_at: datetime) -> bool:
    """Its end has come (``is_past_end`` in SQL): nothing may be sent, paused or retried."""
    return now >= ends_at


def state(
    now: datetime,
    starts_at: datetime,
    ends_at: datetime,
    finished_at: datetime | None,
    paused_at: datetime | None = None,
) -> MailingState:
    """The state of one mailing at ``now`` (``in_state`` is the same rule in SQL)."""
    if finished_at is not None or is_past_end_at(now, ends_at):
        return MailingState.FINISHED
    if paused_at is not None:
        return MailingState.PAUSED
    if now < starts_at:
        return MailingState.SCHEDULED
    return MailingState.RUNNING


def is_live() -> ColumnElement[bool]:
    """Not deleted. Deleted mailings keep their rows (and statistics) but do nothing more."""
    return Mailing.deleted_at.is_(None)


def is_paused() -> ColumnElement[bool]:
    """Paused by an operator (shown as paused only until its end: ``in_state``)."""
    return Mailing.paused_at.is_not(None)


def is_past_end(now: Now) -> ColumnElement[bool]:
    """Its end has come: no message may be sent any more, whatever ``finished_at`` says."""
    return Mailing.ends_at <= now


def has_ended(now: Now) -> ColumnElement[bool]:
    """``MailingState.FINISHED``: past its end, or every message settled."""
    return or_(Mailing.finished_at.is_not(None), is_past_end(now))


def is_open(now: Now) -> ColumnElement[bool]:
    """Not ended: the other three states."""
    return and_(Mailing.finished_at.is_(None), Mailing.ends_at > now)


def in_state(state: MailingState, now: Now) -> ColumnElement[bool]:
    """The mailings in ``state`` at ``now``: ``state()`` in SQL."""
    if state == MailingState.FINISHED:
        return has_ended(now)
    if state == MailingState.PAUSED:
        return and_(is_open(now), is_paused())
    not_paused = and_(is_open(now), ~is_paused())
    if state == MailingState.SCHEDULED:
        return and_(not_paused, Mailing.starts_at > now)
    return and_(not_paused, Mailing.starts_at <= now)


def is_due(now: Now) -> ColumnElement[bool]:
    """Running and live with its fan-out unfinished: the scheduler creates its messages.
    (``deleted_at IS NULL AND fanout_done_at IS NULL`` is ix_mailing_due's predicate.)"""
    return and_(is_live(), Mailing.fanout_done_at.is_(None), in_state(MailingState.RUNNING, now))


def is_upcoming(now: Now) -> ColumnElement[bool]:
    """Live, not yet due: what the scheduler sleeps until."""
    return and_(
        is_live(),
        Mailing.fanout_done_at.is_(None),
        Mailing.finished_at.is_(None),
        Mailing.starts_at > now,
    )


def is_delivering(now: Now) -> ColumnElement[bool]:
    """Running, live and started by the scheduler: its messages are expected to move."""
    return and_(is_live(), in_state(MailingState.RUNNING, now), Mailing.started_at.is_not(None))


def is_overdue(now: Now, grace: timedelta) -> ColumnElement[bool]:
    """Its start passed ``grace`` ago and the scheduler has not started it yet."""
    return and_(
        Mailing.started_at.is_(None),
        Mailing.ends_at > now,
        ~is_paused(),
        Mailing.starts_at <= now - grace,
    )


def was_active_between(start: Now, end: Now) -> ColumnElement[bool]:
    """Its ``[starts_at, ends_at)`` overlaps ``[start, end)``: it could send in that window.

    A deleted mailing counts until its deletion: deleted inside the window, it was active in
    it, and the messages it sent then belong to that window's statistics. Deleted before the
    window, it had stopped by then."""
    return and_(
        Mailing.starts_at < end,
        Mailing.ends_at > start,
        or_(Mailing.deleted_at.is_(None), Mailing.deleted_at > start),
    )


def is_settled() -> ColumnElement[bool]:
    """No message left unsettled, by the counter shards (a shard alone means nothing: sums
    per status do)."""
    unsettled = (
        select(MailingMessageCount.status)
        .where(MailingMessageCount.mailing_id == Mailing.id, message_count.is_unsettled())
        .group_by(MailingMessageCount.status)
        .having(func.sum(MailingMessageCount.count) > 0)
    )
    return ~exists(unsettled)


def may_finish(now: Now) -> ColumnElement[bool]:
    """Unfinished, with nothing left to do: its end passed, it was deleted, or its fan-out is
    done, and every message it has is settled."""
    return and_(
        Mailing.finished_at.is_(None),
        or_(is_past_end(now), Mailing.deleted_at.is_not(None), Mailing.fanout_done_at.is_not(None)),
        is_settled(),
    )


async def count_by_state(db: AsyncConnection | AsyncSession, now: Now) -> dict[str, int]:
    """How many live mailings are in each state, in one pass over the table."""
    states = list(MailingState)
    row = (
        await db.execute(
            select(*(func.count().filter(in_state(s, now)).label(s.value) for s in states)).where(
                is_live()
            )
        )
    ).one()
    return {s.value: int(row._mapping[s.value]) for s in states}


async def count_live_messages(db: AsyncConnection | AsyncSession) -> dict[int, dict[str, int]]:
    """Per-status counts of every live mailing that has messages, in one query (no list of
    ids at all)."""
    rows = await db.execute(
        message_count.summed_by_mailing_and_status()
        .join(Mailing, Mailing.id == MailingMessageCount.mailing_id)
        .where(is_live())
    )
    counts: dict[int, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row.mailing_id, message_count.empty_counts())[row.status] = int(
            row.messages
        )
    return counts
