"""Operator controls end to end: pause and resume across a sender crash, retry the failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from herald_testing.stack import bulk_clients, wait_until

from .conftest import StackFactory

pytestmark = pytest.mark.e2e


def test_pause_then_resume_across_a_sender_crash_skips_and_repeats_nobody(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(
        senders=2,
        HERALD_SENDER_CONCURRENCY="5",
        HERALD_LEASE_S="3",
        HERALD_PROVIDER_TIMEOUT_S="1.5",
    )
    bulk_clients(stack, 79_700_000_000, 300, "pause")
    stack.faults(latency_ms=100)
    mailing_id = stack.start_mailing("pause")
    wait_until(lambda: stack.sim_stats()["accepted"] >= 30, 30, 0.05, "mailing under way")

    assert stack.api.post(f"/mailings/{mailing_id}/pause").json()["state"] == "paused"
    paused_at = datetime.now(UTC)
    # Calls under way finish (at most 2 senders x 5 slots); then nothing reaches the provider.
    wait_until(lambda: stack.stats(mailing_id)["by_status"]["sending"] == 0, 10)
    calm = stack.sim_stats()["requests"]
    stack.group["sender-1"].kill()
    wait_until(lambda: datetime.now(UTC) > paused_at + timedelta(seconds=4), 10)
    assert stack.sim_stats()["requests"] == calm, "nothing is handed over while paused"
    late = [
        r
        for r in stack.sim_requests()
        if datetime.fromisoformat(r["received_at"]) > paused_at + timedelta(seconds=1)
    ]
    assert late == []
    by_status = stack.stats(mailing_id)["by_status"]
    assert by_status["paused"] > 0
    assert by_status["sent"] + by_status["paused"] == 300

    stack.start_sender("sender-3")
    assert stack.api.post(f"/mailings/{mailing_id}/resume").json()["state"] == "running"

    stats = stack.wait_settled(mailing_id, 300, timeout=90)
    assert stats["by_status"]["sent"] == 300
    sim = stack.sim_stats()
    assert sim["distinct_accepted"] == 300
    assert sim["duplicates_accepted_count"] == 0, "the crash happened while nothing was in flight"


def test_retry_failed_sends_the_failed_messages_again(stack_factory: StackFactory) -> None:
    # A breaker would (rightly) stop hammering a provider failing every call; here attempts
    # must run out, so it is set out of the way.
    stack = stack_factory(senders=1, HERALD_MAX_ATTEMPTS="2", HERALD_BREAKER_FAILURES="100000")
    bulk_clients(stack, 79_710_000_000, 50, "retry")
    stack.faults(error_ratio=1.0)
    mailing_id = stack.start_mailing("retry")
    stats = stack.wait_settled(mailing_id, 50, timeout=60)
    assert stats["by_status"]["failed"] == 50
    stack.faults(error_ratio=0.0)

    response = stack.api.post(f"/mailings/{mailing_id}/retry-failed")

    assert response.json() == {"requeued": 50}
    stats = stack.wait_settled(mailing_id, 50, timeout=60)
    assert stats["by_status"]["sent"] == 50
    assert stack.sim_stats()["distinct_accepted"] == 50
