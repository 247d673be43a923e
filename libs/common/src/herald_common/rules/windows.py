"""Per-client local sending windows, including windows that wrap past midnight and DST changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class SendWindow:
    """Local wall-clock interval [start, end); start > end wraps past midnight (22:00–06:00)."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("a send window must not start and end at the same time")

    def contains(self, local: time) -> bool:
        local = local.replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def is_open(window: SendWindow | None, now: datetime, tz: ZoneInfo) -> bool:
    return window is None or window.contains(now.astimezone(tz).time())


def next_opening(window: SendWindow, now: datetime, tz: ZoneInfo) -> datetime:
    """The first instant after ``now`` (UTC) at which the client's window opens.

    A window opens where the local clock reaches its start (either occurrence of a repeated
    fall-back hour) or where a DST change makes the clock jump into it: a start inside a
    spring-forward gap opens at the end of the gap, and falling back can re-enter a window.
    """
    local_today = now.astimezone(tz).date()
    horizon = datetime.combine(local_today + timedelta(days=4), time(0), tzinfo=tz).astimezone(UTC)
    candidates = _offset_changes(now, horizon, tz)
    for offset in range(0, 4):
        day = local_today + timedelta(days=offset)
        for fold in (0, 1):
            local = datetime.combine(day, window.start, tzinfo=tz).replace(fold=fold)
            instant = local.astimezone(UTC)
            # A start inside a gap names no real instant; the gap's end is a candidate already.
            if instant.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None):
                candidates.append(instant)
    for candidate in sorted(candidates):
        if (
            candidate > now
            and is_open(window, candidate, tz)
            and not is_open(window, candidate - _TICK, tz)
        ):
            return candidate
    # Unreachable with real zones (a window closes at least once in four days); stay safe.
    return now + timedelta(days=1)


_TICK = timedelta(microseconds=1)
# Real zones change offset at most a few times a year, never twice within this step.
_SCAN_STEP_S = 6 * 3600


def _offset_changes(start: datetime, end: datetime, tz: ZoneInfo) -> list[datetime]:
    """The UTC instants in (start, end] at which ``tz`` changes its UTC offset."""

    def offset_at(ts: int) -> timedelta | None:
        return datetime.fromtimestamp(ts, UTC).astimezone(tz).utcoffset()

    changes: list[datetime] = []
    lo = int(start.timestamp())
    last = int(end.timestamp())
    lo_offset = offset_at(lo)
    while lo < last:
        hi = min(lo + _SCAN_STEP_S, last)
        hi_offset = offset_at(hi)
        if hi_offset != lo_offset:
            a, b = lo, hi
            # Offsets change on whole seconds: bisect to the first second of the new offset.
            while b - a > 1:
                mid = (a + b) // 2
                if offset_at(mid) == lo_offset:
                    a = mid
                else:
                    b = mid
            changes.append(datetime.fromtimestamp(b, UTC))
        lo, lo_offset = hi, hi_offset
    return changes
