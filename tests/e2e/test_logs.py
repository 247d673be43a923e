"""Logs answer an operator's questions: everything about one mailing, one message, one client.

A real mailing runs through the real processes with a flaky provider; every service's output
is captured and searched the way docs/operations.md tells an operator to.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from herald_testing.stack import API_TOKEN, SIM_SECRET, HeraldStack, create_clients, wait_until

from .conftest import StackFactory

pytestmark = pytest.mark.e2e


def all_lines(stack: HeraldStack) -> tuple[list[str], list[dict[str, Any]]]:
    raw = [line for process in stack.group for line in process.lines]
    parsed = []
    for line in raw:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "ts" in entry:
            parsed.append(entry)
    # Each process's lines arrive in its own order; across processes (two senders share a
    # message's attempts) only the timestamp orders them, as docs/operations.md's `sort_by(.ts)`.
    parsed.sort(key=lambda entry: datetime.fromisoformat(entry["ts"]))
    return raw, parsed


def about_message(entry: dict[str, Any], message_id: int) -> bool:
    return entry.get("message_id") == message_id or message_id in (entry.get("message_ids") or [])


@pytest.fixture(scope="module")
def scenario(stack_factory_module: StackFactory) -> dict[str, Any]:
    stack = stack_factory_module(metrics=True)
    client_ids = create_clients(stack, [f"7955000{n:04d}" for n in range(20)], tag="logs")
    edited = client_ids[0]
    assert stack.api.patch(f"/clients/{edited}", json={"timezone": "Asia/Tokyo"}).is_success
    stack.faults(error_ratio=0.4, seed=3)
    now = datetime.now(UTC)
    created = stack.api.post(
        "/mailings",
        json={
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(minutes=10)).isoformat(),
            "text": "log me",
            "filter": {"tags": ["logs"]},
        },
        headers={"X-Request-ID": "req-logs-1"},
    )
    assert created.status_code == 201
    mailing_id = created.json()["id"]
    stack.wait_settled(mailing_id, 20, timeout=60)
    messages = stack.all_messages(mailing_id)
    # A sender logs a call after recording its outcome, so the last lines may still be on their
    # way when the mailing shows settled: wait for one line per call the provider received.
    requests = stack.sim_stats()["requests"]

    def logged() -> tuple[list[str], list[dict[str, Any]]] | None:
        raw, parsed = all_lines(stack)
        calls = [e for e in parsed if e.get("event") == "provider_call"]
        return (raw, parsed) if len(calls) >= requests else None

    raw, parsed = wait_until(logged, 10, what="a log line per provider call")
    return {
        "stack": stack,
        "mailing_id": mailing_id,
        "client_id": edited,
        "messages": messages,
        "raw": raw,
        "lines": parsed,
    }


def test_one_mailing_id_finds_its_request_fan_out_and_every_provider_call(
    scenario: dict[str, Any],
) -> None:
    mailing_id = scenario["mailing_id"]
    lines = [e for e in scenario["lines"] if e.get("mailing_id") == mailing_id]
    events = {(e["service"], e["event"]) for e in lines}

    assert ("api", "http_request") in events
    request = next(e for e in lines if e["event"] == "http_request")
    assert (request["method"], request["status"], request["request_id"]) == (
        "POST",
        201,
        "req-logs-1",
    )
    assert ("api", "mailing_created") in events
    assert {("scheduler", "mailing_started"), ("scheduler", "fanout_chunk")} <= events
    assert ("scheduler", "job_published") in events
    # The scheduler's lines join the API's through the request id carried in AMQP headers.
    received = [e for e in lines if e["event"] == "mailing_event_received"]
    assert received
    assert received[0]["request_id"] == "req-logs-1"
    calls = [e for e in lines if e["event"] == "provider_call"]
    attempts = sum(m["attempts"] for m in scenario["messages"])
    assert len(calls) == attempts == scenario["stack"].sim_stats()["requests"]


def test_one_message_id_gives_its_whole_life(scenario: dict[str, Any]) -> None:
    retried = next(m for m in scenario["messages"] if m["attempts"] >= 2)
    message_id = retried["id"]
    life = [e for e in scenario["lines"] if about_message(e, message_id)]
    events = [e["event"] for e in life]

    assert "job_published" in events
    assert "job_received" in events
    calls = [e for e in life if e["event"] == "provider_call"]
    assert [c["attempt"] for c in calls] == list(range(1, retried["attempts"] + 1))
    assert [c["http_status"] for c in calls][-1] == 200
    assert all(c["http_status"] >= 500 for c in calls[:-1])
    assert all(c["latency_ms"] >= 0 and "body" in c for c in calls)
    # Each attempt's line also says what followed: a retry (when, through which queue) or sent.
    retries = [c for c in calls if c["status"] == "retrying"]
    assert len(retries) == retried["attempts"] - 1
    assert all(r["next_attempt_at"] and r["retry_queue_ttl_ms"] for r in retries)
    assert events[-1] == "provider_call"
    assert life[-1]["status"] == "sent"
    assert all(e.get("client_id") == retried["client_id"] for e in calls)


def test_one_client_id_finds_creation_edits_and_sends(scenario: dict[str, Any]) -> None:
    client_id = scenario["client_id"]
    lines = [e for e in scenario["lines"] if e.get("client_id") == client_id]
    requests = [(e["method"], e["route"]) for e in lines if e["event"] == "http_request"]

    assert ("POST", "/api/v1/clients") in requests
    assert ("PATCH", "/api/v1/clients/{client_id}") in requests
    events = {e["event"] for e in lines}
    assert {"client_created", "client_updated", "provider_call"} <= events
    assert any(e["event"] == "provider_call" and e["status"] == "sent" for e in lines)
    update = next(e for e in lines if e["event"] == "client_updated")
    assert update["fields"] == ["timezone"]


def test_no_line_contains_a_secret(scenario: dict[str, Any]) -> None:
    stack: HeraldStack = scenario["stack"]
    secrets = [API_TOKEN, stack.env["HERALD_PROVIDER_TOKEN"], SIM_SECRET]
    leaks = [line for line in scenario["raw"] for secret in secrets if secret in line]
    assert leaks == []
    assert len(scenario["raw"]) > 100


def test_every_service_exports_what_happened_as_metrics(scenario: dict[str, Any]) -> None:
    """The metrics of docs/metrics.md, served by the real processes, agree with the facts."""
    stack: HeraldStack = scenario["stack"]
    senders = [stack.scrape(name) for name in stack.metrics_ports if name.startswith("sender")]
    scheduler = stack.scrape("scheduler")
    api = stack.scrape("api")

    def total(samples: list[dict[str, float]], key: str) -> float:
        return sum(s.get(key, 0.0) for s in samples)

    calls = sum(
        total(senders, f'herald_provider_calls_total{{outcome="{o}"}}')
        for o in ("sent", "transient", "permanent", "timeout", "connection_error")
    )
    assert calls == stack.sim_stats()["requests"]
    assert total(senders, 'herald_provider_calls_total{outcome="sent"}') == 20
    assert total(senders, 'herald_message_transitions_total{status="sent"}') == 20
    retries = sum(
        v for s in senders for k, v in s.items() if k.startswith("herald_retries_scheduled_total")
    )
    assert retries == calls - 20
    assert scheduler['herald_message_transitions_total{status="pending"}'] == 20
    assert scheduler["herald_scheduler_fanout_messages_total"] == 20
    assert scheduler["herald_scheduler_start_lag_seconds_count"] == 1
    created = 'herald_api_requests_total{method="POST",route="/api/v1/mailings",status="201"}'
    assert api[created] == 1
