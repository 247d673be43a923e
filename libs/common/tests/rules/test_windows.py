"""Send windows: containment, wrap past midnight, and the next opening across zones and DST."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from herald_common.rules.windows import SendWindow, is_open, next_opening

DAY = SendWindow(time(9, 0), time(18, 0))
NIGHT = SendWindow(time(22, 0), time(6, 0))
MINUTE = timedelta(minutes=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def brute_force_next_opening(
    window: SendWindow, now: datetime, tz: ZoneInfo, horizon: timedelta = timedelta(hours=48)
) -> datetime | None:
    """The first whole minute after ``now`` where the window is open and was closed a minute
    before; every zone offset and every window bound used here is a whole number of minutes."""
    t = now.replace(second=0, microsecond=0) + MINUTE
    end = now + horizon
    was_open = is_open(window, t - MINUTE, tz)
    while t <= end:
        now_open = is_open(window, t, tz)
        if now_open and not was_open:
            return t
        was_open = now_open
        t += MINUTE
    return None


# --- SendWindow.contains ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "local", "expected"),
    [
        pytest.param(DAY, time(0, 0), False, id="day-midnight-closed"),
        pytest.param(DAY, time(8, 59, 59, 999999), False, id="day-just-before-start-closed"),
        pytest.param(DAY, time(9, 0), True, id="day-start-inclusive"),
        pytest.param(DAY, time(12, 30), True, id="day-middle-open"),
        pytest.param(DAY, time(17, 59, 59, 999999), True, id="day-just-before-end-open"),
        pytest.param(DAY, time(18, 0), False, id="day-end-exclusive"),
        pytest.param(DAY, time(23, 59), False, id="day-late-evening-closed"),
        pytest.param(NIGHT, time(12, 0), False, id="night-noon-closed"),
        pytest.param(NIGHT, time(21, 59, 59, 999999), False, id="night-just-before-start"),
        pytest.param(NIGHT, time(22, 0), True, id="night-start-inclusive"),
        pytest.param(NIGHT, time(23, 59, 59, 999999), True, id="night-before-midnight-open"),
        pytest.param(NIGHT, time(0, 0), True, id="night-midnight-open"),
        pytest.param(NIGHT, time(5, 59, 59, 999999), True, id="night-just-before-end-open"),
        pytest.param(NIGHT, time(6, 0), False, id="night-end-exclusive"),
        pytest.param(SendWindow(time(0, 0), time(0, 1)), time(0, 0), True, id="one-minute-start"),
        pytest.param(SendWindow(time(0, 0), time(0, 1)), time(0, 1), False, id="one-minute-end"),
        pytest.param(SendWindow(time(23, 59), time(0, 0)), time(23, 59), True, id="till-midnight"),
        pytest.param(SendWindow(time(23, 59), time(0, 0)), time(0, 0), False, id="midnight-is-end"),
        pytest.param(DAY, time(9, 0, tzinfo=UTC), True, id="aware-time-compared-as-wall-time"),
    ],
)
def test_window_contains_start_inclusive_end_exclusive(
    window: SendWindow, local: time, expected: bool
) -> None:
    assert window.contains(local) is expected


@pytest.mark.parametrize(
    "bound", [time(0, 0), time(9, 0), time(23, 59)], ids=["midnight", "nine", "last-minute"]
)
def test_window_rejects_start_equal_to_end(bound: time) -> None:
    with pytest.raises(ValueError, match="must not start and end at the same time"):
        SendWindow(bound, bound)


# --- is_open -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "zone", "now", "expected"),
    [
        pytest.param(None, "UTC", utc(2024, 6, 3, 3, 0), True, id="no-window-always-open"),
        pytest.param(None, "Pacific/Kiritimati", utc(2024, 6, 3, 3, 0), True, id="no-window-kir"),
        # Pacific/Kiritimati is UTC+14: 19:00Z is 09:00 the next local day.
        pytest.param(DAY, "Pacific/Kiritimati", utc(2024, 6, 3, 18, 59), False, id="kir-0859"),
        pytest.param(DAY, "Pacific/Kiritimati", utc(2024, 6, 3, 19, 0), True, id="kir-0900"),
        pytest.param(DAY, "Pacific/Kiritimati", utc(2024, 6, 4, 4, 0), False, id="kir-1800"),
        # Etc/GMT+12 is UTC−12: 21:00Z is 09:00 the same local day.
        pytest.param(DAY, "Etc/GMT+12", utc(2024, 6, 3, 20, 59), False, id="gmt-12-0859"),
        pytest.param(DAY, "Etc/GMT+12", utc(2024, 6, 3, 21, 0), True, id="gmt-12-0900"),
        pytest.param(DAY, "Etc/GMT+12", utc(2024, 6, 4, 6, 0), False, id="gmt-12-1800"),
        # Asia/Kathmandu is UTC+05:45: 03:15Z is 09:00 local.
        pytest.param(DAY, "Asia/Kathmandu", utc(2024, 6, 3, 3, 14), False, id="ktm-0859"),
        pytest.param(DAY, "Asia/Kathmandu", utc(2024, 6, 3, 3, 15), True, id="ktm-0900"),
        pytest.param(DAY, "Europe/Moscow", utc(2024, 1, 15, 14, 59), True, id="msk-1759"),
        pytest.param(DAY, "Europe/Moscow", utc(2024, 1, 15, 15, 0), False, id="msk-1800"),
        # Europe/Berlin: 09:00 is 08:00Z in winter and 07:00Z in summer.
        pytest.param(DAY, "Europe/Berlin", utc(2024, 1, 15, 7, 30), False, id="ber-winter-0830"),
        pytest.param(DAY, "Europe/Berlin", utc(2024, 7, 15, 7, 30), True, id="ber-summer-0930"),
        pytest.param(NIGHT, "America/New_York", utc(2024, 7, 15, 2, 0), True, id="ny-night-2200"),
        pytest.param(NIGHT, "America/New_York", utc(2024, 7, 15, 10, 0), False, id="ny-night-0600"),
        pytest.param(NIGHT, "America/New_York", utc(2024, 1, 15, 10, 59), True, id="ny-w-0559"),
    ],
)
def test_is_open_uses_client_local_wall_time(
    window: SendWindow | None, zone: str, now: datetime, expected: bool
) -> None:
    assert is_open(window, now, ZoneInfo(zone)) is expected


# --- next_opening --------------------------------------------------------------------------

GAP_WIDE = SendWindow(time(2, 30), time(4, 0))  # starts in the spring-forward gap, ends after it
GAP_SHORT = SendWindow(time(2, 30), time(3, 15))  # starts in the gap, 15 real minutes after it
GAP_INSIDE = SendWindow(time(2, 15), time(2, 45))  # entirely inside the gap: skipped that day
AT_GAP = SendWindow(time(2, 0), time(5, 0))  # starts at the first missing minute
ENDS_IN_GAP = SendWindow(time(1, 0), time(2, 30))
NY_REPEATED = SendWindow(time(1, 30), time(1, 45))  # 01:00–02:00 repeats on NY fall-back day
BER_REPEATED = SendWindow(time(2, 30), time(2, 40))  # 02:00–03:00 repeats on Berlin fall-back day
BER_REENTERED = SendWindow(time(1, 0), time(2, 30))  # fall-back at 03:00 jumps back to 02:00

NEXT_OPENING_CASES = [
    # UTC: before / at start / inside / at end / after, and a microsecond before the start.
    pytest.param(DAY, "UTC", utc(2024, 6, 3, 8, 0), utc(2024, 6, 3, 9, 0), id="utc-before"),
    pytest.param(
        DAY, "UTC", utc(2024, 6, 3, 8, 59, 59, 999999), utc(2024, 6, 3, 9, 0), id="utc-1us-before"
    ),
    pytest.param(DAY, "UTC", utc(2024, 6, 3, 9, 0), utc(2024, 6, 4, 9, 0), id="utc-at-start"),
    pytest.param(DAY, "UTC", utc(2024, 6, 3, 12, 0), utc(2024, 6, 4, 9, 0), id="utc-inside"),
    pytest.param(DAY, "UTC", utc(2024, 6, 3, 18, 0), utc(2024, 6, 4, 9, 0), id="utc-at-end"),
    pytest.param(DAY, "UTC", utc(2024, 6, 3, 23, 59), utc(2024, 6, 4, 9, 0), id="utc-after"),
    pytest.param(
        DAY, "UTC", utc(2024, 12, 31, 20, 0), utc(2025, 1, 1, 9, 0), id="utc-across-new-year"
    ),
    # UTC, a window wrapping past midnight, seen from both sides of midnight.
    pytest.param(NIGHT, "UTC", utc(2024, 6, 3, 15, 0), utc(2024, 6, 3, 22, 0), id="night-before"),
    pytest.param(NIGHT, "UTC", utc(2024, 6, 3, 23, 0), utc(2024, 6, 4, 22, 0), id="night-pre-12"),
    pytest.param(NIGHT, "UTC", utc(2024, 6, 4, 3, 0), utc(2024, 6, 4, 22, 0), id="night-post-12"),
    pytest.param(NIGHT, "UTC", utc(2024, 6, 4, 6, 0), utc(2024, 6, 4, 22, 0), id="night-at-end"),
    # Pacific/Kiritimati, UTC+14: the local day is a UTC day ahead.
    pytest.param(
        DAY, "Pacific/Kiritimati", utc(2024, 6, 3, 18, 0), utc(2024, 6, 3, 19, 0), id="kir-before"
    ),
    pytest.param(
        DAY,
        "Pacific/Kiritimati",
        utc(2024, 6, 3, 5, 0),  # 19:00 local on 06-03
        utc(2024, 6, 3, 19, 0),  # 09:00 local on 06-04
        id="kir-after-opens-same-utc-day",
    ),
    pytest.param(
        NIGHT, "Pacific/Kiritimati", utc(2024, 6, 3, 0, 0), utc(2024, 6, 3, 8, 0), id="kir-night"
    ),
    # Etc/GMT+12, UTC−12: the local day is a UTC day behind.
    pytest.param(
        DAY, "Etc/GMT+12", utc(2024, 6, 3, 20, 0), utc(2024, 6, 3, 21, 0), id="gmt-12-before"
    ),
    pytest.param(
        DAY, "Etc/GMT+12", utc(2024, 6, 3, 22, 0), utc(2024, 6, 4, 21, 0), id="gmt-12-inside"
    ),
    pytest.param(
        NIGHT,
        "Etc/GMT+12",
        utc(2024, 6, 4, 9, 0),  # 21:00 local on 06-03
        utc(2024, 6, 4, 10, 0),  # 22:00 local on 06-03
        id="gmt-12-night-opens-next-utc-day",
    ),
    # Europe/Moscow, UTC+3 all year.
    pytest.param(
        DAY, "Europe/Moscow", utc(2024, 1, 15, 5, 0), utc(2024, 1, 15, 6, 0), id="msk-before"
    ),
    pytest.param(
        DAY, "Europe/Moscow", utc(2024, 1, 15, 15, 0), utc(2024, 1, 16, 6, 0), id="msk-at-end"
    ),
    pytest.param(
        NIGHT, "Europe/Moscow", utc(2024, 1, 15, 18, 30), utc(2024, 1, 15, 19, 0), id="msk-night"
    ),
    # Asia/Kathmandu, UTC+05:45.
    pytest.param(
        DAY, "Asia/Kathmandu", utc(2024, 6, 3, 0, 0), utc(2024, 6, 3, 3, 15), id="ktm-before"
    ),
    pytest.param(
        DAY, "Asia/Kathmandu", utc(2024, 6, 3, 12, 15), utc(2024, 6, 4, 3, 15), id="ktm-at-end"
    ),
    pytest.param(
        NIGHT, "Asia/Kathmandu", utc(2024, 6, 3, 16, 14), utc(2024, 6, 3, 16, 15), id="ktm-night"
    ),
    # America/New_York 2024: spring forward 03-10 02:00 EST → 03:00 EDT (07:00Z);
    # fall back 11-03 02:00 EDT → 01:00 EST (06:00Z).
    pytest.param(
        DAY, "America/New_York", utc(2024, 7, 1, 12, 0), utc(2024, 7, 1, 13, 0), id="ny-summer"
    ),
    pytest.param(
        DAY,
        "America/New_York",
        utc(2024, 3, 9, 23, 0),  # 18:00 EST
        utc(2024, 3, 10, 13, 0),  # 09:00 EDT
        id="ny-day-across-spring-forward",
    ),
    pytest.param(
        DAY,
        "America/New_York",
        utc(2024, 11, 2, 23, 0),  # 19:00 EDT
        utc(2024, 11, 3, 14, 0),  # 09:00 EST
        id="ny-day-across-fall-back",
    ),
    pytest.param(
        GAP_WIDE,
        "America/New_York",
        utc(2024, 3, 10, 5, 0),  # 00:00 EST
        utc(2024, 3, 10, 7, 0),  # 03:00 EDT, the end of the gap: already inside 02:30–04:00
        id="ny-start-in-gap-opens-at-gap-end",
    ),
    pytest.param(
        GAP_SHORT,
        "America/New_York",
        utc(2024, 3, 10, 5, 0),
        utc(2024, 3, 10, 7, 0),  # 03:00–03:15 EDT is real and inside the window
        id="ny-start-in-gap-short-window-still-opens",
    ),
    pytest.param(
        GAP_INSIDE,
        "America/New_York",
        utc(2024, 3, 10, 5, 0),
        utc(2024, 3, 11, 6, 15),  # 02:15 EDT the day after: the window never exists on 03-10
        id="ny-window-inside-gap-skips-the-day",
    ),
    pytest.param(
        NY_REPEATED,
        "America/New_York",
        utc(2024, 11, 3, 4, 0),  # 00:00 EDT
        utc(2024, 11, 3, 5, 30),  # 01:30 EDT, the first of the two
        id="ny-repeated-hour-first-occurrence",
    ),
    pytest.param(
        NY_REPEATED,
        "America/New_York",
        utc(2024, 11, 3, 5, 50),  # 01:50 EDT, closed again
        utc(2024, 11, 3, 6, 30),  # 01:30 EST, the second occurrence
        id="ny-repeated-hour-second-occurrence",
    ),
    pytest.param(
        NY_REPEATED,
        "America/New_York",
        utc(2024, 11, 3, 6, 35),  # 01:35 EST, inside the second occurrence
        utc(2024, 11, 4, 6, 30),
        id="ny-repeated-hour-after-both",
    ),
    pytest.param(
        NIGHT,
        "America/New_York",
        utc(2024, 11, 3, 12, 0),  # 07:00 EST
        utc(2024, 11, 4, 3, 0),  # 22:00 EST
        id="ny-night-after-fall-back",
    ),
    # Europe/Berlin 2024: spring forward 03-31 02:00 CET → 03:00 CEST (01:00Z);
    # fall back 10-27 03:00 CEST → 02:00 CET (01:00Z).
    pytest.param(
        DAY,
        "Europe/Berlin",
        utc(2024, 3, 30, 17, 0),  # 18:00 CET
        utc(2024, 3, 31, 7, 0),  # 09:00 CEST
        id="ber-day-across-spring-forward",
    ),
    pytest.param(
        DAY,
        "Europe/Berlin",
        utc(2024, 10, 26, 16, 0),  # 18:00 CEST
        utc(2024, 10, 27, 8, 0),  # 09:00 CET
        id="ber-day-across-fall-back",
    ),
    pytest.param(
        GAP_WIDE,
        "Europe/Berlin",
        utc(2024, 3, 30, 23, 0),
        utc(2024, 3, 31, 1, 0),  # 03:00 CEST
        id="ber-start-in-gap-opens-at-gap-end",
    ),
    pytest.param(
        GAP_SHORT,
        "Europe/Berlin",
        utc(2024, 3, 30, 23, 0),
        utc(2024, 3, 31, 1, 0),
        id="ber-start-in-gap-short-window-still-opens",
    ),
    pytest.param(
        GAP_INSIDE,
        "Europe/Berlin",
        utc(2024, 3, 30, 23, 0),
        utc(2024, 4, 1, 0, 15),  # 02:15 CEST on 04-01
        id="ber-window-inside-gap-skips-the-day",
    ),
    pytest.param(
        AT_GAP,
        "Europe/Berlin",
        utc(2024, 3, 30, 23, 0),
        utc(2024, 3, 31, 1, 0),
        id="ber-start-at-first-missing-minute",
    ),
    pytest.param(
        ENDS_IN_GAP,
        "Europe/Berlin",
        utc(2024, 3, 31, 0, 30),  # 01:30 CET, inside; closes at the jump to 03:00 CEST
        utc(2024, 3, 31, 23, 0),  # 01:00 CEST on 04-01
        id="ber-window-ending-in-gap",
    ),
    pytest.param(
        BER_REPEATED,
        "Europe/Berlin",
        utc(2024, 10, 27, 0, 0),  # 02:00 CEST
        utc(2024, 10, 27, 0, 30),  # 02:30 CEST
        id="ber-repeated-hour-first-occurrence",
    ),
    pytest.param(
        BER_REPEATED,
        "Europe/Berlin",
        utc(2024, 10, 27, 0, 45),  # 02:45 CEST
        utc(2024, 10, 27, 1, 30),  # 02:30 CET
        id="ber-repeated-hour-second-occurrence",
    ),
    pytest.param(
        BER_REENTERED,
        "Europe/Berlin",
        utc(2024, 10, 27, 0, 45),  # 02:45 CEST, closed since 02:30 CEST
        utc(2024, 10, 27, 1, 0),  # 02:00 CET: falling back re-enters 01:00–02:30
        id="ber-fall-back-re-enters-window",
    ),
    pytest.param(
        NIGHT,
        "Europe/Berlin",
        utc(2024, 10, 26, 12, 0),  # 14:00 CEST
        utc(2024, 10, 26, 20, 0),  # 22:00 CEST
        id="ber-night-before-fall-back",
    ),
    pytest.param(
        NIGHT,
        "Europe/Berlin",
        utc(2024, 10, 27, 3, 0),  # 04:00 CET, inside after midnight
        utc(2024, 10, 27, 21, 0),  # 22:00 CET
        id="ber-night-inside-after-fall-back",
    ),
    pytest.param(
        NIGHT,
        "Europe/Berlin",
        utc(2024, 3, 31, 3, 0),  # 05:00 CEST, inside after midnight
        utc(2024, 3, 31, 20, 0),  # 22:00 CEST
        id="ber-night-inside-after-spring-forward",
    ),
]


@pytest.mark.parametrize(("window", "zone", "now", "expected"), NEXT_OPENING_CASES)
def test_next_opening_returns_exact_instant(
    window: SendWindow, zone: str, now: datetime, expected: datetime
) -> None:
    opening = next_opening(window, now, ZoneInfo(zone))
    assert opening == expected
    assert opening.utcoffset() == timedelta(0)


@pytest.mark.parametrize(("window", "zone", "now", "expected"), NEXT_OPENING_CASES)
def test_next_opening_is_after_now_open_and_first_by_brute_force(
    window: SendWindow, zone: str, now: datetime, expected: datetime
) -> None:
    tz = ZoneInfo(zone)
    opening = next_opening(window, now, tz)
    assert opening > now
    assert is_open(window, opening, tz)
    assert brute_force_next_opening(window, now, tz) == opening
    if not is_open(window, now, tz):
        # From a closed window, nothing in between is open either.
        t = now.replace(second=0, microsecond=0) + MINUTE
        while t < opening:
            assert not is_open(window, t, tz), t
            t += MINUTE


def test_next_opening_accepts_now_in_any_offset() -> None:
    now = datetime(2024, 6, 3, 10, 0, tzinfo=ZoneInfo("Europe/Moscow"))  # 07:00Z
    assert next_opening(DAY, now, ZoneInfo("UTC")) == utc(2024, 6, 3, 9, 0)


# A wider sweep around the DST changes of several zones (Lord Howe shifts by 30 minutes).
SWEEP_ZONES = [
    "Pacific/Kiritimati",
    "Etc/GMT+12",
    "Europe/Moscow",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
]
SWEEP_WINDOWS = [DAY, NIGHT, GAP_WIDE, GAP_INSIDE, NY_REPEATED, BER_REENTERED]
SWEEP_STARTS = [
    utc(2024, 3, 9, 20, 0),
    utc(2024, 3, 30, 20, 0),
    utc(2024, 4, 6, 10, 0),
    utc(2024, 10, 5, 10, 0),
    utc(2024, 10, 26, 20, 0),
    utc(2024, 11, 2, 20, 0),
]


@pytest.mark.parametrize("zone", SWEEP_ZONES)
@pytest.mark.parametrize("window", SWEEP_WINDOWS, ids=lambda w: f"{w.start:%H%M}-{w.end:%H%M}")
def test_next_opening_matches_brute_force_around_dst_changes(zone: str, window: SendWindow) -> None:
    tz = ZoneInfo(zone)
    for start in SWEEP_STARTS:
        for step in range(0, 30 * 60, 313):  # 30 hours from each start, odd minute offsets
            now = start + timedelta(minutes=step)
            opening = next_opening(window, now, tz)
            assert opening > now
            assert is_open(window, opening, tz)
            assert brute_force_next_opening(window, now, tz) == opening, (zone, now)
