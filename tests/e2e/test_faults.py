"""Rule 5, end to end: the provider misbehaves (5xx bursts, hangs, garbage 200s, refused
connections, long outages) and Herald delivers everything once it recovers, stays fast, and never
hands a message over at or after the end.

The tests share one Herald whose backoff is short (200 ms … 800 ms) and whose attempts are not the
limit (100, the most HERALD_MAX_ATTEMPTS accepts: over 80 s of retries). The senders' circuit
breaker is a second backoff (its cooldown doubles while probes fail); its longest cooldown is set
to 2 s, so an outage of 8 s is longer than every backoff there is. Each test resets the simulator
and targets its own tag. After each, the invariants of ``assert_invariants`` hold.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from herald_testing.stack import HeraldStack, create_clients, wait_until

from .conftest import StackFactory

pytestmark = pytest.mark.e2e

NON_TERMINAL = ("pending", "sending", "retrying", "deferred", "paused")
TERMINAL = ("sent", "failed", "expired", "cancelled")
FAULTS_ENV = {
    "HERALD_RETRY_BASE_MS": "200",
    "HERALD_RETRY_MAX_MS": "800",
    "HERALD_MAX_ATTEMPTS": "100",
    "HERALD_PROVIDER_TIMEOUT_S": "1",
    "HERALD_BREAKER_COOLDOWN_S": "1",
    "HERALD_BREAKER_MAX_COOLDOWN_S": "2",
}


@pytest.fixture(scope="module")
def faults_stack(stack_factory_module: StackFactory) -> HeraldStack:
    return stack_factory_module(senders=2, **FAULTS_ENV)


@pytest.fixture
def stack(faults_stack: HeraldStack) -> Iterator[HeraldStack]:
    if not faults_stack.group["simulator"].is_running():  # a failed test left it stopped
        faults_stack.start_simulator()
    faults_stack.sim.post("/reset").raise_for_status()
    yield faults_stack
    if faults_stack.group["simulator"].is_running():
        faults_stack.sim.post("/reset").raise_for_status()


def phones(prefix: int, count: int) -> list[str]:
    return [f"7{prefix:03d}{n:07d}" for n in range(count)]


def requests_by_id(stack: HeraldStack, ids: set[int]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for request in stack.sim_requests():
        if request["id"] in ids:
            grouped[request["id"]].append(request)
    return grouped


def assert_invariants(
    stack: HeraldStack, mailing: dict[str, Any], clients: int, name: str
) -> dict[str, Any]:
    """Every targeted message in exactly one terminal status; nothing reached the provider at or
    after ends_at; the duplicates the provider accepted are reported (and returned)."""
    stats = stack.stats(mailing["id"])
    by = stats["by_status"]
    assert stats["total"] == clients, stats
    assert all(by.get(status, 0) == 0 for status in NON_TERMINAL), by
    assert sum(by[status] for status in TERMINAL) == clients, by
    messages = stack.all_messages(mailing["id"])
    assert len(messages) == clients
    assert len({m["client_id"] for m in messages}) == clients  # one message per client
    assert all(m["status"] in TERMINAL for m in messages)
    ends_at = datetime.fromisoformat(mailing["ends_at"])
    ids = {m["id"] for m in messages}
    received = [r for r in stack.sim_requests() if r["id"] in ids]
    late = [r for r in received if datetime.fromisoformat(r["received_at"]) >= ends_at]
    assert not late, f"{len(late)} requests received at/after ends_at, first: {late[:3]}"
    sim = stack.sim_stats()
    print(
        f"[{name}] by_status={ {k: v for k, v in by.items() if v} } "
        f"provider requests={len(received)} duplicates_accepted_count="
        f"{sim['duplicates_accepted_count']}"
    )
    return sim


def test_burst_of_5xx_then_recovery(stack: HeraldStack) -> None:
    clients = 200
    create_clients(stack, phones(921, clients), tag="f-5xx")
    stack.faults(error_ratio=1.0, seed=11)
    mailing = stack.create_mailing(filter={"tags": ["f-5xx"]})
    # Every message fails at least once, then the burst goes on a little longer.
    wait_until(lambda: stack.sim_stats()["distinct_ids"] == clients, 30, what="first attempts")
    time.sleep(2)
    stack.faults(error_ratio=0.0)

    stack.wait_settled(mailing["id"], clients, timeout=30)

    sim = assert_invariants(stack, mailing, clients, "5xx burst")
    assert stack.stats(mailing["id"])["by_status"]["sent"] == clients
    assert sim["by_outcome"]["error"] >= clients
    assert sim["distinct_accepted"] == clients
    assert sim["duplicates_accepted_count"] == 0
    messages = stack.all_messages(mailing["id"])
    assert all(m["attempts"] > 1 for m in messages)
    grouped = requests_by_id(stack, {m["id"] for m in messages})
    for message in messages:
        outcomes = [r["outcome"] for r in grouped[message["id"]]]
        # One request per attempt: errors, then exactly one accepted, the last.
        assert len(outcomes) == message["attempts"], (message, outcomes)
        assert outcomes[-1] == "ok", (message, outcomes)
        assert outcomes.count("ok") == 1, (message, outcomes)


def _timed_gets(stack: HeraldStack, path: str, params: dict[str, Any], count: int) -> list[float]:
    durations = []
    for _ in range(count):
        started = time.perf_counter()
        response = stack.api.get(path, params=params)
        durations.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return durations


def _p99(durations: list[float]) -> float:
    return statistics.quantiles(durations, n=100, method="inclusive")[98]


def test_hangs_longer_than_the_timeout(stack: HeraldStack) -> None:
    """30 % of calls hang (5 s) past the sender's 1 s limit: they time out and are retried."""
    clients = 200
    create_clients(stack, phones(922, clients), tag="f-hang")
    stack.faults(hang_ratio=0.3, hang_s=5, seed=12)
    mailing = stack.create_mailing(filter={"tags": ["f-hang"]})

    stack.wait_settled(mailing["id"], clients, timeout=60)

    sim = assert_invariants(stack, mailing, clients, "hangs 30%")
    assert stack.stats(mailing["id"])["by_status"]["sent"] == clients
    assert sim["by_outcome"]["hang"] >= 30
    assert sim["distinct_accepted"] == clients
    assert sim["duplicates_accepted_count"] == 0
    messages = stack.all_messages(mailing["id"])
    grouped = requests_by_id(stack, {m["id"] for m in messages})
    for message in messages:
        outcomes = [r["outcome"] for r in grouped[message["id"]]]
        assert len(outcomes) == message["attempts"], (message, outcomes)
        assert outcomes[-1] == "ok", (message, outcomes)
        assert set(outcomes[:-1]) <= {"hang"}, (message, outcomes)


