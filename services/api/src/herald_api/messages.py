"""Moving messages between statuses from the API (deletes, pause, resume, retry-failed).

Rows are locked in id order, as senders lock them when claiming, so an operator's action and a
sender's claim wait for each other instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.models import Message
from herald_common.statuses import MessageStatus


async def move_messages(
    session: AsyncSession,
    which: ColumnElement[bool],
    from_statuses: Iterable[MessageStatus],
    to: MessageStatus,
    **values: Any,
) -> int:
    """Move the messages matching ``which`` and in ``from_statuses`` to ``to``; a count."""
    ids = (
        select(Message.id)
        .where(which, Message.status.in_(list(from_statuses)))
        .order_by(Message.id)
        .with_for_update()
    )
    result = await session.execute(
        update(Message)
        .where(Message.id.in_(ids.scalar_subquery()))
        .values(status=to, updated_at=func.now(), **values)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
