"""A mailing's state from its times, and whether it has started."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from herald_common.rules.mailings import end_move_refusal, has_started, mailing_state
from herald_common.statuses import MailingState

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "finished_at", "paused_at", "expected"),
    [
        pytest.param(NOW + H, NOW + 2 * H, None, None, MailingState.SCHEDULED, id="future"),
        pytest.param(NOW, NOW + H, None, None, MailingState.RUNNING, id="starts-now"),
        pytest.param(NOW - H, NOW + H, None, None, MailingState.RUNNING, id="running"),
        pytest.param(NOW - 2 * H, NOW, None, None, MailingState.FINISHED, id="ends-now"),
        pytest.param(NOW - H, NOW + H, NOW, None, MailingState.FINISHED, id="all-settled"),
        pytest.param(NOW - H, NOW + H, None, NOW, MailingState.PAUSED, id="paused"),
        pytest.param(NOW + H, NOW + 2 * H, None, NOW, MailingState.PAUSED, id="paused-early"),
        pytest.param(NOW - 2 * H, NOW - H, None, NOW, MailingState.FINISHED, id="ended-paused"),
    ],
)
def test_mailing_state(
    starts_at: datetime,
    ends_at: datetime,
    finished_at: datetime | None,
    paused_at: datetime | None,
    expected: MailingState,
) -> None:
    assert mailing_state(NOW, starts_at, ends_at, finished_at, paused_at) == expected


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
