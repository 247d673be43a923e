"""The delivery worker against a real database, a real broker and the provider simulator."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aio_pika
from sqlalchemy import text

from herald_common.contracts import DeliveryJob
from herald_common.rules.backoff import retry_tiers
from herald_common.rules.breaker import CircuitBreaker, CircuitState
from herald_common.topology import DELIVER_QUEUE, retry_queue_name
from herald_sender.slots import Slots
from herald_testing.factories import insert_clients, insert_mailing, utcnow

from .conftest import Rig


async def make_messages(rig: Rig, count: int, **mailing: object) -> tuple[int, list[int]]:
    async with rig.engine.begin() as conn:
        await insert_clients(conn, count, first_phone=79_001_000_000)
        mailing_id = await insert_mailing(conn, text_="Sale!", **mailing)  # type: ignore[arg-type]
        rows = await conn.execute(
            text(
                "INSERT INTO message (mailing_id, client_id, status) "
                "SELECT :m, id, 'pending' FROM client ORDER BY id RETURNING id"
            ),
            {"m": mailing_id},
        )
        return mailing_id, [r[0] for r in rows]


async def messages(rig: Rig) -> list[dict[str, object]]:
    async with rig.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT id, status, attempts, last_error, sent_at, next_attempt_at, lease_until "
                "FROM message ORDER BY id"
            )
        )
        return [dict(r._mapping) for r in rows]


async def test_job_delivers_each_message_once_with_the_contract_fields(rig: Rig) -> None:
    mailing_id, ids = await make_messages(rig, 30)

    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    rows = await messages(rig)
    assert [(r["status"], r["attempts"]) for r in rows] == [("sent", 1)] * 30
    assert all(r["sent_at"] is not None and r["lease_until"] is None for r in rows)
    received = await rig.received()
    assert sorted(r["id"] for r in received) == ids
    first = min(received, key=lambda r: int(str(r["id"])))
    assert first["phone"] == 79_001_000_000
    assert first["text"] == "Sale!"


async def test_a_duplicate_job_does_not_reach_the_provider_again(rig: Rig) -> None:
    mailing_id, ids = await make_messages(rig, 5)
    job = DeliveryJob(mailing_id=mailing_id, message_ids=ids)

    await rig.worker.deliver(job)
    await rig.worker.deliver(job)

    assert len(await rig.received()) == 5


async def test_5xx_schedules_a_retry_through_the_delay_queue(rig: Rig) -> None:
    mailing_id, ids = await make_messages(rig, 1)
    await rig.faults(error_ratio=1.0)
    before = datetime.now(UTC)

    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    [row] = await messages(rig)
    assert row["status"] == "retrying"
    assert row["attempts"] == 1
    assert str(row["last_error"]).startswith("HTTP 5")
    next_at = row["next_attempt_at"]
    assert isinstance(next_at, datetime)
    assert (
        before + timedelta(milliseconds=75)
        <= next_at
        <= datetime.now(UTC) + timedelta(milliseconds=100)
    )
    # The retry job sits in the first tier, and comes back to the delivery queue by itself.
    channel = await rig.broker.channel()
    tier = retry_tiers(rig.settings.retry_base_ms, rig.settings.retry_max_ms)[0]
    deliver = await channel.declare_queue(DELIVER_QUEUE, passive=True)
    returned = None
    for _ in range(50):
        returned = await deliver.get(no_ack=True, fail=False)
        if returned is not None:
            break
        await asyncio.sleep(0.05)
    assert isinstance(returned, aio_pika.abc.AbstractIncomingMessage)
    assert DeliveryJob.decode(returned.body).message_ids == ids
    # Where it waited is in its dead-letter history (counting the tier's queue instead races its
    # 100 ms time to live).
    [death] = returned.headers["x-death"]
    assert isinstance(death, dict)
    assert (death["queue"], death["reason"]) == (retry_queue_name(tier), "expired")


async def test_retries_until_sent_once_the_provider_recovers(rig: Rig) -> None:
    mailing_id, ids = await make_messages(rig, 1)
    await rig.faults(error_ratio=1.0)
    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))
    await rig.faults(error_ratio=0.0)

    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    [row] = await messages(rig)
    assert (row["status"], row["attempts"]) == ("sent", 2)


async def test_exhausted_attempts_end_failed_with_the_last_reason(rig: Rig) -> None:
    mailing_id, ids = await make_messages(rig, 1)
    await rig.faults(error_ratio=1.0)
    for _ in range(rig.settings.max_attempts):
        await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    [row] = await messages(rig)
    assert row["status"] == "failed"
    assert row["attempts"] == 3
    assert "gave up after 3 attempts" in str(row["last_error"])
    # Another job for it changes nothing: failed is terminal.
    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))
    assert len(await rig.received()) == 3


async def test_malformed_200_is_never_counted_as_sent(rig: Rig) -> None:
    mailing_id, ids = await make_messages(rig, 10)
    await rig.faults(malformed_ratio=1.0)

    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    rows = await messages(rig)
    assert {r["status"] for r in rows} == {"retrying"}
    assert all("HTTP 200" in str(r["last_error"]) for r in rows)


async def test_a_hanging_provider_times_out_into_a_retry(rig: Rig) -> None:
    mailing_id, ids = await make_messages(rig, 2)
    await rig.faults(hang_ratio=1.0)

    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    rows = await messages(rig)
    assert {r["status"] for r in rows} == {"retrying"}
    assert all(str(r["last_error"]).startswith("timeout") for r in rows)


async def test_a_dropped_connection_is_retried(rig: Rig) -> None:
    mailing_id, ids = await make_messages(rig, 2)
    await rig.faults(outage=True)

    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    rows = await messages(rig)
    assert {r["status"] for r in rows} == {"retrying"}
    assert all(str(r["last_error"]).startswith("connection error") for r in rows)


async def test_nothing_is_sent_within_the_guard_before_the_end(rig: Rig) -> None:
    now = utcnow()
    mailing_id, ids = await make_messages(
        rig, 3, starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(milliseconds=300)
    )

    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    assert {r["status"] for r in await messages(rig)} == {"expired"}
    assert await rig.received() == []


async def test_closed_window_defers_to_the_next_opening_without_a_call(rig: Rig) -> None:
    # Moscow is UTC+3 all year: a window starting two hours from now (local) is closed now.
    now = utcnow()
    local = now.astimezone(UTC) + timedelta(hours=3)
    start = (local + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    end = (local + timedelta(hours=3)).time().replace(second=0, microsecond=0)
    mailing_id, ids = await make_messages(
        rig, 2, ends_at=now + timedelta(days=1), window=(start, end)
    )

    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    rows = await messages(rig)
    assert [(r["status"], r["attempts"]) for r in rows] == [("deferred", 0)] * 2
    expected = datetime.combine((local + timedelta(hours=2)).date(), start, tzinfo=UTC) - timedelta(
        hours=3
    )
    assert rows[0]["next_attempt_at"] == expected
    assert await rig.received() == []


async def test_open_window_sends(rig: Rig) -> None:
    local = utcnow() + timedelta(hours=3)  # Moscow
    start = (local - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (local + timedelta(hours=1)).time().replace(second=0, microsecond=0)
    mailing_id, ids = await make_messages(rig, 1, window=(start, end))

    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    assert [r["status"] for r in await messages(rig)] == ["sent"]


async def test_deleted_mailing_or_client_cancels_instead_of_sending(rig: Rig) -> None:
    mailing_id, ids = await make_messages(rig, 3)
    async with rig.engine.begin() as conn:
        await conn.execute(text("UPDATE client SET deleted_at = now() WHERE id = 1"))
    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids[:2]))
    async with rig.engine.begin() as conn:
        await conn.execute(text("UPDATE mailing SET deleted_at = now()"))
    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids[2:]))

    assert [r["status"] for r in await messages(rig)] == ["cancelled", "sent", "cancelled"]
    assert [r["id"] for r in await rig.received()] == [ids[1]]


async def test_a_message_leased_by_another_sender_is_left_alone_until_the_lease_ends(
    rig: Rig,
) -> None:
    mailing_id, ids = await make_messages(rig, 2)
    async with rig.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE message SET status = 'sending', attempts = 1, lease_until = "
                "CASE WHEN id = :a THEN now() + interval '1 h' ELSE now() - interval '1 s' END"
            ),
            {"a": ids[0]},
        )

    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    rows = await messages(rig)
    assert [(r["status"], r["attempts"]) for r in rows] == [("sending", 1), ("sent", 2)]


async def test_an_outcome_superseded_by_a_newer_claim_is_not_written(rig: Rig) -> None:
    from herald_common.rules.outcomes import Outcome
    from herald_common.statuses import MessageStatus

    _mailing_id, ids = await make_messages(rig, 1)
    async with rig.engine.begin() as conn:
        await conn.execute(text("UPDATE message SET status = 'sending', attempts = 2"))
    recorder = rig.worker._recorder

    stale = await recorder.record(
        Outcome(MessageStatus.FAILED, attempts=1, error="old"),
        message_id=ids[0],
        claimed_attempts=1,
    )
    fresh = await recorder.record(
        Outcome(MessageStatus.SENT, attempts=2, sent_at=utcnow()),
        message_id=ids[0],
        claimed_attempts=2,
    )

    assert (stale, fresh) == (False, True)
    assert [r["status"] for r in await messages(rig)] == ["sent"]


async def test_a_refused_token_spends_no_attempt_and_opens_the_circuit(rig: Rig) -> None:
    mailing_id, ids = await make_messages(rig, 5)
    await rig.faults(unauthorized=True)

    await asyncio.wait_for(
        rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids)), timeout=10
    )

    rows = await messages(rig)
    assert {r["status"] for r in rows} == {"retrying"}
    assert {r["attempts"] for r in rows} == {0}, "a 401 must not spend attempts"
    assert all("401" in str(r["last_error"]) for r in rows)
    assert rig.worker._gate.state == CircuitState.OPEN
    # The provider accepts the token again: the next probe closes the circuit, all are sent.
    await rig.faults(unauthorized=False)
    await asyncio.wait_for(
        rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids)), timeout=10
    )
    rows = await messages(rig)
    assert [(r["status"], r["attempts"]) for r in rows] == [("sent", 1)] * 5
    assert rig.worker._gate.state == CircuitState.CLOSED


async def test_a_429_pauses_every_replica_and_spends_no_attempt(rig: Rig) -> None:
    mailing_id, ids = await make_messages(rig, 1)
    await rig.faults(status_429_ratio=1.0, retry_after_s=3)
    # Retry-After is capped at the longest retry delay: let that be longer than 3 s here.
    worker = rig.worker_with(retry_max_ms=5_000)

    await worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    [row] = await messages(rig)
    assert (row["status"], row["attempts"]) == ("retrying", 0)
    async with rig.engine.connect() as conn:
        paused_for = await conn.scalar(
            text("SELECT extract(epoch FROM paused_until - now()) FROM provider_throttle")
        )
    # The provider's Retry-After, less the moments since (up to 2 s of them on a slow machine).
    assert 1.0 < float(paused_for) <= 3.0
    # Another replica (a second gate on the same database) waits for the pause too: it is let
    # through no sooner than the pause's end.
    from herald_sender.gate import ProviderGate

    other = ProviderGate(rig.engine, CircuitBreaker())
    await other.admit(10)
    async with rig.engine.connect() as conn:
        over = await conn.scalar(
            text("SELECT clock_timestamp() >= paused_until FROM provider_throttle")
        )
    assert over is True


async def test_many_failures_in_a_row_open_the_circuit_and_hold_the_rest(rig: Rig) -> None:
    from herald_sender.gate import ProviderGate

    rig.worker._gate = ProviderGate(
        rig.engine, CircuitBreaker(failure_threshold=3, base_cooldown_s=30)
    )
    rig.worker._min_claim = 1
    rig.worker._slots = Slots(1)  # one call at a time, to count exactly
    mailing_id, ids = await make_messages(rig, 6)
    await rig.faults(error_ratio=1.0)

    task = asyncio.create_task(
        rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))
    )
    # Until the one admitted before the circuit opened has been given back; then a moment
    # more, in which a call after the opening would have been made.
    for _ in range(200):
        rows = await messages(rig)
        if rows[3]["status"] == "retrying":
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)

    assert len(await rig.received()) == 3, "no call after the circuit opened"
    rows = await messages(rig)
    assert [(r["status"], r["attempts"]) for r in rows[:3]] == [("retrying", 1)] * 3
    # One was admitted before the circuit opened: claimed, then given back at the hand-off
    # without spending an attempt. The others are not even claimed while it is open.
    assert [(r["status"], r["attempts"]) for r in rows[3:]] == [
        ("retrying", 0),
        ("pending", 0),
        ("pending", 0),
    ]
    task.cancel()


async def test_the_global_rate_limit_spaces_calls(rig: Rig) -> None:
    from herald_sender.gate import ProviderGate

    rig.worker._gate = ProviderGate(rig.engine, CircuitBreaker(), rate_per_s=20, burst=5)
    rig.worker._min_claim = 1
    mailing_id, ids = await make_messages(rig, 25)
    loop = asyncio.get_running_loop()
    started = loop.time()

    await rig.worker.deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    elapsed = loop.time() - started
    # 25 calls at 20/s with a burst of 5: at least (25 - 5) / 20 = 1 s.
    assert elapsed >= 0.95
    assert {r["status"] for r in await messages(rig)} == {"sent"}
