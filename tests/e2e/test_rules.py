"""The BRIEF's rules, end to end: real processes, real RabbitMQ and PostgreSQL, the simulator.

Tests in this module share one running Herald; each uses its own tag (so its own audience)
and resets the simulator first.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from herald_testing.stack import HeraldStack, create_clients, db_status_counts, wait_until

pytestmark = pytest.mark.e2e


def phones(prefix: int, count: int) -> list[str]:
    """``count`` distinct phones 7PPPNNNNNNN for a test-specific 3-digit prefix."""
    return [f"7{prefix:03d}{n:07d}" for n in range(count)]


def requests_for(stack: HeraldStack, message_ids: set[int]) -> list[dict[str, Any]]:
    return [r for r in stack.sim_requests() if r["id"] in message_ids]


def test_mailing_starting_now_reaches_each_matching_client_once(stack: HeraldStack) -> None:
    """Rules 1 and 4: created inside its interval it starts at once; one message per client."""
    matching = create_clients(stack, phones(901, 300), tag="r1-yes")
    create_clients(stack, phones(902, 100), tag="r1-no")
    mailing = stack.create_mailing(text="Rule one", filter={"tags": ["r1-yes"]})

    stats = stack.wait_settled(mailing["id"], 300, timeout=60)

    assert stats["by_status"]["sent"] == 300
    messages = stack.all_messages(mailing["id"])
    assert sorted(m["client_id"] for m in messages) == sorted(matching)
    by_id = {m["id"]: m for m in messages}
    received = requests_for(stack, set(by_id))
    assert Counter(r["id"] for r in received) == Counter(set(by_id))  # each exactly once
    clients = dict(zip(matching, phones(901, 300), strict=True))
    for request in received:
        assert request["text"] == "Rule one"
        assert request["phone"] == int(clients[by_id[request["id"]]["client_id"]])
    overall = stack.api.get("/mailings/stats").json()
    row = next(m for m in overall["mailings"] if m["id"] == mailing["id"])
    assert row["by_status"]["sent"] == 300
    assert row["total"] == 300


def test_mailing_with_a_future_start_starts_by_itself(stack: HeraldStack) -> None:
    """Rule 1: no user action; within a few seconds of starts_at (a 0.5 s poll here), and not
    before."""
    create_clients(stack, phones(903, 20), tag="r1-future")
    starts_at = datetime.now(UTC) + timedelta(seconds=4)
    mailing = stack.create_mailing(starts_at=starts_at, filter={"tags": ["r1-future"]})
    assert mailing["state"] == "scheduled"

    stack.wait_settled(mailing["id"], 20, timeout=30)

    started_at = datetime.fromisoformat(
        stack.api.get(f"/mailings/{mailing['id']}").json()["started_at"]
    )
    assert starts_at <= started_at <= starts_at + timedelta(seconds=3)
    first = min(r["received_at"] for r in stack.sim_requests())
    assert datetime.fromisoformat(first) >= starts_at


def test_send_window_holds_back_clients_outside_it(stack: HeraldStack) -> None:
    """Rule 3: only clients whose local time is inside the window get the message now."""
    now = datetime.now(UTC)
    # A window of now-1h … now+1h in UTC: open for UTC clients, closed for UTC+12 ones.
    start = (now - timedelta(hours=1)).strftime("%H:%M")
    end = (now + timedelta(hours=1)).strftime("%H:%M")
    open_ids = create_clients(stack, phones(904, 10), tag="r3", timezone="UTC")
    closed_ids = create_clients(stack, phones(905, 10), tag="r3", timezone="Etc/GMT-12")
    mailing = stack.create_mailing(
        ends_at=now + timedelta(days=1),
        filter={"tags": ["r3"]},
        send_window={"start": start, "end": end},
    )

    def split() -> dict[str, int] | None:
        by = stack.stats(mailing["id"])["by_status"]
        return by if by["sent"] == 10 and by["deferred"] == 10 else None

    wait_until(split, 30, what="open clients sent, closed ones deferred")
    messages = stack.all_messages(mailing["id"])
    sent = {m["client_id"] for m in messages if m["status"] == "sent"}
    deferred = [m for m in messages if m["status"] == "deferred"]
    assert sent == set(open_ids)
    assert {m["client_id"] for m in deferred} == set(closed_ids)
    # The window opens for them at `start` in UTC+12, i.e. 12 hours before `start` in UTC.
    for message in deferred:
        opens = datetime.fromisoformat(message["next_attempt_at"])
        assert opens > now
        assert (opens + timedelta(hours=12)).strftime("%H:%M") == start
    assert len(stack.sim_requests()) == 10


def test_provider_failing_30_percent_still_delivers_everything(stack: HeraldStack) -> None:
    """Rule 5: transient failures go through the delayed-retry queues and end sent."""
    create_clients(stack, phones(906, 300), tag="r5")
    stack.faults(error_ratio=0.3, seed=7)
    mailing = stack.create_mailing(filter={"tags": ["r5"]})

    stats = stack.wait_settled(mailing["id"], 300, timeout=90)

    assert stats["by_status"]["sent"] == 300
    sim = stack.sim_stats()
    assert sim["by_outcome"]["error"] > 30, "the fault must really have been exercised"
    assert sim["distinct_accepted"] == 300
    assert sim["duplicates_accepted_count"] == 0
    retried = [m for m in stack.all_messages(mailing["id"]) if m["attempts"] > 1]
    assert retried
    assert all(m["last_error"] is None or "HTTP 5" in m["last_error"] for m in retried)


def test_end_passing_during_an_outage_expires_the_rest(stack: HeraldStack) -> None:
    """Rule 2: nothing reaches the provider at or after ends_at, retries included."""
    create_clients(stack, phones(907, 100), tag="r2")
    stack.faults(outage=True)
    ends_at = datetime.now(UTC) + timedelta(seconds=5)
    mailing = stack.create_mailing(ends_at=ends_at, filter={"tags": ["r2"]})
    wait_until(lambda: stack.sim_stats()["requests"] > 50, 20, what="attempts during outage")
    wait_until(lambda: datetime.now(UTC) > ends_at + timedelta(seconds=1), 10)
    stack.faults(outage=False)

    stats = stack.wait_settled(mailing["id"], 100, timeout=30)

    assert stats["by_status"]["expired"] == 100
    received = stack.sim_requests()
    assert received, "the outage must have been hit"
    assert max(datetime.fromisoformat(r["received_at"]) for r in received) < ends_at
    assert stack.sim_stats()["accepted"] == 0


def test_deleting_a_mailing_stops_its_delivery(slow_stack: HeraldStack) -> None:
    """Rule 7: messages not yet handed over end cancelled; none is sent after the delete."""
    stack = slow_stack
    create_clients(stack, phones(908, 200), tag="r7")
    stack.faults(latency_ms=300)
    mailing = stack.create_mailing(filter={"tags": ["r7"]})
    wait_until(lambda: stack.sim_stats()["requests"] >= 10, 20, 0.05, "first provider calls")

    assert stack.api.delete(f"/mailings/{mailing['id']}").status_code == 204
    deleted_at = datetime.now(UTC)
    assert stack.api.get(f"/mailings/{mailing['id']}").status_code == 404

    def settled() -> dict[str, int] | None:
        counts = db_status_counts(stack, mailing["id"])
        busy = sum(counts.get(s, 0) for s in ("pending", "sending", "retrying", "deferred"))
        return counts if busy == 0 else None

    counts = wait_until(settled, 20, what="every message settled")
    # At most the calls in flight at the delete (2 senders x 5 slots) finish after it.
    late = [
        r for r in stack.sim_requests() if datetime.fromisoformat(r["received_at"]) > deleted_at
    ]
    assert len(late) <= 10
    assert counts.get("cancelled", 0) >= 150
    assert counts.get("sent", 0) == stack.sim_stats()["accepted"]
    assert sum(counts.values()) == 200


def test_changing_a_started_mailing(slow_stack: HeraldStack) -> None:
    """Rule 7: the filter of a started mailing is frozen (409); its text applies to the rest."""
    stack = slow_stack
    create_clients(stack, phones(909, 60), tag="r7b")
    stack.faults(latency_ms=200)
    mailing = stack.create_mailing(text="old text", filter={"tags": ["r7b"]})
    refused = stack.api.patch(f"/mailings/{mailing['id']}", json={"filter": {"tags": ["x"]}})
    assert refused.status_code == 409
    assert refused.json()["code"] == "mailing_started"
    changed = stack.api.patch(f"/mailings/{mailing['id']}", json={"text": "new text"})
    assert changed.status_code == 200
    changed_at = datetime.now(UTC)

    stack.wait_settled(mailing["id"], 60, timeout=60)

    for request in stack.sim_requests():
        if datetime.fromisoformat(request["received_at"]) > changed_at + timedelta(seconds=1):
            assert request["text"] == "new text"
    assert any(r["text"] == "new text" for r in stack.sim_requests())
