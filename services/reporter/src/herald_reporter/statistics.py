"""What one report says: the mailings active in its window, their counters, the totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from herald_common.models import Mailing
from herald_common.tables import mailing
from herald_common.tables.message_count import count_messages, empty_counts


@dataclass(frozen=True, slots=True)
class MailingLine:
    id: int
    text: str
    starts_at: datetime
    ends_at: datetime
    deleted: bool
    total: int
    by_status: dict[str, int]


@dataclass(frozen=True, slots=True)
class ReportStats:
    mailings: list[MailingLine]  # the first ``max_listed`` by id
    mailing_count: int  # all of them: totals cover every one, listed or not
    total: int
    by_status: dict[str, int]

    @property
    def unlisted(self) -> int:
        return self.mailing_count - len(self.mailings)


async def gather_stats(
    conn: AsyncConnection, window_start_at: datetime, window_end_at: datetime, max_listed: int
) -> ReportStats:
    """The mailings active in the window (``mailing.was_active_between``: deleted ones count
    when they were deleted inside it); counts are the counters' now."""
    rows = (
        await conn.execute(
            select(
                Mailing.id,
                Mailing.text,
                Mailing.starts_at,
                Mailing.ends_at,
                (~mailing.is_live()).label("deleted"),
            )
            .where(mailing.was_active_between(window_start_at, window_end_at))
            .order_by(Mailing.id)
        )
    ).all()
    counts = await count_messages(conn, [row.id for row in rows])
    totals = empty_counts()
    for by_status in counts.values():
        for status, count in by_status.items():
            totals[status] += count
    listed = [
        MailingLine(
            id=row.id,
            text=row.text,
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            deleted=row.deleted,
            total=sum(counts[row.id].values()),
            by_status=counts[row.id],
        )
        for row in rows[:max_listed]
    ]
    return ReportStats(listed, len(rows), sum(totals.values()), totals)
