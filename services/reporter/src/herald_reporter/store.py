"""The ``daily_report`` rows: plan owed days, claim one under a lease, record the outcome.

A claim is a lease, not a lock held across the send: the claiming transaction commits before
any SMTP traffic, and a claim older than the lease (its reporter died mid-send) is taken over.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    Text,
    case,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from herald_common.db import array_rows
from herald_common.models import REPORT_OWED_PREDICATE, TZ, DailyReport
from herald_common.rules.reports import ReportDay
from herald_common.statuses import ReportStatus


@dataclass(frozen=True, slots=True)
class Claim:
    day: date
    window_start_at: datetime
    window_end_at: datetime
    attempt: int  # this try's number, counting from 1; fences the outcome
    message_id: str  # the same for every try of the day, so a resent copy can be recognised
    previous_owner: str | None  # set when a dead reporter's stale claim was taken over


def is_owed() -> ColumnElement[bool]:
    """Not sent yet (``ReportStatus.SENDING``), spelt as ix_daily_report_owed's predicate so
    that the claim can use that partial index."""
    return literal_column(f"daily_report.{REPORT_OWED_PREDICATE}", Boolean)


async def last_recorded_day(conn: AsyncConnection) -> date | None:
    day: date | None = await conn.scalar(select(func.max(DailyReport.report_day)))
    return day


async def record_days(conn: AsyncConnection, days: Sequence[ReportDay]) -> list[date]:
    """Rows for the owed days; a day another replica recorded first is left alone."""
    if not days:
        return []
    # One array parameter per column: any number of days is one statement shape.
    planned = array_rows(
        "planned",
        report_day=("days", Date()),
        window_start_at=("starts", TZ),
        window_end_at=("ends", TZ),
    )
    rows = await conn.execute(
        insert(DailyReport)
        .from_select(
            [DailyReport.report_day, DailyReport.window_start_at, DailyReport.window_end_at],
            select(planned.c.report_day, planned.c.window_start_at, planned.c.window_end_at),
        )
        .on_conflict_do_nothing(index_elements=[DailyReport.report_day])
        .returning(DailyReport.report_day),
        {
            "days": [d.day for d in days],
            "starts": [d.window_start_at for d in days],
            "ends": [d.window_end_at for d in days],
        },
    )
    return sorted(rows.scalars())


async def claim_next(
    conn: AsyncConnection, now: datetime, lease: timedelta, owner: str, sender_domain: str
) -> Claim | None:
    """The oldest owed day that nobody holds (or whose holder's lease ran out), now ours.

    Its first claim gives the day its Message-ID, kept for every later try.
    """
    owed = (
        select(
            DailyReport.report_day,
            DailyReport.claimed_by.label("previous_owner"),
            DailyReport.claimed_at.label("previous_claim"),
        )
        .where(
            is_owed(),
            or_(DailyReport.claimed_at.is_(None), DailyReport.claimed_at <= now - lease),
            or_(DailyReport.next_attempt_at.is_(None), DailyReport.next_attempt_at <= now),
        )
        .order_by(DailyReport.report_day)
        .limit(1)
        .with_for_update(skip_locked=True)
        .cte("owed")
    )
    new_message_id = (
        "<herald-report."
        + cast(DailyReport.report_day, Text)
        + f".{uuid.uuid4().hex}@{sender_domain}>"
    )
    row = (
        await conn.execute(
            update(DailyReport)
            .where(DailyReport.report_day == owed.c.report_day)
            .values(
                claimed_at=now,
                claimed_by=owner,
                attempts=DailyReport.attempts + 1,
                message_id=func.coalesce(DailyReport.message_id, new_message_id),
            )
            .returning(
                DailyReport.report_day.label("day"),
                DailyReport.window_start_at,
                DailyReport.window_end_at,
                DailyReport.attempts.label("attempt"),
                DailyReport.message_id,
                case(
                    (owed.c.previous_claim.is_(None), null()),
                    else_=func.coalesce(owed.c.previous_owner, "?"),
                ).label("previous_owner"),
            )
        )
    ).first()
    return None if row is None else Claim(**row._mapping)


async def mark_sent(conn: AsyncConnection, day: date, now: datetime, recipients: int) -> bool:
    """Record the delivery; False when another replica already did (a takeover's duplicate).

    Not fenced by the attempt: a delivered mail is a fact, whoever holds the claim now.
    """
    result = await conn.execute(
        update(DailyReport)
        .where(DailyReport.report_day == day, is_owed())
        .values(status=ReportStatus.SENT, sent_at=now, recipients=recipients)
    )
    return result.rowcount == 1


async def mark_failed(
    conn: AsyncConnection, claim: Claim, owner: str, error: str, retry_at: datetime
) -> bool:
    """Release the claim until ``retry_at``; fenced, so a stale try cannot undo a newer one."""
    result = await conn.execute(
        update(DailyReport)
        .where(
            DailyReport.report_day == claim.day,
            is_owed(),
            DailyReport.claimed_by == owner,
            DailyReport.attempts == claim.attempt,
        )
        .values(claimed_at=None, claimed_by=None, last_error=error[:2000], next_attempt_at=retry_at)
    )
    return result.rowcount == 1


async def summary(conn: AsyncConnection) -> tuple[datetime | None, int]:
    """When the latest report was sent, and how many days are still owed."""
    row = (
        await conn.execute(
            select(
                func.max(DailyReport.sent_at).label("last_sent_at"),
                func.count().filter(is_owed()).label("owed"),
            )
        )
    ).one()
    return row.last_sent_at, int(row.owed)
