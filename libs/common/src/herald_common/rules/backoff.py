"""Delays between attempts: exponential steps with jitter, realised by fixed-TTL retry queues."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Every delay lands in [JITTER_FLOOR * tier, tier]: messages of one queue expire within a quarter
# of its TTL of each other, which bounds how long one can wait behind another (queues expire
# from the head only).
JITTER_FLOOR = 0.75


def retry_tiers(base_ms: int, max_ms: int) -> list[int]:
    """TTLs of the retry queues: base, 2·base, 4·base, … up to and including max."""
    if base_ms <= 0 or max_ms < base_ms:
        raise ValueError("retry delays need 0 < base <= max")
    tiers = [base_ms]
    while tiers[-1] * 2 < max_ms:
        tiers.append(tiers[-1] * 2)
    if tiers[-1] != max_ms:
        tiers.append(max_ms)
    return tiers


def pause_after_failures_s(failures: int, base_s: float = 1.0, max_s: float = 30.0) -> float:
    """How long to leave something alone after ``failures`` failed tries in a row: base,
    2·base, 4·base … max. A sender's pause from a database that is down (asked a few times a
    minute, not hammered by every job in hand); the scheduler's hold on a mailing whose
    fan-out keeps failing."""
    if failures < 1:
        return 0.0
    return min(base_s * 2.0 ** min(failures - 1, 30), max_s)


@dataclass(frozen=True, slots=True)
class RetryDelay:
    tier_ms: int
    delay_ms: int


def retry_delay(failures: int, tiers: list[int], jitter: float, at_least_ms: int = 0) -> RetryDelay:
    """Delay after the ``failures``-th failed attempt (1-based); ``jitter`` is uniform in [0, 1).

    ``at_least_ms`` (e.g. a provider's Retry-After) moves the choice to the first tier that
    covers it.
    """
    if failures < 1:
        raise ValueError("failures counts from 1")
    index = min(failures - 1, len(tiers) - 1)
    while index < len(tiers) - 1 and tiers[index] < at_least_ms:
        index += 1
    tier = tiers[index]
    # Rounding alone could land up to half a millisecond below the floor (tier 3 → 2 < 2.25).
    floor_ms = math.ceil(tier * JITTER_FLOOR)
    delay = max(floor_ms, round(tier * (JITTER_FLOOR + (1 - JITTER_FLOOR) * jitter)))
    return RetryDelay(tier_ms=tier, delay_ms=max(1, min(tier, max(delay, at_least_ms))))
