"""When a watched mailing is settled, and what its progress bar says."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from herald_cli.watching import (
    final_counts,
    format_duration,
    is_settled,
    read_progress,
)

NOW = datetime(2026, 3, 1, 6, 0, 0, tzinfo=UTC)
STATUSES = [
    "pending",
    "sending",
    "retrying",
    "deferred",
    "paused",
    "sent",
    "failed",
    "expired",
    "cancelled",
]


def stats(state: str, total: int | None = None, **counts: int) -> dict[str, Any]:
    by_status = {status: counts.get(status, 0) for status in STATUSES}
    return {
        "id": 7,
        "state": state,
        "starts_at": "2026-03-01T06:00:00Z",
        "total": sum(by_status.values()) if total is None else total,
        "by_status": by_status,
        "progress": {"rate_per_s": None, "estimated_finish_at": None},
    }


@pytest.mark.parametrize(
    ("answer", "settled"),
    [
        (stats("finished", sent=8, failed=1, expired=1), True),
        (stats("finished"), True),  # nobody matched the filter
        (stats("finished", cancelled=5), True),
        # Every message is done, but the fan-out may not be: the scheduler says when.
        (stats("running", sent=10), False),
        (stats("running", sent=5, pending=5), False),
        # The end has passed and the last messages are not marked expired yet.
        (stats("finished", sent=5, retrying=2), False),
        (stats("paused", sent=5, paused=5), False),
        (stats("scheduled"), False),
    ],
)
def test_settled_means_finished_and_every_message_terminal(
    answer: dict[str, Any], settled: bool
) -> None:
    assert is_settled(answer) is settled


def test_a_reading_carries_the_apis_rate_and_time_left() -> None:
    answer = stats("running", sent=250, pending=750)
    answer["progress"] = {"rate_per_s": 12.5, "estimated_finish_at": "2026-03-01T06:01:00Z"}

    reading = read_progress(answer, NOW)

    assert (reading.done, reading.total, reading.percent) == (250, 1000, 25.0)
    assert (reading.rate, reading.eta, reading.settled) == ("12.5 msg/s", "ETA 0:01:00", False)


@pytest.mark.parametrize(
    ("answer", "eta"),
    [
        (stats("scheduled"), "starts at 2026-03-01T06:00:00Z"),
        (stats("paused", sent=1, paused=3), "paused"),
        (stats("running", sent=1, deferred=3), "waiting for send windows"),
        (stats("running", pending=3), "ETA –"),
        (stats("finished", sent=1, retrying=1), "ended: the rest expire"),
        (stats("finished", sent=1), "done"),
    ],
)
def test_without_an_estimate_the_bar_says_why(answer: dict[str, Any], eta: str) -> None:
    assert read_progress(answer, NOW).eta == eta


def test_no_rate_yet_shows_a_dash() -> None:
    assert read_progress(stats("running", pending=3), NOW).rate == "– msg/s"


def test_a_mailing_without_messages_is_complete_once_settled() -> None:
    assert read_progress(stats("running"), NOW).percent == 0.0
    assert read_progress(stats("finished"), NOW).percent == 100.0


def test_an_estimate_in_the_past_is_no_time_left() -> None:
    answer = stats("running", sent=1, pending=1)
    answer["progress"]["estimated_finish_at"] = "2026-03-01T05:59:00+00:00"
    assert read_progress(answer, NOW).eta == "ETA 0:00:00"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00:00"), (59.6, "0:01:00"), (3725, "1:02:05"), (90000, "25:00:00")]
)
def test_durations_read_as_hours_minutes_seconds(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_final_counts_list_every_terminal_status_then_what_is_left_then_the_total() -> None:
    assert final_counts(stats("finished", sent=7, expired=2, paused=1)) == [
        ("sent", 7),
        ("failed", 0),
        ("expired", 2),
        ("cancelled", 0),
        ("paused", 1),
        ("total", 10),
    ]