def test_api_stays_fast_while_every_call_hangs(stack: HeraldStack) -> None:
    """Rule 5: with every provider call hanging, p99 of two API reads stays under 100 ms."""
    clients = 400
    create_clients(stack, phones(923, clients), tag="f-hang-all")
    idle = {
        "stats": _timed_gets(stack, "/mailings/stats", {}, 200),
        "clients": _timed_gets(stack, "/clients", {"limit": 50}, 200),
    }
    for label, durations in idle.items():
        print(
            f"[api, provider idle] GET {label}: p50={statistics.median(durations):.1f} ms "
            f"p99={_p99(durations):.1f} ms max={max(durations):.1f} ms"
        )
    stack.faults(hang_ratio=1.0, hang_s=5, seed=13)
    mailing = stack.create_mailing(filter={"tags": ["f-hang-all"]})
    wait_until(lambda: stack.sim_stats()["by_outcome"]["hang"] >= clients, 30, what="all hang")

    stats_ms = _timed_gets(stack, f"/mailings/{mailing['id']}/stats", {}, 200)
    clients_ms = _timed_gets(stack, "/clients", {"limit": 50}, 200)
    hung = stack.sim_stats()["by_outcome"]["hang"]
    stack.faults(hang_ratio=0.0)
    for label, durations in (("stats", stats_ms), ("clients?limit=50", clients_ms)):
        print(
            f"[api while provider hangs] GET {label}: n={len(durations)} "
            f"p50={statistics.median(durations):.1f} ms p99={_p99(durations):.1f} ms "
            f"max={max(durations):.1f} ms (hung calls so far: {hung})"
        )

    stack.wait_settled(mailing["id"], clients, timeout=60)
    sim = assert_invariants(stack, mailing, clients, "hangs 100%")
    assert stack.stats(mailing["id"])["by_status"]["sent"] == clients
    assert sim["duplicates_accepted_count"] == 0
    assert _p99(stats_ms) < 100
    assert _p99(clients_ms) < 100


def test_malformed_200_bodies_are_never_counted_sent(stack: HeraldStack) -> None:
    clients = 200
    create_clients(stack, phones(924, clients), tag="f-garbage")
    stack.faults(malformed_ratio=0.5, seed=14)
    mailing = stack.create_mailing(filter={"tags": ["f-garbage"]})

    stack.wait_settled(mailing["id"], clients, timeout=60)

    sim = assert_invariants(stack, mailing, clients, "malformed 50%")
    assert sim["by_outcome"]["malformed"] >= 50
    assert sim["duplicates_accepted_count"] == 0
    messages = stack.all_messages(mailing["id"])
    sent_ids = {m["id"] for m in messages if m["status"] == "sent"}
    assert len(sent_ids) == clients
    grouped = requests_by_id(stack, {m["id"] for m in messages})
    accepted = {i for i, rs in grouped.items() if any(r["outcome"] == "ok" for r in rs)}
    assert accepted == sent_ids
    for message in messages:
        outcomes = [r["outcome"] for r in grouped[message["id"]]]
        # Every garbage reply was followed by another attempt; only a real OK ended it.
        assert len(outcomes) == message["attempts"], (message, outcomes)
        assert outcomes[-1] == "ok", (message, outcomes)
        assert set(outcomes[:-1]) <= {"malformed"}, (message, outcomes)


