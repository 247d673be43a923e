"""The ``message`` table: which statuses are settled or idle, and moving messages between them.

The vocabulary and its sets are in ``herald_common.statuses``; this module turns them into SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from herald_common.models import Message
from herald_common.statuses import IDLE_STATUSES, TERMINAL_STATUSES, MessageStatus

SETTLED = sorted(TERMINAL_STATUSES)
UNSETTLED = sorted(set(MessageStatus) - TERMINAL_STATUSES)
IDLE = sorted(IDLE_STATUSES)
# What pausing a mailing holds: idle messages not already paused.
PAUSABLE = sorted(IDLE_STATUSES - {MessageStatus.PAUSED})


def is_idle() -> ColumnElement[bool]:
    """Waiting, not in a provider call: it can be stopped without racing a sender."""
    return Message.status.in_(IDLE)


def awaits_outcome() -> ColumnElement[bool]:
    """A provider call's outcome may still be written: the message is ``sending``, or back
    to ``pending`` because the lease ran out meanwhile (its ``attempts`` fence then tells
    whether another sender has claimed it since)."""
    return Message.status.in_([MessageStatus.SENDING, MessageStatus.PENDING])


async def rejudge_deferred(db: AsyncConnection | AsyncSession, which: ColumnElement[bool]) -> None:
    """Deferred messages matching ``which`` waited for a window that has changed (its times,
    or the client's time zone): due now, the scheduler queues them and the senders judge
    them anew."""
    await db.execute(
        update(Message)
        .where(which, Message.status == MessageStatus.DEFERRED)
        .values(next_attempt_at=func.now(), updated_at=func.now())
    )


async def move(
    db: AsyncConnection | AsyncSession,
    which: ColumnElement[bool],
    from_statuses: Iterable[MessageStatus],
    to: MessageStatus,
    **values: Any,
) -> int:
    """Move the messages matching ``which`` and in ``from_statuses`` to ``to``; a count.

    Rows are locked in id order, as senders lock them when claiming, so an operator's action
    and a sender's claim wait for each other instead of deadlocking."""
    ids = (
        select(Message.id)
        .where(which, Message.status.in_(list(from_statuses)))
        .order_by(Message.id)
        .with_for_update()
    )
    result = await db.execute(
        update(Message)
        .where(Message.id.in_(ids.scalar_subquery()))
        .values(status=to, updated_at=func.now(), **values)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
