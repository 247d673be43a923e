"""A sender never dead-letters a job for a database problem, and never hammers a database
that is down; a 429 answered to many calls in flight is written once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from herald_common.broker import Publisher
from herald_common.contracts import DeliveryJob
from herald_common.db import create_engine
from herald_common.jobs import delivery_jobs
from herald_common.settings import HeraldSettings
from herald_common.topology import DEAD_QUEUE, DELIVER_QUEUE
from herald_testing.queues import drain_jobs

from .conftest import Rig
from .test_worker import make_messages, messages


async def take_job(rig: Rig) -> aio_pika.abc.AbstractIncomingMessage:
    """The next job of the delivery queue, as a consumer gets it (unacknowledged). Its
    channel is closed when the test ends: a job left unsettled is then ready again, and
    ``queue_jobs`` sees it."""
    channel = await rig.broker.channel()
    rig.closing.append(channel)
    queue = await channel.get_queue(DELIVER_QUEUE)
    for _ in range(50):
        message = await queue.get(fail=False)
        if message is not None:
            assert isinstance(message, aio_pika.abc.AbstractIncomingMessage)
            return message
        await asyncio.sleep(0.05)
    raise AssertionError("no job arrived")


async def settled_jobs(rig: Rig) -> list[DeliveryJob]:
    """The delivery queue's jobs once every taken job's channel is closed: a job the worker
    neither acked nor rejected would be among them again."""
    for channel in rig.closing:
        await channel.close()
    rig.closing.clear()
    return await drain_jobs(rig.broker, DELIVER_QUEUE)


@pytest.fixture
async def starved_engine(migrated_db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine whose only two connections are taken, and which waits 0.2 s for one."""
    settings = HeraldSettings.model_construct(
        database_url=migrated_db_url, amqp_url="", db_pool_timeout_s=0.2
    )
    engine = create_engine(settings, pool_size=1)
    held: list[AsyncConnection] = [await engine.connect(), await engine.connect()]
    try:
        yield engine
    finally:
        for conn in held:
            await conn.close()
        await engine.dispose()


async def test_a_pool_timeout_requeues_the_job_with_a_pause_instead_of_dead_lettering_it(
    rig: Rig, starved_engine: AsyncEngine
) -> None:
    mailing_id, ids = await make_messages(rig, 3)
    publisher = await Publisher.open(rig.broker)
    await publisher.publish_all(delivery_jobs(mailing_id, ids, 100))
    worker = rig.worker_with(engine=starved_engine, publisher=publisher)

    await worker.handle(await take_job(rig))

    assert await drain_jobs(rig.broker, DEAD_QUEUE) == []
    [copy] = await settled_jobs(rig)  # the copy only: the original was acked
    assert (copy.mailing_id, copy.message_ids) == (mailing_id, ids)
    assert [m["status"] for m in await messages(rig)] == ["pending"] * 3
    assert worker._db_failures == 1


async def test_a_database_that_stays_down_is_asked_less_and_less_often(
    rig: Rig, migrated_db_url: str
) -> None:
    # Nothing listens on port 9 (discard): every connection is refused at once.
    settings = HeraldSettings.model_construct(
        database_url="postgresql://herald:x@127.0.0.1:9/herald", amqp_url=""
    )
    down = create_engine(settings, pre_ping=False)
    mailing_id, ids = await make_messages(rig, 1)
    publisher = await Publisher.open(rig.broker)
    worker = rig.worker_with(engine=down, publisher=publisher)
    pauses = []
    try:
        for _ in range(3):
            await publisher.publish_all(delivery_jobs(mailing_id, ids, 100))
            job = await take_job(rig)
            started = time.monotonic()
            await worker.handle(job)
            pauses.append((round(time.monotonic() - started, 1), worker._db_failures))
            await drain_jobs(
                rig.broker, DELIVER_QUEUE
            )  # the requeued copy; the next round sends anew
    finally:
        await down.dispose()
    # 1st: no wait, then a 1 s pause; 2nd waits it out, fails, 2 s; 3rd waits 2 s.
    assert [failures for _, failures in pauses] == [1, 2, 3]
    assert pauses[0][0] < 0.5
    assert 0.8 <= pauses[1][0] < 1.8
    assert 1.8 <= pauses[2][0] < 2.8
    assert await drain_jobs(rig.broker, DEAD_QUEUE) == []


async def test_a_429_answered_to_every_call_in_flight_is_written_once(rig: Rig) -> None:
    mailing_id, ids = await make_messages(rig, 40)
    await rig.faults(status_429_ratio=1.0, retry_after_s=3)
    writes: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("UPDATE provider_throttle SET paused_until"):
            writes.append(statement)

    event.listen(rig.engine.sync_engine, "before_cursor_execute", count)
    try:
        # Retry-After is capped at the longest retry delay: let that be longer than 3 s here.
        await rig.worker_with(retry_max_ms=5_000).deliver(
            DeliveryJob(mailing_id=mailing_id, message_ids=ids)
        )
    finally:
        event.remove(rig.engine.sync_engine, "before_cursor_execute", count)

    assert len(await rig.received()) == 40  # all 40 calls were in flight together
    assert len(writes) == 1
    assert {(m["status"], m["attempts"]) for m in await messages(rig)} == {("retrying", 0)}
    async with rig.engine.connect() as conn:
        paused_for = await conn.scalar(
            text("SELECT extract(epoch FROM paused_until - now()) FROM provider_throttle")
        )
    assert 1.0 < float(paused_for) <= 3.0


async def test_a_job_waiting_past_the_hold_limit_goes_back_instead_of_outliving_the_consumer(
    rig: Rig,
) -> None:
    # The provider asked every sender to pause for a minute; RabbitMQ's consumer timeout
    # would close the channel on a job held that long, and redeliver it to be held again.
    mailing_id, ids = await make_messages(rig, 3)
    async with rig.engine.begin() as conn:
        await conn.execute(
            text("UPDATE provider_throttle SET paused_until = now() + interval '60 s'")
        )
    publisher = await Publisher.open(rig.broker)
    await publisher.publish_all(delivery_jobs(mailing_id, ids, 100))
    worker = rig.worker_with(publisher=publisher, job_hold_max_s=1.0)

    started = time.monotonic()
    await worker.handle(await take_job(rig))

    assert time.monotonic() - started < 3
    [copy] = await settled_jobs(rig)  # the copy only: the original was acked
    assert (copy.mailing_id, copy.message_ids) == (mailing_id, ids)
    assert await rig.received() == []
    assert [m["status"] for m in await messages(rig)] == ["pending"] * 3
