"""Rule 6: kill -9 of a sender or of the scheduler mid-mailing loses nothing.

After each crash every targeted message ends in exactly one terminal status, and the provider
sees a message id twice only for calls that were in flight in the killed process.
"""

from __future__ import annotations

import pytest

from herald_testing.stack import bulk_clients, db_status_counts, wait_until

from .conftest import StackFactory

pytestmark = pytest.mark.e2e


def test_sender_killed_mid_mailing(stack_factory: StackFactory) -> None:
    slots = 20
    stack = stack_factory(
        senders=2,
        HERALD_SENDER_CONCURRENCY=str(slots),
        HERALD_LEASE_S="3",
        HERALD_PROVIDER_TIMEOUT_S="1.5",
    )
    bulk_clients(stack, 79_500_000_000, 2_000, "crash-sender")
    stack.faults(latency_ms=50)
    mailing_id = stack.start_mailing("crash-sender")
    wait_until(lambda: stack.sim_stats()["accepted"] >= 300, 60, 0.05, "mailing under way")

    stack.group["sender-1"].kill()

    stats = stack.wait_settled(mailing_id, 2_000, timeout=120)
    assert stats["by_status"]["sent"] == 2_000
    sim = stack.sim_stats()
    assert sim["distinct_accepted"] == 2_000
    duplicates = sim["duplicates_accepted_count"]
    print(f"provider duplicates after kill -9 of a sender: {duplicates} (bound: {slots})")
    assert duplicates <= slots


def test_scheduler_killed_mid_fan_out(stack_factory: StackFactory) -> None:
    stack = stack_factory(senders=2, HERALD_FANOUT_CHUNK_SIZE="500")
    bulk_clients(stack, 79_600_000_000, 20_000, "crash-scheduler")
    scheduler = stack.group["scheduler"]
    mark = scheduler.line_count
    mailing_id = stack.start_mailing("crash-scheduler")
    scheduler.wait_for_line("fanout_chunk", timeout=30, since=mark)

    scheduler.kill()
    created = sum(db_status_counts(stack, mailing_id).values())
    assert 0 < created < 20_000, "the kill must land in the middle of the fan-out"
    stack.start_scheduler("scheduler-2")

    stats = stack.wait_settled(mailing_id, 20_000, timeout=180)
    assert stats["by_status"]["sent"] == 20_000
    sim = stack.sim_stats()
    assert sim["distinct_accepted"] == 20_000
    assert sim["duplicates_accepted_count"] == 0


def test_sigterm_to_a_sender_mid_mailing_drains_and_loses_nothing(
    stack_factory: StackFactory,
) -> None:
    """Graceful shutdown: stop consuming, finish what is in hand, exit 0 — no duplicates."""
    stack = stack_factory(senders=2, HERALD_SENDER_CONCURRENCY="20")
    bulk_clients(stack, 79_800_000_000, 2_000, "sigterm")
    stack.faults(latency_ms=50)
    mailing_id = stack.start_mailing("sigterm")
    wait_until(lambda: stack.sim_stats()["accepted"] >= 300, 60, 0.05, "mailing under way")

    sender = stack.group["sender-1"]
    assert sender.terminate(timeout=30) == 0, sender.tail()
    assert "sender_stopped" in sender.output()

    stats = stack.wait_settled(mailing_id, 2_000, timeout=120)
    assert stats["by_status"]["sent"] == 2_000
    sim = stack.sim_stats()
    assert sim["distinct_accepted"] == 2_000
    assert sim["duplicates_accepted_count"] == 0
