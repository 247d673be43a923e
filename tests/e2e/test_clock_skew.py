"""One clock decides, with a real skewed clock: a sender run under libfaketime 5 s behind
measures its offset from PostgreSQL and hands nothing to the provider at or after the end.

Without the correction it would believe the end 5 s away when it has come, and go on
sending for those 5 s (less the guard). The other direction (a clock ahead, which would end
leases early) is covered with an injected offset in services/sender/tests/test_clock_skew.py.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest

from herald_testing.stack import bulk_clients

from .conftest import StackFactory

pytestmark = pytest.mark.e2e

CLIENTS = 400
# The process's wall clock is 5 s behind; its monotonic clock (asyncio's timers) is left alone.
BEHIND = ["faketime", "-f", "-5s"]


@pytest.mark.skipif(shutil.which("faketime") is None, reason="needs Debian's faketime")
def test_a_sender_whose_clock_is_5_s_behind_sends_nothing_after_the_end(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(senders=0, HERALD_SENDER_CONCURRENCY="5")
    sender = stack.start_sender("sender-behind", wrapper=BEHIND, FAKETIME_DONT_FAKE_MONOTONIC="1")
    bulk_clients(stack, 79_630_000_000, CLIENTS, "skewed")
    stack.faults(latency_ms=100)  # about 50 calls a second: the mailing outlasts its end
    ends_at = datetime.now(UTC) + timedelta(seconds=4)
    mailing = stack.create_mailing(filter={"tags": ["skewed"]}, ends_at=ends_at)

    stats = stack.wait_settled(mailing["id"], CLIENTS, timeout=60)

    requests = stack.sim_requests()
    late = [r for r in requests if datetime.fromisoformat(r["received_at"]) >= ends_at]
    assert len(requests) >= 50, "the sender did send until near the end"
    assert late == [], f"{len(late)} calls at or after the end, first {late[0]['received_at']}"
    assert stats["by_status"]["expired"] > 0
    assert stats["by_status"]["sent"] + stats["by_status"]["expired"] == CLIENTS
    assert sender.log_path is not None
    offsets = [
        json.loads(line)["offset_s"]
        for line in sender.log_path.read_text().splitlines()
        if '"clock_offset_measured"' in line
    ]
    assert offsets, "the sender logged no offset"
    assert 4.5 < offsets[-1] < 5.5, offsets
