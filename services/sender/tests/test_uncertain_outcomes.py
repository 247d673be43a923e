"""Outcomes Herald cannot know (the provider may have taken the message), a provider asking
for a longer pause than Herald waits, and a connect that would cross the mailing's end."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from herald_common.contracts import DeliveryJob
from herald_sender import metrics
from herald_sender.provider import ProviderClient
from herald_sender.worker import DeliveryWorker

from .conftest import Rig
from .test_worker import make_messages, messages


def failing_worker(rig: Rig, provider: ProviderClient | None = None) -> DeliveryWorker:
    """The rig's worker with HERALD_UNCERTAIN_OUTCOME=fail."""
    return rig.worker_with(provider=provider, uncertain_outcome="fail")


def uncertain(action: str) -> float:
    return metrics.UNCERTAIN.labels(action)._value.get()


async def test_a_timeout_after_the_request_left_is_resent_and_counted_by_default(
    rig: Rig,
) -> None:
    mailing_id, ids = await make_messages(rig, 2)
    await rig.faults(hang_ratio=1.0)
    before = uncertain("resent")

    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    assert {m["status"] for m in await messages(rig)} == {"retrying"}
    assert uncertain("resent") == before + 2


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param({"hang_ratio": 1.0}, id="timeout-after-writing"),
        pytest.param({"outage": True}, id="connection-dropped-after-writing"),
    ],
)
async def test_with_fail_an_unknown_outcome_ends_failed_and_is_not_sent_again(
    rig: Rig, faults: dict[str, object]
) -> None:
    mailing_id, ids = await make_messages(rig, 2)
    await rig.faults(**faults)
    before = uncertain("failed")

    await failing_worker(rig).deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    rows = await messages(rig)
    assert {(m["status"], m["attempts"]) for m in rows} == {("failed", 1)}
    assert all(str(m["last_error"]).startswith("outcome unknown: ") for m in rows), rows
    assert uncertain("failed") == before + 2


async def test_with_fail_a_refused_connection_is_still_retried_it_never_left(rig: Rig) -> None:
    mailing_id, ids = await make_messages(rig, 1)
    async with ProviderClient(
        "http://127.0.0.1:9/v1", "token", concurrency=5, connect_timeout_s=0.5, timeout_s=0.5
    ) as nowhere:
        await failing_worker(rig, nowhere).deliver(
            DeliveryJob(mailing_id=mailing_id, message_ids=ids)
        )

    [row] = await messages(rig)
    assert row["status"] == "retrying"
    assert str(row["last_error"]).startswith("connection error")


async def test_a_retry_after_longer_than_the_longest_retry_delay_is_capped(rig: Rig) -> None:
    mailing_id, ids = await make_messages(rig, 1)
    await rig.faults(status_429_ratio=1.0, retry_after_s=3600)
    capped_before = metrics.RETRY_AFTER_CAPPED._value.get()

    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    async with rig.engine.connect() as conn:
        paused_for = await conn.scalar(
            text("SELECT extract(epoch FROM paused_until - now()) FROM provider_throttle")
        )
    # HERALD_RETRY_MAX_MS is 800 here: every sender waits that long, not an hour.
    assert float(paused_for) <= 0.8
    [row] = await messages(rig)
    assert (row["status"], row["attempts"]) == ("retrying", 0)
    assert metrics.RETRY_AFTER_CAPPED._value.get() == capped_before + 1


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose accept queue is full: a new connection's handshake never completes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):  # Linux takes backlog + 1 handshakes, then drops SYNs
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.2)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


async def test_connecting_gives_up_when_the_mailing_ends_not_at_the_connect_timeout(
    unanswered_port: int,
) -> None:
    async with ProviderClient(
        f"http://127.0.0.1:{unanswered_port}/v1",
        "token",
        concurrency=5,
        connect_timeout_s=3,
        timeout_s=10,
    ) as provider:
        started = time.monotonic()
        result = await provider.send(1, "79001234567", "hi", connect_within_s=0.3)
        elapsed = time.monotonic() - started

    assert 0.25 <= elapsed < 1.5, elapsed  # the end's limit, not the 3 s connect timeout
    assert result.http_status is None
    assert result.judgement.reason == "timeout: no connection within the limit"
    assert result.judgement.uncertain is False  # the request never left
