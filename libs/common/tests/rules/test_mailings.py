"""Whether a mailing has started, and how its end may move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from herald_common.rules.mailings import end_move_refusal, has_started

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
H = timedelta(hours=1)


def test_started_means_its_start_has_come_or_the_fan_out_began() -> None:
    assert has_started(NOW, NOW + H, None) is False
    assert has_started(NOW, NOW, None) is True
    assert has_started(NOW, NOW + H, NOW) is True


@pytest.mark.parametrize(
    ("ends_in_s", "new_ends_in_s", "refused"),
    [
        (3600, 7200, False),  # later: always fine
        (3600, 60, False),  # earlier, with notice
        (3600, 10, False),  # exactly the notice
        (3600, 9, True),
        (3600, -5, True),  # into the past
        (5, 8, False),  # later, even if soon
    ],
)
def test_an_earlier_end_needs_ten_seconds_of_notice(
    ends_in_s: int, new_ends_in_s: int, refused: bool
) -> None:
    reason = end_move_refusal(
        NOW, NOW + timedelta(seconds=ends_in_s), NOW + timedelta(seconds=new_ends_in_s)
    )
    assert (reason is not None) == refused