def test_connection_refused_while_the_provider_is_down(stack: HeraldStack) -> None:
    clients = 100
    create_clients(stack, phones(925, clients), tag="f-refused")
    stack.group["simulator"].terminate()
    mailing = stack.create_mailing(filter={"tags": ["f-refused"]})

    def retrying_on_connection() -> list[dict[str, Any]]:
        return [
            m
            for m in stack.all_messages(mailing["id"])
            if m["status"] == "retrying" and "connection" in (m["last_error"] or "").lower()
        ]

    seen = wait_until(retrying_on_connection, 20, what="messages retrying on connection errors")
    print(f"[connection refused] e.g. last_error={seen[0]['last_error']!r}")
    time.sleep(3)
    assert stack.stats(mailing["id"])["by_status"]["sent"] == 0
    restarted_at = time.monotonic()
    stack.start_simulator()

    stack.wait_settled(mailing["id"], clients, timeout=30)

    print(f"[connection refused] settled {time.monotonic() - restarted_at:.1f} s after restart")
    sim = assert_invariants(stack, mailing, clients, "connection refused")
    assert stack.stats(mailing["id"])["by_status"]["sent"] == clients
    assert sim["distinct_accepted"] == clients
    assert sim["duplicates_accepted_count"] == 0
    assert all(m["attempts"] > 1 for m in stack.all_messages(mailing["id"]))
    assert not [p.name for p in stack.group.exited()]


def test_outage_longer_than_the_longest_backoff(stack: HeraldStack) -> None:
    """An 8 s outage (connections dropped) against backoff steps of at most 0.8 s."""
    clients = 100
    create_clients(stack, phones(926, clients), tag="f-outage")
    stack.faults(outage=True)
    mailing = stack.create_mailing(filter={"tags": ["f-outage"]})
    time.sleep(8)
    during = stack.sim_stats()
    late_in_outage = [
        r
        for r in stack.sim_requests()
        if time.time() - r["received_ts"] < 3 and r["outcome"] == "outage"
    ]
    by = stack.stats(mailing["id"])["by_status"]
    assert by["sent"] == 0, by
    assert by["failed"] == 0, by
    recovered_at = time.monotonic()
    stack.faults(outage=False)

    stack.wait_settled(mailing["id"], clients, timeout=30)

    recovery = time.monotonic() - recovered_at
    print(
        f"[outage 8 s] requests during the outage={during['by_outcome']['outage']} "
        f"(~{during['by_outcome']['outage'] / clients:.1f} per message); "
        f"{len(late_in_outage)} in its last 3 s; all sent {recovery:.1f} s after it ended"
    )
    sim = assert_invariants(stack, mailing, clients, "outage 8 s")
    assert stack.stats(mailing["id"])["by_status"]["sent"] == clients
    # Every message was tried, and Herald kept trying (probes) to the end of the outage.
    assert during["distinct_ids"] == clients
    assert late_in_outage
    assert sim["distinct_accepted"] == clients
    assert sim["duplicates_accepted_count"] == 0
    # Longest waits: cooldown 2 s, retry step 0.8 s; plus the jobs' round trips.
    assert recovery < 10


def test_end_passing_during_an_outage(stack: HeraldStack) -> None:
    """Part is sent, then an outage outlasts ends_at: the rest is expired and nothing reaches
    the provider at or after ends_at (the simulator records requests during the outage too)."""
    clients = 200
    create_clients(stack, phones(927, clients), tag="f-end")
    stack.faults(error_ratio=0.5, seed=15)
    ends_at = datetime.now(UTC) + timedelta(seconds=6)
    mailing = stack.create_mailing(filter={"tags": ["f-end"]}, ends_at=ends_at)
    wait_until(lambda: stack.sim_stats()["accepted"] >= 30, 20, 0.05, what="some sent")
    stack.faults(outage=True, error_ratio=0.0)
    wait_until(lambda: datetime.now(UTC) > ends_at + timedelta(seconds=1.5), 15)
    stack.faults(outage=False)

    stack.wait_settled(mailing["id"], clients, timeout=30)

    sim = assert_invariants(stack, mailing, clients, "end during outage")
    by = stack.stats(mailing["id"])["by_status"]
    assert by["sent"] == sim["distinct_accepted"] > 0
    assert by["expired"] == clients - by["sent"] > 0
    assert sim["by_outcome"]["outage"] > 0, "the outage must have been hit"
    assert sim["duplicates_accepted_count"] == 0
    last = max(datetime.fromisoformat(r["received_at"]) for r in stack.sim_requests())
    print(f"[end during outage] last request {(ends_at - last).total_seconds():.2f} s before end")
    messages = stack.all_messages(mailing["id"])
    assert Counter(m["status"] for m in messages) == Counter(
        {"sent": by["sent"], "expired": by["expired"]}
    )
