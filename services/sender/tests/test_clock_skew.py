"""One clock decides: a sender whose own clock is 5 s off judges the end and leases on the
database's clock, as measured, not on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from herald_common.clock import DatabaseClock
from herald_common.contracts import DeliveryJob
from herald_sender.worker import DeliveryWorker

from .conftest import Rig
from .test_worker import make_messages, messages

SKEW = timedelta(seconds=5)


def skewed_clock(skew: timedelta) -> DatabaseClock:
    return DatabaseClock(local=lambda: datetime.now(UTC) + skew)


def worker_on(rig: Rig, clock: DatabaseClock) -> DeliveryWorker:
    return rig.worker_with(clock=clock)


async def database_now(rig: Rig) -> datetime:
    async with rig.engine.connect() as conn:
        now: datetime = await conn.scalar(text("SELECT clock_timestamp()"))
    return now


@pytest.mark.parametrize("skew", [-SKEW, SKEW], ids=["behind", "ahead"])
async def test_the_measured_offset_undoes_the_skew(rig: Rig, skew: timedelta) -> None:
    clock = skewed_clock(skew)
    await clock.measure(rig.engine)

    assert abs((clock.offset + skew).total_seconds()) < 0.1
    assert abs((clock.now() - await database_now(rig)).total_seconds()) < 0.1


async def test_a_sender_5_s_behind_hands_nothing_over_after_the_end(rig: Rig) -> None:
    # The end passed a second ago; by its own clock the sender would have 4 s left.
    now = await database_now(rig)
    mailing_id, ids = await make_messages(
        rig, 3, starts_at=now - timedelta(hours=1), ends_at=now - timedelta(seconds=1)
    )
    clock = skewed_clock(-SKEW)
    await clock.measure(rig.engine)

    await worker_on(rig, clock).deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    assert await rig.received() == []
    assert {m["status"] for m in await messages(rig)} == {"expired"}


async def test_a_sender_5_s_ahead_takes_no_leased_message_early(rig: Rig) -> None:
    mailing_id, ids = await make_messages(rig, 2)
    # Another sender claimed them; its lease runs 3 s more by the database's clock.
    async with rig.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE message SET status = 'sending', attempts = 1, "
                "lease_until = clock_timestamp() + interval '3 s'"
            )
        )
    clock = skewed_clock(SKEW)  # by its own clock, the lease ended 2 s ago
    await clock.measure(rig.engine)

    await worker_on(rig, clock).deliver(DeliveryJob(mailing_id=mailing_id, message_ids=ids))

    assert await rig.received() == []
    assert {(m["status"], m["attempts"]) for m in await messages(rig)} == {("sending", 1)}


async def test_a_skewed_sender_writes_leases_in_the_databases_time(rig: Rig) -> None:
    _, ids = await make_messages(rig, 1)
    clock = skewed_clock(-SKEW)
    await clock.measure(rig.engine)

    async with rig.engine.connect() as conn:
        before = await conn.scalar(text("SELECT clock_timestamp()"))
    await worker_on(rig, clock)._claim(ids)
    async with rig.engine.connect() as conn:
        lease_until = await conn.scalar(text("SELECT lease_until FROM message"))

    expected = before + timedelta(seconds=rig.settings.lease_s)
    assert abs((lease_until - expected).total_seconds()) < 1.0
