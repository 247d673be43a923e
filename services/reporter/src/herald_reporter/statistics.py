"""What one report says: the mailings active in its window, their counters, the totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

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
    """Mailings whose ``[starts_at, ends_at)`` overlaps the window, deleted ones included when
    they were deleted inside it (they were active then); counts are the counters' now."""
    rows = (
        await conn.execute(
            text(
                """
                SELECT id, text, starts_at, ends_at, deleted_at IS NOT NULL
                FROM mailing
                WHERE starts_at < :end AND ends_at > :start
                  AND (deleted_at IS NULL OR deleted_at > :start)
                ORDER BY id
                """
            ),
            {"start": window_start_at, "end": window_end_at},
        )
    ).all()
    counts = await count_messages(conn, [row[0] for row in rows])
    totals = empty_counts()
    for by_status in counts.values():
        for status, count in by_status.items():
            totals[status] += count
    listed = [
        MailingLine(
            id=row[0],
            text=row[1],
            starts_at=row[2],
            ends_at=row[3],
            deleted=row[4],
            total=sum(counts[row[0]].values()),
            by_status=counts[row[0]],
        )
        for row in rows[:max_listed]
    ]
    return ReportStats(listed, len(rows), sum(totals.values()), totals)
