"""Retry tiers and the jittered delay chosen after each failed attempt."""

from __future__ import annotations

import pytest

from herald_common.rules.backoff import (
    JITTER_FLOOR,
    RetryDelay,
    pause_after_failures_s,
    retry_delay,
    retry_tiers,
)

TIERS = [1000, 2000, 4000, 8000]
JITTERS = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999999]


@pytest.mark.parametrize(
    ("base_ms", "max_ms", "expected"),
    [
        pytest.param(1000, 1000, [1000], id="base-equals-max"),
        pytest.param(1, 1, [1], id="one-millisecond"),
        pytest.param(1000, 1001, [1000, 1001], id="max-just-above-base"),
        pytest.param(1000, 2000, [1000, 2000], id="max-is-double"),
        pytest.param(1000, 5000, [1000, 2000, 4000, 5000], id="max-not-a-power-of-two"),
        pytest.param(1000, 8000, [1000, 2000, 4000, 8000], id="max-is-power-of-two"),
        pytest.param(500, 1999, [500, 1000, 1999], id="max-just-below-double"),
        pytest.param(
            1000,
            60_000,
            [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000],
            id="one-second-to-one-minute",
        ),
        pytest.param(
            5000,
            3_600_000,
            [
                5000,
                10_000,
                20_000,
                40_000,
                80_000,
                160_000,
                320_000,
                640_000,
                1_280_000,
                2_560_000,
                3_600_000,
            ],
            id="five-seconds-to-one-hour",
        ),
    ],
)
def test_retry_tiers_double_from_base_and_end_at_max(
    base_ms: int, max_ms: int, expected: list[int]
) -> None:
    assert retry_tiers(base_ms, max_ms) == expected


@pytest.mark.parametrize(
    ("base_ms", "max_ms"),
    [
        pytest.param(0, 1000, id="zero-base"),
        pytest.param(-1000, 1000, id="negative-base"),
        pytest.param(0, 0, id="both-zero"),
        pytest.param(1000, 999, id="max-below-base"),
        pytest.param(1000, -1, id="negative-max"),
    ],
)
def test_retry_tiers_reject_invalid_bounds(base_ms: int, max_ms: int) -> None:
    with pytest.raises(ValueError, match="0 < base <= max"):
        retry_tiers(base_ms, max_ms)


@pytest.mark.parametrize(
    ("failures", "jitter", "expected"),
    [
        pytest.param(1, 0.0, RetryDelay(1000, 750), id="1st-no-jitter"),
        pytest.param(2, 0.0, RetryDelay(2000, 1500), id="2nd-no-jitter"),
        pytest.param(3, 0.0, RetryDelay(4000, 3000), id="3rd-no-jitter"),
        pytest.param(4, 0.0, RetryDelay(8000, 6000), id="4th-no-jitter-last-tier"),
        pytest.param(5, 0.0, RetryDelay(8000, 6000), id="5th-capped-at-last-tier"),
        pytest.param(100, 0.0, RetryDelay(8000, 6000), id="100th-capped-at-last-tier"),
        pytest.param(1, 0.5, RetryDelay(1000, 875), id="1st-half-jitter"),
        pytest.param(4, 0.5, RetryDelay(8000, 7000), id="4th-half-jitter"),
        pytest.param(1, 0.999999, RetryDelay(1000, 1000), id="1st-jitter-near-one"),
        pytest.param(3, 0.999999, RetryDelay(4000, 4000), id="3rd-jitter-near-one"),
        pytest.param(9, 0.999999, RetryDelay(8000, 8000), id="9th-jitter-near-one-capped"),
    ],
)
def test_retry_delay_per_failure_count(failures: int, jitter: float, expected: RetryDelay) -> None:
    assert retry_delay(failures, TIERS, jitter) == expected


@pytest.mark.parametrize("failures", [0, -1], ids=["zero", "negative"])
def test_retry_delay_rejects_failures_below_one(failures: int) -> None:
    with pytest.raises(ValueError, match="failures counts from 1"):
        retry_delay(failures, TIERS, 0.5)


