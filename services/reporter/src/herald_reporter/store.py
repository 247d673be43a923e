"""The ``daily_report`` rows: plan owed days, claim one under a lease, record the outcome.

A claim is a lease, not a lock held across the send: the claiming transaction commits before
any SMTP traffic, and a claim older than the lease (its reporter died mid-send) is taken over.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from herald_common.rules.reports import ReportDay


@dataclass(frozen=True, slots=True)
class Claim:
    day: date
    window_start_at: datetime
    window_end_at: datetime
    attempt: int  # this try's number, counting from 1; fences the outcome
    message_id: str  # the same for every try of the day, so a resent copy can be recognised
    previous_owner: str | None  # set when a dead reporter's stale claim was taken over


async def last_recorded_day(conn: AsyncConnection) -> date | None:
    day: date | None = await conn.scalar(text("SELECT max(report_day) FROM daily_report"))
    return day


async def record_days(conn: AsyncConnection, days: Sequence[ReportDay]) -> list[date]:
    """Rows for the owed days; a day another replica recorded first is left alone."""
    if not days:
        return []
    rows = await conn.execute(
        text(
            """
            INSERT INTO daily_report (report_day, window_start_at, window_end_at)
            SELECT * FROM unnest(CAST(:days AS date[]), CAST(:starts AS timestamptz[]),
                                 CAST(:ends AS timestamptz[]))
            ON CONFLICT (report_day) DO NOTHING
            RETURNING report_day
            """
        ),
        {
            "days": [d.day for d in days],
            "starts": [d.window_start_at for d in days],
            "ends": [d.window_end_at for d in days],
        },
    )
    return sorted(row[0] for row in rows)


async def claim_next(
    conn: AsyncConnection, now: datetime, lease: timedelta, owner: str, sender_domain: str
) -> Claim | None:
    """The oldest owed day that nobody holds (or whose holder's lease ran out), now ours.

    Its first claim gives the day its Message-ID, kept for every later try.
    """
    row = (
        await conn.execute(
            text(
                """
                WITH owed AS (
                    SELECT report_day, claimed_by AS previous_owner, claimed_at AS previous_claim
                    FROM daily_report
                    WHERE status = 'sending'
                      AND (claimed_at IS NULL OR claimed_at <= :stale_before)
                      AND (next_attempt_at IS NULL OR next_attempt_at <= :now)
                    ORDER BY report_day
                    LIMIT 1
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE daily_report AS d
                SET claimed_at = :now, claimed_by = :owner, attempts = d.attempts + 1,
                    message_id = coalesce(
                        d.message_id,
                        '<herald-report.' || d.report_day || '.' || :token || '@' || :domain || '>'
                    )
                FROM owed
                WHERE d.report_day = owed.report_day
                RETURNING d.report_day, d.window_start_at, d.window_end_at, d.attempts,
                          d.message_id,
                          CASE WHEN owed.previous_claim IS NULL THEN NULL
                               ELSE coalesce(owed.previous_owner, '?') END
                """
            ),
            {
                "now": now,
                "stale_before": now - lease,
                "owner": owner,
                "token": uuid.uuid4().hex,
                "domain": sender_domain,
            },
        )
    ).first()
    if row is None:
        return None
    return Claim(row[0], row[1], row[2], row[3], row[4], row[5])


async def mark_sent(conn: AsyncConnection, day: date, now: datetime, recipients: int) -> bool:
    """Record the delivery; False when another replica already did (a takeover's duplicate).

    Not fenced by the attempt: a delivered mail is a fact, whoever holds the claim now.
    """
    result = await conn.execute(
        text(
            """
            UPDATE daily_report SET status = 'sent', sent_at = :now, recipients = :recipients
            WHERE report_day = :day AND status = 'sending'
            """
        ),
        {"day": day, "now": now, "recipients": recipients},
    )
    return result.rowcount == 1


async def mark_failed(
    conn: AsyncConnection, claim: Claim, owner: str, error: str, retry_at: datetime
) -> bool:
    """Release the claim until ``retry_at``; fenced, so a stale try cannot undo a newer one."""
    result = await conn.execute(
        text(
            """
            UPDATE daily_report
            SET claimed_at = NULL, claimed_by = NULL, last_error = :error,
                next_attempt_at = :retry_at
            WHERE report_day = :day AND status = 'sending'
              AND claimed_by = :owner AND attempts = :attempt
            """
        ),
        {
            "day": claim.day,
            "owner": owner,
            "attempt": claim.attempt,
            "error": error[:2000],
            "retry_at": retry_at,
        },
    )
    return result.rowcount == 1


async def summary(conn: AsyncConnection) -> tuple[datetime | None, int]:
    """When the latest report was sent, and how many days are still owed."""
    row = (
        await conn.execute(
            text(
                "SELECT max(sent_at), count(*) FILTER (WHERE status = 'sending') FROM daily_report"
            )
        )
    ).one()
    return row[0], int(row[1])
