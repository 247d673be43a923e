"""How far a mailing has got: done/total, the current rate, and when it should finish."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# A rate measured over less than this is mostly noise.
MIN_WINDOW = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Sample:
    at: datetime
    done: int


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int
    percent: float
    rate_per_s: float | None
    estimated_finish_at: datetime | None


def estimate_progress(
    now: datetime,
    total: int,
    done: int,
    sample: Sample | None,
    started_at: datetime | None,
    running: bool,
    deferred: int = 0,
) -> Progress:
    """``sample`` is an earlier (moment, done) of the same mailing, ideally about a minute old;
    without one the average since ``started_at`` stands in for the current rate.

    ``deferred`` messages (waiting for their client's send window, or postponed) go out at their
    own time, hours away perhaps, whatever the rate: while there are any, no finish is promised.
    """
    percent = round(100 * done / total, 2) if total else 0.0
    baseline = sample or (Sample(started_at, 0) if started_at is not None else None)
    rate: float | None = None
    if baseline is not None and now - baseline.at >= MIN_WINDOW:
        rate = round(max(done - baseline.done, 0) / (now - baseline.at).total_seconds(), 2)
    finish: datetime | None = None
    remaining = total - done
    if running and remaining > 0 and rate and not deferred:
        finish = now + timedelta(seconds=remaining / rate)
    return Progress(done, total, percent, rate, finish)
