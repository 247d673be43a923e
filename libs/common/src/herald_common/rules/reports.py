"""When the daily statistics e-mail is due and what it covers, from an explicit ``now``.

Local day D's report is due at D's report time in the report's zone and covers the time since
the previous day's report time: ``[moment(D - 1), moment(D))``. That is 24 hours, except on the
days a DST change makes 23 or 25; consecutive reports tile time without a gap or an overlap.

- A report time skipped by a spring-forward change (02:30 in Berlin on the last Sunday of
  March) is read with the offset before the change, as PEP 495 does: the report goes at 03:30
  summer time, as long after the gap as the time was into it. It is never skipped.
- A report time that exists twice (02:30 on the last Sunday of October) counts once, at its
  first occurrence (fold 0).
- Nothing recorded yet (a new installation): only the most recent due day is sent, no backlog.
- After downtime every day since the last recorded one is sent, oldest first, at most
  ``max_backlog`` of them (the most recent); older days are skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from herald_common.rules.backoff import pause_after_failures_s

MAX_BACKLOG_DAYS = 7
ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ReportDay:
    day: date
    window_start_at: datetime  # UTC, inclusive
    window_end_at: datetime  # UTC, exclusive: the moment the report is due


@dataclass(frozen=True, slots=True)
class DuePlan:
    days: tuple[ReportDay, ...]  # oldest first
    skipped: int  # days older than the backlog cap that will never be sent


def report_moment(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The instant (UTC) local ``day`` reaches ``at`` in ``zone``; see the module's DST rules."""
    # fold=0 is both "before the change" for a skipped time and "first" for a repeated one.
    return datetime.combine(day, at.replace(fold=0), tzinfo=zone).astimezone(UTC)


def report_day(day: date, at: time, zone: ZoneInfo) -> ReportDay:
    return ReportDay(day, report_moment(day - ONE_DAY, at, zone), report_moment(day, at, zone))


def latest_due_day(now: datetime, at: time, zone: ZoneInfo) -> date:
    """The last local day whose report moment is at or before ``now``."""
    day = now.astimezone(zone).date() + ONE_DAY
    # A gap can push a moment past local midnight, so look back until one is not in the future.
    while report_moment(day, at, zone) > now:
        day -= ONE_DAY
    return day


def next_due_at(now: datetime, at: time, zone: ZoneInfo) -> datetime:
    """When the next report (after every one already due) becomes due; always after ``now``."""
    return report_moment(latest_due_day(now, at, zone) + ONE_DAY, at, zone)


def plan_due_days(
    now: datetime,
    at: time,
    zone: ZoneInfo,
    last_recorded: date | None,
    max_backlog: int = MAX_BACKLOG_DAYS,
) -> DuePlan:
    """The report days to record now, given the latest day already recorded (sent or not)."""
    if max_backlog < 1:
        raise ValueError("max_backlog must be at least 1")
    latest = latest_due_day(now, at, zone)
    if last_recorded is None:
        first, skipped = latest, 0
    else:
        oldest_allowed = latest - timedelta(days=max_backlog - 1)
        first = max(last_recorded + ONE_DAY, oldest_allowed)
        skipped = max((oldest_allowed - (last_recorded + ONE_DAY)).days, 0)
    count = (latest - first).days + 1
    return DuePlan(
        days=tuple(report_day(first + timedelta(days=i), at, zone) for i in range(count)),
        skipped=skipped,
    )


def retry_delay_s(failures: int, base_s: float, max_s: float) -> float:
    """Seconds to wait after the ``failures``-th failed send (1-based): base, 2·base, … max
    (``backoff.pause_after_failures_s``)."""
    if failures < 1:
        raise ValueError("failures counts from 1")
    return pause_after_failures_s(failures, base_s, max_s)
