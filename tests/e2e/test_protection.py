"""Protection of the provider, end to end: a refused token, a dead provider, a 429."""

from __future__ import annotations

import time

import pytest

from herald_testing.stack import HeraldStack, bulk_clients, wait_until

from .conftest import StackFactory

pytestmark = pytest.mark.e2e

SENDERS = ("sender-1", "sender-2")


def counted(stack: HeraldStack, sender: str, sample: str) -> float:
    """One sample of a sender's /metrics, 0 before its first increment."""
    return stack.scrape(sender).get(sample, 0)


@pytest.fixture(scope="module")
def guarded(stack_factory_module: StackFactory) -> HeraldStack:
    return stack_factory_module(
        senders=2,
        metrics=True,
        HERALD_SENDER_CONCURRENCY="10",
        HERALD_BREAKER_FAILURES="5",
        HERALD_BREAKER_COOLDOWN_S="1",
        HERALD_BREAKER_MAX_COOLDOWN_S="2",
    )


@pytest.fixture
def stack(guarded: HeraldStack) -> HeraldStack:
    guarded.sim.post("/reset").raise_for_status()
    return guarded


def test_a_refused_token_spends_no_attempts_and_delivery_resumes_by_itself(
    stack: HeraldStack,
) -> None:
    bulk_clients(stack, 79_900_000_000, 200, "token")
    stack.faults(unauthorized=True)
    mailing_id = stack.start_mailing("token")
    time.sleep(6)

    refused = stack.sim_stats()["rejected"]["401"]
    # The calls in flight when the first 401 came back, then one probe per cooldown per sender.
    assert 0 < refused <= 2 * 10 + 2 * 6, refused
    circuit = sum(
        counted(stack, name, 'herald_provider_circuit_opened_total{reason="auth"}')
        for name in SENDERS
    )
    assert circuit >= 1
    stack.faults(unauthorized=False)

    stats = stack.wait_settled(mailing_id, 200, timeout=60)
    assert stats["by_status"]["sent"] == 200
    messages = stack.all_messages(mailing_id)
    assert {m["attempts"] for m in messages} == {1}, "401s must not count as attempts"


def test_a_dead_provider_gets_a_trickle_of_probes_not_a_flood(stack: HeraldStack) -> None:
    bulk_clients(stack, 79_910_000_000, 300, "dead")
    stack.faults(outage=True)
    opened = 'herald_provider_circuit_opened_total{reason="failures"}'
    opened_before = {name: counted(stack, name, opened) for name in SENDERS}
    mailing_id = stack.start_mailing("dead")
    # The first round (every slot's call) is allowed; count from when both circuits are open
    # and those calls are back.
    wait_until(
        lambda: all(counted(stack, name, opened) > opened_before[name] for name in SENDERS),
        30,
        what="both senders' circuits open",
    )
    time.sleep(1)
    before = stack.sim_stats()["requests"]
    time.sleep(6)
    during = stack.sim_stats()["requests"] - before

    # Without a breaker, 2 x 10 slots retrying every 200 ms would make hundreds of calls.
    assert during <= 2 * 6, during
    stack.faults(outage=False)
    stats = stack.wait_settled(mailing_id, 300, timeout=60)
    assert stats["by_status"]["sent"] == 300


def test_a_429_slows_every_sender_and_spends_no_attempt(stack: HeraldStack) -> None:
    bulk_clients(stack, 79_920_000_000, 100, "throttle")
    stack.faults(status_429_ratio=0.2, retry_after_s=1, seed=5)
    mailing_id = stack.start_mailing("throttle")

    stats = stack.wait_settled(mailing_id, 100, timeout=60)

    assert stats["by_status"]["sent"] == 100
    assert stack.sim_stats()["by_outcome"]["429"] > 0
    assert {m["attempts"] for m in stack.all_messages(mailing_id)} == {1}
    throttled = sum(counted(stack, name, "herald_provider_throttled_total") for name in SENDERS)
    assert throttled == stack.sim_stats()["by_outcome"]["429"]