@pytest.mark.parametrize(
    "tier", [1, 2, 3, 5, 7, 999, 1003, 1000, 8000, 60_001], ids=lambda t: f"tier-{t}"
)
@pytest.mark.parametrize("jitter", JITTERS, ids=lambda j: f"jitter-{j}")
def test_retry_delay_stays_within_floor_and_tier(tier: int, jitter: float) -> None:
    delay = retry_delay(1, [tier], jitter)
    assert delay.tier_ms == tier
    # delay >= 0.75 * tier, in integers so that float error cannot hide a miss.
    assert 4 * delay.delay_ms >= 3 * tier
    assert delay.delay_ms <= tier


def test_jitter_floor_is_three_quarters() -> None:
    assert JITTER_FLOOR == 0.75


@pytest.mark.parametrize(
    ("failures", "jitter", "at_least_ms", "expected"),
    [
        pytest.param(1, 0.0, 0, RetryDelay(1000, 750), id="zero-changes-nothing"),
        pytest.param(1, 0.0, 500, RetryDelay(1000, 750), id="below-jittered-delay"),
        pytest.param(1, 0.0, 900, RetryDelay(1000, 900), id="raises-delay-within-tier"),
        pytest.param(1, 0.0, 1000, RetryDelay(1000, 1000), id="equal-to-tier-stays"),
        pytest.param(1, 0.0, 1001, RetryDelay(2000, 1500), id="just-above-tier-moves-up"),
        pytest.param(1, 0.0, 1800, RetryDelay(2000, 1800), id="moves-up-and-raises-delay"),
        pytest.param(1, 0.0, 2001, RetryDelay(4000, 3000), id="skips-two-tiers"),
        pytest.param(1, 0.999999, 2500, RetryDelay(4000, 4000), id="jitter-still-applies"),
        pytest.param(3, 0.0, 500, RetryDelay(4000, 3000), id="never-an-earlier-tier"),
        pytest.param(3, 0.0, 3500, RetryDelay(4000, 3500), id="later-failure-raised"),
        pytest.param(1, 0.0, 8000, RetryDelay(8000, 8000), id="exactly-last-tier"),
        pytest.param(1, 0.0, 9000, RetryDelay(8000, 8000), id="beyond-last-tier-capped"),
        pytest.param(7, 0.5, 3_600_000, RetryDelay(8000, 8000), id="huge-capped"),
    ],
)
def test_retry_delay_at_least_moves_to_covering_tier(
    failures: int, jitter: float, at_least_ms: int, expected: RetryDelay
) -> None:
    assert retry_delay(failures, TIERS, jitter, at_least_ms) == expected


@pytest.mark.parametrize("failures", [1, 2, 3, 4, 5, 9])
@pytest.mark.parametrize("at_least_ms", [0, 1, 999, 1000, 1001, 3999, 4000, 4001, 7999, 20_000])
@pytest.mark.parametrize("jitter", JITTERS, ids=lambda j: f"jitter-{j}")
def test_retry_delay_never_below_at_least_or_own_tier(
    failures: int, at_least_ms: int, jitter: float
) -> None:
    delay = retry_delay(failures, TIERS, jitter, at_least_ms)
    own_tier = TIERS[min(failures - 1, len(TIERS) - 1)]
    assert delay.tier_ms in TIERS
    assert delay.tier_ms >= own_tier
    assert delay.delay_ms >= min(at_least_ms, TIERS[-1])
    assert 4 * delay.delay_ms >= 3 * delay.tier_ms
    assert delay.delay_ms <= delay.tier_ms
    # The tier chosen is the first that covers the wish (or the last one).
    earlier = [t for t in TIERS if own_tier <= t < delay.tier_ms]
    assert all(t < at_least_ms for t in earlier)


@pytest.mark.parametrize(
    ("failures", "pause_s"),
    [(0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (50, 30.0), (10_000, 30.0)],
)
def test_the_pause_after_failures_doubles_from_one_second_up_to_thirty(
    failures: int, pause_s: float
) -> None:
    assert pause_after_failures_s(failures) == pause_s
