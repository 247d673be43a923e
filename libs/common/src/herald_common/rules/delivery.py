"""Whether a message may be handed to the provider now (what follows the call: ``outcomes``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from herald_common.rules.windows import SendWindow, is_open, next_opening
from herald_common.statuses import MessageStatus


class Action(StrEnum):
    SEND = "send"
    SKIP = "skip"
    CANCEL = "cancel"
    EXPIRE = "expire"
    DEFER = "defer"
    FAIL = "fail"
    RETRY = "retry"
    PAUSE = "pause"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str = ""
    until: datetime | None = None
    delay_ms: int | None = None
    tier_ms: int | None = None


@dataclass(frozen=True, slots=True)
class MessageSnapshot:
    """What a sender reads about a message, its mailing and its client when a job arrives."""

    status: str
    attempts: int
    lease_until: datetime | None
    mailing_deleted: bool
    client_deleted: bool
    ends_at: datetime
    window: SendWindow | None
    timezone: str
    mailing_paused: bool = False


CLAIMABLE = frozenset({MessageStatus.PENDING, MessageStatus.RETRYING})

# The status each action leaves a message in (a skip leaves it as it is).
STATUS_OF = {
    Action.CANCEL: MessageStatus.CANCELLED,
    Action.EXPIRE: MessageStatus.EXPIRED,
    Action.FAIL: MessageStatus.FAILED,
    Action.DEFER: MessageStatus.DEFERRED,
    Action.SEND: MessageStatus.SENDING,
    Action.PAUSE: MessageStatus.PAUSED,
}


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_handoff(
    ends_at: datetime, window: SendWindow | None, timezone: str, now: datetime, guard: timedelta
) -> Decision:
    """The last check before the HTTP call: the end must not be within ``guard``, the window open.

    ``guard`` covers the time between this check and the request reaching the provider, so that
    nothing arrives there at or after ``ends_at``.
    """
    if now + guard >= ends_at:
        return Decision(Action.EXPIRE, "the mailing ended before the message could be sent")
    tz = zone(timezone)
    # The window's close gets the same guard as the end.
    if not is_open(window, now, tz) or not is_open(window, now + guard, tz):
        assert window is not None
        return Decision(
            Action.DEFER, "outside the client's send window", next_opening(window, now, tz)
        )
    return Decision(Action.SEND)


def plan_delivery(
    msg: MessageSnapshot, now: datetime, guard: timedelta, max_attempts: int
) -> Decision:
    """What a sender does with a message named by a job it received."""
    status = MessageStatus(msg.status)
    if status == MessageStatus.SENDING and msg.lease_until is not None and msg.lease_until > now:
        # Another sender owns it; if that sender died, the scheduler re-queues it at lease end.
        return Decision(Action.SKIP, "claimed by another sender")
    if status not in CLAIMABLE and status != MessageStatus.SENDING:
        return Decision(Action.SKIP, f"already {status.value}")
    if msg.mailing_deleted:
        return Decision(Action.CANCEL, "the mailing was deleted")
    if msg.client_deleted:
        return Decision(Action.CANCEL, "the client was deleted")
    if msg.mailing_paused and now < msg.ends_at:
        return Decision(Action.PAUSE, "the mailing is paused")
    if msg.attempts >= max_attempts:
        return Decision(Action.FAIL, f"gave up after {msg.attempts} attempts")
    return check_handoff(msg.ends_at, msg.window, msg.timezone, now, guard)
