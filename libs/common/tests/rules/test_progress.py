"""Progress: done/total, the current rate from a sample, and the estimated finish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from herald_common.rules.progress import Progress, Sample, estimate_progress

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("total", "done", "sample", "started_at", "running", "expected"),
    [
        pytest.param(
            1000,
            400,
            Sample(NOW - timedelta(seconds=60), 100),
            NOW - timedelta(minutes=5),
            True,
            Progress(400, 1000, 40.0, 5.0, NOW + timedelta(seconds=120)),
            id="rate-from-a-minute-old-sample",
        ),
        pytest.param(
            1000,
            400,
            None,
            NOW - timedelta(seconds=100),
            True,
            Progress(400, 1000, 40.0, 4.0, NOW + timedelta(seconds=150)),
            id="no-sample-average-since-start",
        ),
        pytest.param(
            1000,
            400,
            Sample(NOW - timedelta(seconds=2), 390),
            None,
            True,
            Progress(400, 1000, 40.0, None, None),
            id="sample-too-recent-no-rate",
        ),
        pytest.param(
            1000,
            400,
            Sample(NOW - timedelta(seconds=60), 400),
            NOW - timedelta(minutes=5),
            True,
            Progress(400, 1000, 40.0, 0.0, None),
            id="stalled-no-estimate",
        ),
        pytest.param(
            1000,
            1000,
            Sample(NOW - timedelta(seconds=60), 700),
            NOW - timedelta(minutes=5),
            True,
            Progress(1000, 1000, 100.0, 5.0, None),
            id="all-done-no-estimate",
        ),
        pytest.param(
            1000,
            400,
            Sample(NOW - timedelta(seconds=60), 100),
            NOW,
            False,
            Progress(400, 1000, 40.0, 5.0, None),
            id="not-running-no-estimate",
        ),
        pytest.param(
            0,
            0,
            None,
            None,
            False,
            Progress(0, 0, 0.0, None, None),
            id="nothing-yet",
        ),
        pytest.param(
            3,
            1,
            None,
            None,
            True,
            Progress(1, 3, 33.33, None, None),
            id="percent-rounded",
        ),
        pytest.param(
            1000,
            400,
            Sample(NOW - timedelta(seconds=60), 500),
            None,
            True,
            Progress(400, 1000, 40.0, 0.0, None),
            id="sample-above-now-clamped",
        ),
    ],
)
def test_estimate_progress(
    total: int,
    done: int,
    sample: Sample | None,
    started_at: datetime | None,
    running: bool,
    expected: Progress,
) -> None:
    assert estimate_progress(NOW, total, done, sample, started_at, running) == expected


def test_no_finish_is_promised_while_messages_wait_for_their_window() -> None:
    sample = Sample(NOW - timedelta(seconds=60), 100)
    started = NOW - timedelta(minutes=5)

    waiting = estimate_progress(NOW, 1000, 400, sample, started, True, deferred=1)
    none_waiting = estimate_progress(NOW, 1000, 400, sample, started, True, deferred=0)

    assert waiting == Progress(400, 1000, 40.0, 5.0, None)
    assert none_waiting.estimated_finish_at == NOW + timedelta(seconds=120)
