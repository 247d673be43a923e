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


def is_settled() -> ColumnElement[bool]:
    """Terminal: sent, failed, expired or cancelled; never left again (but retry-failed)."""
    return Message.status.in_(SETTLED)


def is_unsettled() -> ColumnElement[bool]:
    return Message.status.in_(UNSETTLED)


def is_idle() -> ColumnElement[bool]:
    """Waiting, not in a provider call: it can be stopped without racing a sender."""
    return Message.status.in_(IDLE)


def awaits_outcome() -> ColumnElement[bool]:
    """A provider call's outcome may still be written: the message is ``sending``, or back
    to ``pending`` because the lease ran out meanwhile (its ``attempts`` fence then tells
    whether another sender has claimed it since)."""
    return Message.status.in_([MessageStatus.SENDING, MessageStatus.PENDING])


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
