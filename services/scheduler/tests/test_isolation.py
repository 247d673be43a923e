"""One bad piece of work does not stop the rest: an outbox row the broker refuses, a mailing
whose fan-out fails every time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.broker import Outgoing, Publisher
from herald_common.db import create_engine
from herald_common.jobs import delivery_jobs
from herald_common.outbox import add_to_outbox, relay_stale
from herald_common.topology import JOBS_EXCHANGE
from herald_scheduler import metrics
from herald_scheduler.backlog import DeliverBacklog
from herald_scheduler.scheduler import Scheduler
from herald_testing.factories import insert_clients, insert_mailing, status_counts, utcnow
from herald_testing.queues import drain_jobs

from .conftest import make_settings


async def test_an_unroutable_row_is_quarantined_and_the_rows_behind_it_go_out_once(
    clean_engine: AsyncEngine, broker: AbstractRobustConnection
) -> None:
    good = delivery_jobs(7, list(range(1, 31)), 10)  # three jobs
    nowhere = Outgoing(JOBS_EXCHANGE, "no-such-binding", b'{"v": 1}')
    async with clean_engine.begin() as conn:
        ids = await add_to_outbox(conn, [good[0], nowhere, *good[1:]])
    publisher = await Publisher.open(broker)

    first = await relay_stale(clean_engine, publisher, timedelta(0), max_refusals=3)

    assert (first.published, first.failed, first.quarantined) == (3, 1, [])
    assert "NO_ROUTE" in (first.error or "")
    assert len(await drain_jobs(broker)) == 3
    for _ in range(2):
        last = await relay_stale(clean_engine, publisher, timedelta(0), max_refusals=3)
    assert [(q.id, q.routing_key) for q in last.quarantined] == [(ids[1], "no-such-binding")]
    async with clean_engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT id, attempts, quarantined_at, last_error FROM outbox"))
        ).all()
    assert [(r.id, r.attempts) for r in rows] == [(ids[1], 3)]
    assert rows[0].quarantined_at is not None
    assert "NO_ROUTE" in rows[0].last_error
    # Set aside: no longer relayed, and the good jobs were published once only.
    assert await relay_stale(clean_engine, publisher, timedelta(0)) == type(first)()
    assert await drain_jobs(broker) == []


async def test_the_scheduler_logs_counts_and_shows_a_quarantined_row(
    scheduler: Scheduler, clean_engine: AsyncEngine, broker: AbstractRobustConnection
) -> None:
    async with clean_engine.begin() as conn:
        await add_to_outbox(conn, [Outgoing(JOBS_EXCHANGE, "no-such-binding", b"{}")])
    before = metrics.OUTBOX_QUARANTINED_ROWS._value.get()

    for _ in range(10):  # MAX_REFUSALS passes
        await scheduler.relay_outbox()
    await scheduler.refresh_gauges()

    assert metrics.OUTBOX_QUARANTINED_ROWS._value.get() == before + 1
    assert metrics.OUTBOX_QUARANTINED._value.get() == 1
    assert metrics.OUTBOX_BACKLOG._value.get() == 0


@pytest.fixture
async def poisoned_mailing(clean_engine: AsyncEngine) -> AsyncIterator[int]:
    """A due mailing whose every message insert fails (as a bad filter or a corrupt row
    would make it), first in line by its start."""
    async with clean_engine.begin() as conn:
        poisoned = await insert_mailing(
            conn, starts_at=utcnow() - timedelta(hours=1), ends_at=utcnow() + timedelta(hours=1)
        )
        await conn.execute(
            text(
                f"""
                CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'poisoned mailing'; END $$;
                CREATE TRIGGER poison BEFORE INSERT ON message FOR EACH ROW
                WHEN (NEW.mailing_id = {poisoned}) EXECUTE FUNCTION poison();
                """
            )
        )
    try:
        yield poisoned
    finally:
        async with clean_engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER poison ON message; DROP FUNCTION poison();"))


async def test_a_mailing_whose_fan_out_always_fails_starves_no_other_work(
    scheduler: Scheduler,
    clean_engine: AsyncEngine,
    broker: AbstractRobustConnection,
    poisoned_mailing: int,
) -> None:
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 20)
        healthy = await insert_mailing(conn)
        orphaned = await insert_mailing(conn)
        # A dead sender's message of a third mailing, due for lease recovery.
        await conn.execute(
            text(
                "INSERT INTO message (mailing_id, client_id, status, attempts, lease_until) "
                "VALUES (:m, 1, 'sending', 1, now() - interval '1 s')"
            ),
            {"m": orphaned},
        )
        await conn.execute(
            text("UPDATE mailing SET fanout_done_at = now(), started_at = now() WHERE id = :m"),
            {"m": orphaned},
        )
    failures_before = metrics.FANOUT_FAILURES._value.get()

    for _ in range(5):
        await scheduler.tick()

    async with clean_engine.connect() as conn:
        assert await status_counts(conn, poisoned_mailing) == {}
        assert await status_counts(conn, healthy) == {"pending": 20}
        assert await status_counts(conn, orphaned) == {"pending": 1}
    # Held back after its failure: tried once in these five quick rounds, not five times.
    assert metrics.FANOUT_FAILURES._value.get() == failures_before + 1
    jobs = await drain_jobs(broker)
    assert sorted(job.mailing_id for job in jobs) == [healthy, orphaned]


async def test_the_loop_outlives_a_database_that_is_down(
    broker: AbstractRobustConnection, migrated_db_url: str, amqp_url: str
) -> None:
    # Nothing listens on port 9: every step that needs the database fails at once. A job
    # waits in the queue, so the lost-job sweep stops at the broker and succeeds: a round
    # is then neither all failed nor all well.
    await (await Publisher.open(broker)).publish_all(delivery_jobs(1, [1], 10))
    down = create_engine("postgresql://herald:x@127.0.0.1:9/herald", pre_ping=False)
    settings = make_settings(migrated_db_url, amqp_url, scheduler_poll_interval_s=0.05)
    scheduler = Scheduler(
        down, await Publisher.open(broker), settings, DeliverBacklog(broker).ready_jobs
    )
    failed_before = metrics.TICK_ERRORS.labels("fan_out")._value.get()
    try:
        loop = asyncio.create_task(scheduler.run())
        await asyncio.sleep(1.5)
        assert not loop.done(), loop.exception() if loop.done() else None
        scheduler.stop()
        await asyncio.wait_for(loop, 5)
    finally:
        await down.dispose()
    # It kept trying, a few times a second rather than in a tight loop.
    tries = metrics.TICK_ERRORS.labels("fan_out")._value.get() - failed_before
    assert 2 <= tries <= 15
