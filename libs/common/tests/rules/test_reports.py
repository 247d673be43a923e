"""The daily report's schedule: due days, windows, DST changes, far-off zones, backlog cap."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from herald_common.rules.reports import (
    latest_due_day,
    next_due_at,
    plan_due_days,
    report_day,
    report_moment,
    retry_delay_s,
)

BERLIN = ZoneInfo("Europe/Berlin")
KIRITIMATI = ZoneInfo("Pacific/Kiritimati")  # UTC+14
MINUS_12 = ZoneInfo("Etc/GMT+12")  # UTC-12 (POSIX signs are inverted)
UTC_ZONE = ZoneInfo("UTC")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- when a day's report is due --------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "at", "zone", "expected"),
    [
        pytest.param(date(2030, 1, 15), time(8), UTC_ZONE, utc(2030, 1, 15, 8), id="utc"),
        pytest.param(date(2030, 1, 15), time(8), BERLIN, utc(2030, 1, 15, 7), id="berlin-winter"),
        pytest.param(date(2030, 7, 15), time(8), BERLIN, utc(2030, 7, 15, 6), id="berlin-summer"),
        # 2030-03-31 02:00 CET jumps to 03:00 CEST: 02:30 does not exist and goes at 03:30 CEST.
        pytest.param(
            date(2030, 3, 31), time(2, 30), BERLIN, utc(2030, 3, 31, 1, 30), id="spring-gap"
        ),
        # 2030-10-27 03:00 CEST falls back to 02:00 CET: 02:30 happens twice, the first counts.
        pytest.param(
            date(2030, 10, 27), time(2, 30), BERLIN, utc(2030, 10, 27, 0, 30), id="autumn-twice"
        ),
        # UTC+14: local 08:00 on the 15th is 18:00 UTC on the 14th.
        pytest.param(date(2030, 1, 15), time(8), KIRITIMATI, utc(2030, 1, 14, 18), id="utc+14"),
        # UTC-12: local 08:00 on the 15th is 20:00 UTC on the 15th.
        pytest.param(date(2030, 1, 15), time(8), MINUS_12, utc(2030, 1, 15, 20), id="utc-12"),
        pytest.param(date(2030, 1, 15), time(0), UTC_ZONE, utc(2030, 1, 15), id="midnight"),
    ],
)
def test_report_moment(day: date, at: time, zone: ZoneInfo, expected: datetime) -> None:
    assert report_moment(day, at, zone) == expected


@pytest.mark.parametrize(
    ("day", "at", "zone", "hours"),
    [
        pytest.param(date(2030, 1, 15), time(8), BERLIN, 24, id="ordinary-day"),
        # The window ends at 03:30 CEST on the 31st and started at 02:30 CET on the 30th.
        pytest.param(date(2030, 3, 31), time(2, 30), BERLIN, 24, id="spring-gap-day"),
        pytest.param(date(2030, 4, 1), time(2, 30), BERLIN, 23, id="day-after-the-gap"),
        pytest.param(date(2030, 3, 31), time(8), BERLIN, 23, id="spring-forward-day"),
        pytest.param(date(2030, 10, 27), time(8), BERLIN, 25, id="fall-back-day"),
        pytest.param(date(2030, 10, 27), time(2, 30), BERLIN, 24, id="ambiguous-first"),
        pytest.param(date(2030, 10, 28), time(2, 30), BERLIN, 25, id="day-after-ambiguous"),
        pytest.param(date(2030, 1, 15), time(8), KIRITIMATI, 24, id="utc+14"),
        pytest.param(date(2030, 1, 15), time(8), MINUS_12, 24, id="utc-12"),
    ],
)
def test_window_runs_from_the_previous_report_time(
    day: date, at: time, zone: ZoneInfo, hours: int
) -> None:
    window = report_day(day, at, zone)

    assert window.window_end_at == report_moment(day, at, zone)
    assert window.window_start_at == report_moment(day - timedelta(days=1), at, zone)
    assert window.window_end_at - window.window_start_at == timedelta(hours=hours)


def test_consecutive_windows_tile_time_across_a_year_of_dst_changes() -> None:
    windows = [
        report_day(date(2030, 1, 1) + timedelta(days=i), time(2, 30), BERLIN) for i in range(366)
    ]

    for earlier, later in itertools.pairwise(windows):
        assert earlier.window_end_at == later.window_start_at


@pytest.mark.parametrize(
    ("now", "at", "zone", "expected"),
    [
        pytest.param(
            utc(2030, 1, 15, 7, 59, 59), time(8), UTC_ZONE, date(2030, 1, 14), id="before"
        ),
        pytest.param(utc(2030, 1, 15, 8), time(8), UTC_ZONE, date(2030, 1, 15), id="exactly-at"),
        pytest.param(utc(2030, 1, 15, 23, 59), time(8), UTC_ZONE, date(2030, 1, 15), id="after"),
        # Local 2030-01-15 00:30 in Kiritimati is 10:30 UTC on the 14th: the 14th's 08:00 (18:00
        # UTC on the 13th) is the last one that came.
        pytest.param(utc(2030, 1, 14, 10, 30), time(8), KIRITIMATI, date(2030, 1, 14), id="utc+14"),
        pytest.param(
            utc(2030, 1, 14, 17, 59), time(8), KIRITIMATI, date(2030, 1, 14), id="utc+14-before"
        ),
        pytest.param(utc(2030, 1, 14, 18), time(8), KIRITIMATI, date(2030, 1, 15), id="utc+14-at"),
        # UTC-12: 2030-01-16 07:00 UTC is 19:00 on the 15th there.
        pytest.param(utc(2030, 1, 16, 7), time(8), MINUS_12, date(2030, 1, 15), id="utc-12"),
        pytest.param(
            utc(2030, 1, 15, 19, 59), time(8), MINUS_12, date(2030, 1, 14), id="utc-12-before"
        ),
        # In the spring gap itself (02:30 CET does not exist) the report waits for 03:30 CEST.
        pytest.param(
            utc(2030, 3, 31, 1, 29), time(2, 30), BERLIN, date(2030, 3, 30), id="gap-before"
        ),
        pytest.param(utc(2030, 3, 31, 1, 30), time(2, 30), BERLIN, date(2030, 3, 31), id="gap-at"),
        # Autumn: the first 02:30 (CEST, 00:30 UTC) makes it due; the second changes nothing.
        pytest.param(
            utc(2030, 10, 27, 0, 29), time(2, 30), BERLIN, date(2030, 10, 26), id="twice-before"
        ),
        pytest.param(
            utc(2030, 10, 27, 0, 30), time(2, 30), BERLIN, date(2030, 10, 27), id="twice-first"
        ),
        pytest.param(
            utc(2030, 10, 27, 1, 30), time(2, 30), BERLIN, date(2030, 10, 27), id="twice-second"
        ),
    ],
)
def test_latest_due_day(now: datetime, at: time, zone: ZoneInfo, expected: date) -> None:
    assert latest_due_day(now, at, zone) == expected


@pytest.mark.parametrize(
    ("now", "at", "zone", "expected"),
    [
        pytest.param(utc(2030, 1, 15, 7), time(8), UTC_ZONE, utc(2030, 1, 15, 8), id="later-today"),
        pytest.param(utc(2030, 1, 15, 8), time(8), UTC_ZONE, utc(2030, 1, 16, 8), id="tomorrow"),
        pytest.param(utc(2030, 3, 30, 12), time(2, 30), BERLIN, utc(2030, 3, 31, 1, 30), id="gap"),
        pytest.param(
            utc(2030, 10, 27, 0, 30), time(2, 30), BERLIN, utc(2030, 10, 28, 1, 30), id="twice"
        ),
        pytest.param(utc(2030, 1, 14, 18), time(8), KIRITIMATI, utc(2030, 1, 15, 18), id="utc+14"),
    ],
)
def test_next_due_at(now: datetime, at: time, zone: ZoneInfo, expected: datetime) -> None:
    assert next_due_at(now, at, zone) == expected
    assert next_due_at(now, at, zone) > now


# --- which days to record now ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "last", "expected", "skipped"),
    [
        # Nothing recorded: only the most recent due day, whatever came before installation.
        pytest.param(utc(2030, 1, 15, 9), None, [date(2030, 1, 15)], 0, id="first-start"),
        pytest.param(utc(2030, 1, 15, 7), None, [date(2030, 1, 14)], 0, id="first-start-early"),
        pytest.param(utc(2030, 1, 15, 9), date(2030, 1, 15), [], 0, id="already-recorded"),
        pytest.param(utc(2030, 1, 15, 7), date(2030, 1, 14), [], 0, id="not-yet-due"),
        pytest.param(utc(2030, 1, 15, 8), date(2030, 1, 14), [date(2030, 1, 15)], 0, id="due-now"),
        pytest.param(
            utc(2030, 1, 15, 9),
            date(2030, 1, 12),
            [date(2030, 1, 13), date(2030, 1, 14), date(2030, 1, 15)],
            0,
            id="three-days-down",
        ),
        pytest.param(
            utc(2030, 1, 15, 9),
            date(2030, 1, 1),
            [date(2030, 1, 9) + timedelta(days=i) for i in range(7)],
            7,
            id="two-weeks-down-capped",
        ),
        # The database is ahead of the clock (a clock set back): nothing, never a negative range.
        pytest.param(utc(2030, 1, 15, 9), date(2030, 1, 20), [], 0, id="recorded-in-future"),
    ],
)
def test_plan_due_days(
    now: datetime, last: date | None, expected: list[date], skipped: int
) -> None:
    plan = plan_due_days(now, time(8), UTC_ZONE, last)

    assert [d.day for d in plan.days] == expected
    assert plan.skipped == skipped


def test_plan_due_days_in_the_spring_gap_and_across_zones() -> None:
    in_gap = plan_due_days(utc(2030, 3, 31, 1, 30), time(2, 30), BERLIN, date(2030, 3, 30))
    east = plan_due_days(utc(2030, 1, 14, 18), time(8), KIRITIMATI, None)
    west = plan_due_days(utc(2030, 1, 15, 20), time(8), MINUS_12, None)

    assert [d.day for d in in_gap.days] == [date(2030, 3, 31)]
    assert in_gap.days[0].window_end_at == utc(2030, 3, 31, 1, 30)
    # Same UTC day, a calendar day apart: Kiritimati's 15th is already due on the 14th (UTC).
    assert [d.day for d in east.days] == [date(2030, 1, 15)]
    assert [d.day for d in west.days] == [date(2030, 1, 15)]


def test_backlog_cap_must_allow_a_day() -> None:
    with pytest.raises(ValueError, match="max_backlog"):
        plan_due_days(utc(2030, 1, 15), time(8), UTC_ZONE, None, max_backlog=0)


@pytest.mark.parametrize(
    ("failures", "expected"), [(1, 5.0), (2, 10.0), (3, 20.0), (7, 300.0), (1000, 300.0)]
)
def test_retry_delay_doubles_up_to_the_max(failures: int, expected: float) -> None:
    assert retry_delay_s(failures, 5, 300) == expected


def test_retry_delay_counts_failures_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        retry_delay_s(0, 5, 300)
