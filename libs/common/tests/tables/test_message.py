"""The message statuses in SQL: settled and unsettled split the vocabulary; idle ones are
unsettled, and pausing holds the idle ones not already paused."""

from __future__ import annotations

from herald_common.statuses import IDLE_STATUSES, TERMINAL_STATUSES, MessageStatus
from herald_common.tables import message


def test_settled_and_unsettled_split_every_status() -> None:
    assert set(message.SETTLED) == TERMINAL_STATUSES
    assert set(message.SETTLED) | set(message.UNSETTLED) == set(MessageStatus)
    assert not set(message.SETTLED) & set(message.UNSETTLED)


def test_idle_messages_are_unsettled_and_pausing_holds_all_but_the_paused() -> None:
    assert set(message.IDLE) == IDLE_STATUSES
    assert set(message.IDLE) <= set(message.UNSETTLED)
    assert MessageStatus.SENDING not in message.IDLE
    assert set(message.PAUSABLE) == IDLE_STATUSES - {MessageStatus.PAUSED}
