"""Graceful operations: SIGTERM (what Kubernetes sends before the grace period runs out)
stops each service quickly and cleanly, mid-work, and nothing is lost or left stuck.

The sender's case (drains its provider calls) is in test_crashes.py, the reporter's in
test_reporter.py. Bounds: each service exits 0 well within the 30 s that deploy/k8s gives
the API and the scheduler.
"""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from herald_testing.stack import bulk_clients, db_status_counts, wait_until

from .conftest import StackFactory

pytestmark = pytest.mark.e2e

STOP_BOUND_S = 15.0


def test_sigterm_to_the_scheduler_mid_fan_out_stops_it_and_a_new_one_finishes(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(senders=2, HERALD_FANOUT_CHUNK_SIZE="500")
    bulk_clients(stack, 79_700_000_000, 20_000, "graceful-scheduler")
    scheduler = stack.group["scheduler"]
    mark = scheduler.line_count
    mailing_id = stack.start_mailing("graceful-scheduler")
    scheduler.wait_for_line("fanout_chunk", timeout=30, since=mark)

    started = time.monotonic()
    assert scheduler.terminate(timeout=STOP_BOUND_S) == 0, scheduler.tail()
    took = time.monotonic() - started
    assert "scheduler_stopped" in scheduler.output()
    print(f"scheduler stopped {took:.1f} s after SIGTERM")
    assert 0 < sum(db_status_counts(stack, mailing_id).values()) <= 20_000

    stack.start_scheduler("scheduler-2")
    stats = stack.wait_settled(mailing_id, 20_000, timeout=180)
    assert stats["by_status"]["sent"] == 20_000
    sim = stack.sim_stats()
    assert sim["distinct_accepted"] == 20_000
    assert sim["duplicates_accepted_count"] == 0


def test_sigterm_to_the_api_answers_the_requests_in_hand_then_exits(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(senders=0)
    api = stack.group["api"]
    answers: list[int] = []
    stop = threading.Event()

    def keep_calling() -> None:
        # Requests under way when the signal lands must get their answer, not a reset.
        with httpx.Client(base_url=str(stack.api.base_url), headers=stack.api.headers) as client:
            while not stop.is_set():
                try:
                    answers.append(client.get("/mailings/stats", timeout=5).status_code)
                except httpx.HTTPError:
                    return  # the listener has closed: no new requests, as intended

    callers = [threading.Thread(target=keep_calling) for _ in range(4)]
    for caller in callers:
        caller.start()
    wait_until(lambda: len(answers) >= 40, 30, 0.05, "API under load")
    started = time.monotonic()
    # uvicorn stops accepting, answers what it holds, runs the app's shutdown, then re-raises
    # the signal (its documented behaviour): the exit status says SIGTERM, cleanly.
    assert api.terminate(timeout=STOP_BOUND_S) in (0, -signal.SIGTERM), api.tail()
    took = time.monotonic() - started
    stop.set()
    for caller in callers:
        caller.join(timeout=10)
    print(f"api stopped {took:.1f} s after SIGTERM, {len(answers)} answers")
    assert answers
    assert set(answers) == {200}
    assert '"status":500' not in api.output()
    assert '"event":"api_stopped"' in api.output()

    stack.start_api()
    assert stack.api.get("/mailings/stats").status_code == 200
