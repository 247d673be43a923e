"""Delivery decisions: claim, cancel, expire, defer or send."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from herald_common.rules.delivery import (
    Action,
    Decision,
    MessageSnapshot,
    check_handoff,
    plan_delivery,
)
from herald_common.rules.windows import SendWindow
from herald_common.statuses import MessageStatus

NOW = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)
GUARD = timedelta(seconds=5)
MAX_ATTEMPTS = 5
DAY = SendWindow(time(9, 0), time(18, 0))
NIGHT = SendWindow(time(22, 0), time(6, 0))
US = timedelta(microseconds=1)

SEND = Decision(Action.SEND)
SKIP_CLAIMED = Decision(Action.SKIP, "claimed by another sender")
EXPIRE = Decision(Action.EXPIRE, "the mailing ended before the message could be sent")
CANCEL_MAILING = Decision(Action.CANCEL, "the mailing was deleted")
CANCEL_CLIENT = Decision(Action.CANCEL, "the client was deleted")
OUTSIDE = "outside the client's send window"


def snapshot(**changes: object) -> MessageSnapshot:
    base = MessageSnapshot(
        status=MessageStatus.PENDING.value,
        attempts=0,
        lease_until=None,
        mailing_deleted=False,
        client_deleted=False,
        ends_at=NOW + timedelta(hours=1),
        window=None,
        timezone="UTC",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- plan_delivery: status and lease ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "lease_until", "expected"),
    [
        pytest.param("pending", None, SEND, id="pending-sends"),
        pytest.param("retrying", None, SEND, id="retrying-sends"),
        pytest.param("deferred", None, Decision(Action.SKIP, "already deferred"), id="deferred"),
        pytest.param("sent", None, Decision(Action.SKIP, "already sent"), id="sent-skips"),
        pytest.param("failed", None, Decision(Action.SKIP, "already failed"), id="failed-skips"),
        pytest.param("expired", None, Decision(Action.SKIP, "already expired"), id="expired"),
        pytest.param(
            "cancelled", None, Decision(Action.SKIP, "already cancelled"), id="cancelled-skips"
        ),
        pytest.param("sending", NOW + timedelta(minutes=1), SKIP_CLAIMED, id="sending-live"),
        pytest.param("sending", NOW + US, SKIP_CLAIMED, id="sending-lease-1us-left"),
        pytest.param("sending", NOW, SEND, id="sending-lease-ends-now-is-claimable"),
        pytest.param("sending", NOW - timedelta(minutes=1), SEND, id="sending-lease-expired"),
        pytest.param("sending", None, SEND, id="sending-without-lease-is-claimable"),
        pytest.param(
            "sent",
            NOW + timedelta(minutes=1),
            Decision(Action.SKIP, "already sent"),
            id="sent-with-stale-lease-skips",
        ),
    ],
)
def test_plan_delivery_by_status_and_lease(
    status: str, lease_until: datetime | None, expected: Decision
) -> None:
    msg = snapshot(status=status, lease_until=lease_until)
    assert plan_delivery(msg, NOW, GUARD, MAX_ATTEMPTS) == expected


def test_plan_delivery_rejects_unknown_status() -> None:
    with pytest.raises(ValueError, match="bogus"):
        plan_delivery(snapshot(status="bogus"), NOW, GUARD, MAX_ATTEMPTS)


# --- plan_delivery: precedence of cancel, fail, expire, defer --------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({"mailing_deleted": True}, CANCEL_MAILING, id="mailing-deleted"),
        pytest.param({"client_deleted": True}, CANCEL_CLIENT, id="client-deleted"),
        pytest.param(
            {"mailing_deleted": True, "client_deleted": True}, CANCEL_MAILING, id="both-deleted"
        ),
        pytest.param(
            {"mailing_deleted": True, "ends_at": NOW - timedelta(hours=1)},
            CANCEL_MAILING,
            id="cancel-beats-expire-mailing",
        ),
        pytest.param(
            {"client_deleted": True, "ends_at": NOW},
            CANCEL_CLIENT,
            id="cancel-beats-expire-client",
        ),
        pytest.param(
            {"client_deleted": True, "attempts": MAX_ATTEMPTS},
            CANCEL_CLIENT,
            id="cancel-beats-exhausted",
        ),
        pytest.param(
            {"mailing_deleted": True, "window": DAY, "timezone": "Etc/GMT+12"},
            CANCEL_MAILING,
            id="cancel-beats-closed-window",
        ),
        pytest.param(
            {"status": "sending", "lease_until": NOW - US, "mailing_deleted": True},
            CANCEL_MAILING,
            id="cancel-expired-lease",
        ),
        pytest.param(
            {"status": "sending", "lease_until": NOW + US, "mailing_deleted": True},
            SKIP_CLAIMED,
            id="live-lease-beats-cancel",
        ),
        pytest.param(
            {"status": "sent", "client_deleted": True},
            Decision(Action.SKIP, "already sent"),
            id="terminal-beats-cancel",
        ),
        pytest.param(
            {"attempts": MAX_ATTEMPTS},
            Decision(Action.FAIL, "gave up after 5 attempts"),
            id="attempts-exhausted",
        ),
        pytest.param(
            {"attempts": MAX_ATTEMPTS + 2},
            Decision(Action.FAIL, "gave up after 7 attempts"),
            id="attempts-beyond-max",
        ),
        pytest.param({"attempts": MAX_ATTEMPTS - 1}, SEND, id="last-attempt-left-sends"),
        pytest.param(
            {"attempts": MAX_ATTEMPTS, "ends_at": NOW - timedelta(hours=1)},
            Decision(Action.FAIL, "gave up after 5 attempts"),
            id="exhausted-beats-expire",
        ),
        pytest.param(
            {"ends_at": NOW, "window": DAY, "timezone": "Etc/GMT+12"},
            EXPIRE,
            id="expire-beats-closed-window",
        ),
    ],
)
def test_plan_delivery_precedence(changes: dict[str, object], expected: Decision) -> None:
    assert plan_delivery(snapshot(**changes), NOW, GUARD, MAX_ATTEMPTS) == expected


@pytest.mark.parametrize(
    ("ends_at", "guard", "expected"),
    [
        pytest.param(NOW + timedelta(hours=1), GUARD, SEND, id="well-before-end"),
        pytest.param(NOW + GUARD + US, GUARD, SEND, id="1us-beyond-guard-sends"),
        pytest.param(NOW + GUARD, GUARD, EXPIRE, id="end-exactly-at-guard"),
        pytest.param(NOW + timedelta(seconds=1), GUARD, EXPIRE, id="end-within-guard"),
        pytest.param(NOW, GUARD, EXPIRE, id="exactly-at-end"),
        pytest.param(NOW - timedelta(days=1), GUARD, EXPIRE, id="after-end"),
        pytest.param(NOW + US, timedelta(0), SEND, id="no-guard-1us-before-end"),
        pytest.param(NOW, timedelta(0), EXPIRE, id="no-guard-exactly-at-end"),
    ],
)
def test_plan_delivery_expires_at_end_minus_guard(
    ends_at: datetime, guard: timedelta, expected: Decision
) -> None:
    assert plan_delivery(snapshot(ends_at=ends_at), NOW, guard, MAX_ATTEMPTS) == expected


# NOW is 2024-06-03 12:00Z; the mailing ends two days later so that only the window decides.
@pytest.mark.parametrize(
    ("window", "zone", "expected"),
    [
        pytest.param(None, "Pacific/Kiritimati", SEND, id="no-window"),
        pytest.param(DAY, "UTC", SEND, id="utc-noon-open"),
        pytest.param(DAY, "Europe/Moscow", SEND, id="moscow-1500-open"),
        pytest.param(DAY, "Europe/Berlin", SEND, id="berlin-1400-open"),
        pytest.param(DAY, "Asia/Kathmandu", SEND, id="kathmandu-1745-open"),
        pytest.param(
            DAY,
            "Pacific/Kiritimati",  # 02:00 on 06-04 → 09:00 local = 19:00Z on 06-03
            Decision(Action.DEFER, OUTSIDE, utc(2024, 6, 3, 19, 0)),
            id="kiritimati-0200-defers",
        ),
        pytest.param(
            DAY,
            "Etc/GMT+12",  # 00:00 on 06-03 → 09:00 local = 21:00Z
            Decision(Action.DEFER, OUTSIDE, utc(2024, 6, 3, 21, 0)),
            id="gmt-12-midnight-defers",
        ),
        pytest.param(
            DAY,
            "America/New_York",  # 08:00 EDT → 09:00 EDT = 13:00Z
            Decision(Action.DEFER, OUTSIDE, utc(2024, 6, 3, 13, 0)),
            id="new-york-0800-defers",
        ),
        pytest.param(
            NIGHT,
            "Europe/Moscow",  # 15:00 → 22:00 MSK = 19:00Z
            Decision(Action.DEFER, OUTSIDE, utc(2024, 6, 3, 19, 0)),
            id="moscow-night-window-defers",
        ),
        pytest.param(
            NIGHT,
            "Asia/Kathmandu",  # 17:45 → 22:00 local = 16:15Z
            Decision(Action.DEFER, OUTSIDE, utc(2024, 6, 3, 16, 15)),
            id="kathmandu-night-window-defers",
        ),
        pytest.param(NIGHT, "Pacific/Kiritimati", SEND, id="kiritimati-night-window-open"),
    ],
)
def test_plan_delivery_defers_until_next_opening(
    window: SendWindow | None, zone: str, expected: Decision
) -> None:
    msg = snapshot(window=window, timezone=zone, ends_at=NOW + timedelta(days=2))
    assert plan_delivery(msg, NOW, GUARD, MAX_ATTEMPTS) == expected


# --- check_handoff ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ends_at", "window", "zone", "now", "expected"),
    [
        pytest.param(NOW + timedelta(hours=1), None, "UTC", NOW, SEND, id="no-window-sends"),
        pytest.param(NOW + GUARD, None, "UTC", NOW, EXPIRE, id="guard-reaches-end"),
        pytest.param(
            utc(2024, 6, 4, 0, 0), DAY, "UTC", utc(2024, 6, 3, 9, 0), SEND, id="window-start"
        ),
        pytest.param(
            utc(2024, 6, 5, 0, 0),
            DAY,
            "UTC",
            utc(2024, 6, 3, 18, 0),
            Decision(Action.DEFER, OUTSIDE, utc(2024, 6, 4, 9, 0)),
            id="window-end-defers-to-tomorrow",
        ),
        pytest.param(
            utc(2024, 4, 1, 0, 0),
            SendWindow(time(2, 30), time(4, 0)),
            "Europe/Berlin",
            utc(2024, 3, 30, 23, 0),
            Decision(Action.DEFER, OUTSIDE, utc(2024, 3, 31, 1, 0)),
            id="berlin-start-in-spring-gap-defers-to-gap-end",
        ),
        pytest.param(
            utc(2024, 11, 4, 0, 0),
            SendWindow(time(1, 30), time(1, 45)),
            "America/New_York",
            utc(2024, 11, 3, 5, 50),
            Decision(Action.DEFER, OUTSIDE, utc(2024, 11, 3, 6, 30)),
            id="new-york-repeated-hour-second-occurrence",
        ),
    ],
)
def test_check_handoff(
    ends_at: datetime, window: SendWindow | None, zone: str, now: datetime, expected: Decision
) -> None:
    assert check_handoff(ends_at, window, zone, now, GUARD) == expected


def test_a_window_closing_within_the_guard_defers_like_the_end() -> None:
    window = SendWindow(time(9), time(18))
    closes = utc(2024, 6, 3, 18, 0)  # UTC zone: closes at 18:00 UTC
    later = utc(2024, 6, 5)
    tomorrow = utc(2024, 6, 4, 9, 0)
    assert check_handoff(
        later, window, "UTC", closes - GUARD - timedelta(milliseconds=1), GUARD
    ) == (Decision(Action.SEND))
    for now in (closes - GUARD, closes - timedelta(milliseconds=1)):
        assert check_handoff(later, window, "UTC", now, GUARD) == Decision(
            Action.DEFER, OUTSIDE, tomorrow
        )


def test_a_paused_mailing_parks_its_messages_until_its_end() -> None:
    from herald_common.rules.delivery import plan_delivery

    paused = MessageSnapshot(
        status="pending",
        attempts=0,
        lease_until=None,
        mailing_deleted=False,
        client_deleted=False,
        ends_at=datetime(2026, 1, 1, 12, tzinfo=UTC),
        window=None,
        timezone="UTC",
        mailing_paused=True,
    )
    guard = timedelta(milliseconds=500)
    before_end = datetime(2026, 1, 1, 11, tzinfo=UTC)
    assert plan_delivery(paused, before_end, guard, 10) == Decision(
        Action.PAUSE, "the mailing is paused"
    )
    assert plan_delivery(paused, datetime(2026, 1, 1, 12, tzinfo=UTC), guard, 10).action == (
        Action.EXPIRE
    )
    deleted = replace(paused, mailing_deleted=True)
    assert plan_delivery(deleted, before_end, guard, 10).action == Action.CANCEL
    parked = replace(paused, status="paused")
    assert plan_delivery(parked, before_end, guard, 10).action == Action.SKIP
