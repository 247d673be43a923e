"""A column chart as plain numbers for inline SVG (no script, no style attribute: the CSP
holds), and the series it shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float


def column_chart(
    points: Sequence[tuple[str, int]], *, width: float = 600, height: float = 160, gap: float = 2
) -> list[Bar]:
    """Vertical bars side by side, scaled to the largest value (an all-zero chart is flat)."""
    if not points:
        return []
    top = max(value for _, value in points) or 1
    step = width / len(points)
    bars = []
    for index, (label, value) in enumerate(points):
        bar_height = height * value / top
        bars.append(
            Bar(label, value, index * step + gap / 2, height - bar_height, step - gap, bar_height)
        )
    return bars


def settled_per_bucket(
    samples: Sequence[tuple[int, datetime, int]],
    now: datetime,
    *,
    span: timedelta = timedelta(minutes=15),
    bucket: timedelta = timedelta(minutes=1),
) -> list[tuple[datetime, int]]:
    """Messages settled in each bucket up to ``now``, from the scheduler's progress samples
    (mailing id, sampled at, done so far): the growth of ``done`` between one mailing's
    consecutive samples, counted in the bucket of the later one."""
    buckets = int(span / bucket)
    start = now - bucket * buckets
    counts = [0] * buckets
    previous: dict[int, int] = {}
    for mailing_id, sampled_at, done in sorted(samples, key=lambda s: (s[0], s[1])):
        before = previous.get(mailing_id)
        previous[mailing_id] = done
        if before is None or sampled_at < start or sampled_at > now:
            continue
        index = min(int((sampled_at - start) / bucket), buckets - 1)
        counts[index] += max(0, done - before)
    return [(start + bucket * i, counts[i]) for i in range(buckets)]
