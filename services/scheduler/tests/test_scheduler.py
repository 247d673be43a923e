"""The scheduler on a real PostgreSQL and RabbitMQ: fan-out, re-queueing, ending mailings."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.broker import Publisher
from herald_common.db import create_engine
from herald_common.jobs import delivery_jobs
from herald_common.outbox import add_to_outbox
from herald_scheduler import queries
from herald_scheduler.scheduler import Scheduler
from herald_testing.factories import insert_clients, insert_mailing, status_counts, utcnow
from herald_testing.queues import drain_jobs

from .conftest import make_settings


async def run_until_idle(scheduler: Scheduler, max_ticks: int = 1000) -> int:
    for tick in range(max_ticks):
        if not await scheduler.tick():
            return tick
    raise AssertionError("scheduler never went idle")


async def test_due_mailing_gets_one_message_per_matching_client_and_one_job_each(
    scheduler: Scheduler, clean_engine: AsyncEngine, broker: AbstractRobustConnection
) -> None:
    async with clean_engine.begin() as conn:
        vip = await insert_clients(conn, 700, first_phone=79_000_000_000, tag="vip")
        await insert_clients(conn, 500, first_phone=79_100_000_000, tag="other")
        mailing_id = await insert_mailing(conn, tags=["vip"])

    await run_until_idle(scheduler)

    async with clean_engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT id, client_id, status FROM message WHERE mailing_id = :m"),
                {"m": mailing_id},
            )
        ).all()
        mailing = (
            await conn.execute(
                text("SELECT started_at, fanout_done_at, fanout_cursor FROM mailing WHERE id=:m"),
                {"m": mailing_id},
            )
        ).one()
        outbox_left = await conn.scalar(text("SELECT count(*) FROM outbox"))
    assert sorted(r.client_id for r in rows) == vip
    assert {r.status for r in rows} == {"pending"}
    assert mailing.started_at is not None
    assert mailing.fanout_done_at is not None
    assert outbox_left == 0
    jobs = await drain_jobs(broker)
    job_ids = Counter(mid for job in jobs for mid in job.message_ids)
    assert set(job_ids) == {r.id for r in rows}
    assert max(job_ids.values()) == 1
    assert all(job.mailing_id == mailing_id and len(job.message_ids) <= 50 for job in jobs)


async def test_filter_by_operator_code_and_tag_together(
    scheduler: Scheduler, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        match = await insert_clients(conn, 5, first_phone=79_010_000_000, tag="a")
        await insert_clients(conn, 5, first_phone=79_020_000_000, tag="a")  # code 902
        await insert_clients(conn, 5, first_phone=79_030_000_000, tag="b")  # code 903, tag b
        both = await insert_mailing(conn, operator_codes=["901", "903"], tags=["a"])
        everyone = await insert_mailing(conn)

    await run_until_idle(scheduler)

    async with clean_engine.connect() as conn:
        targeted = await conn.execute(
            text("SELECT client_id FROM message WHERE mailing_id = :m ORDER BY client_id"),
            {"m": both},
        )
        assert [r[0] for r in targeted] == match
        assert sum((await status_counts(conn, everyone)).values()) == 15


async def test_future_and_ended_mailings_are_not_fanned_out(
    scheduler: Scheduler, clean_engine: AsyncEngine
) -> None:
    now = utcnow()
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 10)
        future = await insert_mailing(conn, starts_at=now + timedelta(minutes=5))
        ended = await insert_mailing(
            conn, starts_at=now - timedelta(hours=2), ends_at=now - timedelta(hours=1)
        )

    await run_until_idle(scheduler)
    await scheduler.housekeeping()

    async with clean_engine.connect() as conn:
        assert await status_counts(conn, future) == {}
        assert await status_counts(conn, ended) == {}
        finished = await conn.scalar(
            text("SELECT finished_at IS NOT NULL FROM mailing WHERE id = :m"), {"m": ended}
        )
        started = await conn.scalar(
            text("SELECT started_at FROM mailing WHERE id = :m"), {"m": future}
        )
    assert finished is True
    assert started is None


async def test_fan_out_resumes_from_its_cursor_without_duplicates(
    scheduler: Scheduler, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 1000)
        mailing_id = await insert_mailing(conn)

    # One step (two chunks of 300 side by side), then "crash": a fresh scheduler continues
    # from the committed cursor.
    assert await scheduler.fan_out_once()
    async with clean_engine.connect() as conn:
        assert sum((await status_counts(conn, mailing_id)).values()) == 600
    await run_until_idle(scheduler)

    async with clean_engine.connect() as conn:
        total = await conn.scalar(
            text("SELECT count(*), count(DISTINCT client_id) FROM message WHERE mailing_id=:m"),
            {"m": mailing_id},
        )
        distinct = await conn.scalar(
            text("SELECT count(DISTINCT client_id) FROM message WHERE mailing_id=:m"),
            {"m": mailing_id},
        )
    assert total == 1000
    assert distinct == 1000


async def test_two_schedulers_fan_out_one_mailing_without_double_work(
    clean_engine: AsyncEngine,
    broker: AbstractRobustConnection,
    migrated_db_url: str,
    amqp_url: str,
) -> None:
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 20_000)
        mailing_id = await insert_mailing(conn)
    schedulers = []
    engines = []
    for _ in range(2):
        engine = create_engine(migrated_db_url, pool_size=3)
        engines.append(engine)
        settings = make_settings(migrated_db_url, amqp_url, fanout_chunk_size=500, job_size=100)
        schedulers.append(Scheduler(engine, await Publisher.open(broker), settings))

    async def replica(scheduler: Scheduler) -> int:
        """Loop like the real one: work when there is work, else nap, until the fan-out ends."""
        chunks = 0
        for _ in range(2000):
            if await scheduler.fan_out_once():
                chunks += 1
                continue
            async with clean_engine.connect() as conn:
                done = await conn.scalar(text("SELECT fanout_done_at IS NOT NULL FROM mailing"))
            if done:
                return chunks
            await asyncio.sleep(0.001)
        raise AssertionError("fan-out never finished")

    chunks = await asyncio.gather(*(replica(s) for s in schedulers))
    for engine in engines:
        await engine.dispose()

    # 20 steps of two chunks of 500 side by side, and the empty one that ends it
    assert sum(chunks) == 21
    async with clean_engine.connect() as conn:
        counts = await status_counts(conn, mailing_id)
    assert counts == {"pending": 20_000}
    jobs = await drain_jobs(broker)
    per_message = Counter(mid for job in jobs for mid in job.message_ids)
    assert len(per_message) == 20_000
    assert max(per_message.values()) == 1


async def test_outbox_rows_left_by_a_crash_are_relayed(
    scheduler: Scheduler, clean_engine: AsyncEngine, broker: AbstractRobustConnection
) -> None:
    # A scheduler that committed its chunk and died before publishing leaves outbox rows.
    async with clean_engine.begin() as conn:
        await add_to_outbox(conn, delivery_jobs(7, list(range(1, 121)), 50))

    assert await scheduler.housekeeping()

    jobs = await drain_jobs(broker)
    assert sorted(mid for job in jobs for mid in job.message_ids) == list(range(1, 121))
    async with clean_engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM outbox")) == 0


async def test_deferred_messages_are_requeued_when_their_window_opens(
    scheduler: Scheduler, clean_engine: AsyncEngine, broker: AbstractRobustConnection
) -> None:
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 4)
        mailing_id = await insert_mailing(conn)
        await conn.execute(
            text(
                """
                INSERT INTO message (mailing_id, client_id, status, next_attempt_at)
                SELECT :m, id, 'deferred',
                       CASE WHEN id <= 2 THEN now() - interval '1 s' ELSE now() + interval '1 h' END
                FROM client
                """
            ),
            {"m": mailing_id},
        )
        await conn.execute(text("UPDATE mailing SET fanout_done_at = now(), started_at = now()"))

    assert await scheduler.requeue_once() is False  # below the batch size: no hurry

    async with clean_engine.connect() as conn:
        assert await status_counts(conn, mailing_id) == {"pending": 2, "deferred": 2}
    jobs = await drain_jobs(broker)
    assert sorted(m for job in jobs for m in job.message_ids) == [1, 2]


async def test_messages_of_a_dead_sender_are_requeued_after_the_lease(
    scheduler: Scheduler, clean_engine: AsyncEngine, broker: AbstractRobustConnection
) -> None:
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 2)
        mailing_id = await insert_mailing(conn)
        await conn.execute(
            text(
                """
                INSERT INTO message (mailing_id, client_id, status, attempts, lease_until)
                SELECT :m, id, 'sending', 1,
                       CASE WHEN id = 1 THEN now() - interval '1 s' ELSE now() + interval '1 h' END
                FROM client
                """
            ),
            {"m": mailing_id},
        )
        await conn.execute(text("UPDATE mailing SET fanout_done_at = now(), started_at = now()"))

    await scheduler.requeue_once()

    async with clean_engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT id, status, attempts FROM message ORDER BY id"))
        ).all()
    assert [(r.id, r.status, r.attempts) for r in rows] == [(1, "pending", 1), (2, "sending", 1)]
    jobs = await drain_jobs(broker)
    assert [m for job in jobs for m in job.message_ids] == [1]


async def test_messages_whose_job_was_lost_get_a_new_one_once_the_queue_is_empty(
    scheduler: Scheduler, clean_engine: AsyncEngine, broker: AbstractRobustConnection
) -> None:
    # stale_job_s is 30 here. Pending for 31 s: lost. Pending for 5 s: its job may be on its
    # way. Retrying with a 4 s delay, due 40 s ago: lost; due 31 s ago after a 90 s delay:
    # its retry queue may still hold it (a job can come back a third of its delay late).
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 8)
        mailing_id = await insert_mailing(conn)
        paused = await insert_mailing(conn)
        await conn.execute(
            text(
                """
                INSERT INTO message (mailing_id, client_id, status, updated_at, next_attempt_at)
                VALUES
                (:m, 1, 'pending', now() - interval '31 s', NULL),
                (:m, 2, 'pending', now() - interval '5 s', NULL),
                (:m, 3, 'retrying', now() - interval '44 s', now() - interval '40 s'),
                (:m, 4, 'retrying', now() - interval '121 s', now() - interval '31 s'),
                (:m, 5, 'deferred', now() - interval '1 h', now() + interval '1 h'),
                (:m, 6, 'sent', now() - interval '1 h', NULL),
                (:p, 7, 'pending', now() - interval '1 h', NULL)
                """
            ),
            {"m": mailing_id, "p": paused},
        )
        await conn.execute(text("UPDATE mailing SET fanout_done_at = now(), started_at = now()"))
        await conn.execute(
            text("UPDATE mailing SET paused_at = now() WHERE id = :p"), {"p": paused}
        )

    assert await scheduler.requeue_lost_jobs() == 2

    async with clean_engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT client_id, status, next_attempt_at FROM message ORDER BY client_id")
            )
        ).all()
    by_client = {r.client_id: (r.status, r.next_attempt_at) for r in rows}
    assert by_client[1] == ("pending", None)
    assert by_client[3] == ("pending", None)
    assert by_client[2][0] == "pending"
    assert by_client[4][0] == "retrying"
    assert by_client[7][0] == "pending"
    jobs = await drain_jobs(broker)
    assert sorted(m for job in jobs for m in job.message_ids) == [1, 3]
    # Requeued now: not lost again before another stale_job_s has passed.
    assert await scheduler.requeue_lost_jobs() == 0
    assert await drain_jobs(broker) == []


async def test_no_job_is_assumed_lost_while_the_delivery_queue_has_a_backlog(
    scheduler: Scheduler, clean_engine: AsyncEngine, broker: AbstractRobustConnection
) -> None:
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 2)
        mailing_id = await insert_mailing(conn)
        await conn.execute(
            text(
                """
                INSERT INTO message (mailing_id, client_id, status, updated_at)
                SELECT :m, id, 'pending', now() - interval '1 h' FROM client
                """
            ),
            {"m": mailing_id},
        )
        await conn.execute(text("UPDATE mailing SET fanout_done_at = now(), started_at = now()"))
    publisher = await Publisher.open(broker)
    await publisher.publish_all(delivery_jobs(mailing_id, [1], 50))

    assert await scheduler.requeue_lost_jobs() == 0
    assert [job.message_ids for job in await drain_jobs(broker)] == [[1]]
    assert await scheduler.requeue_lost_jobs() == 2


async def test_ended_mailing_expires_idle_messages_and_finishes_when_settled(
    scheduler: Scheduler, clean_engine: AsyncEngine
) -> None:
    now = utcnow()
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 5)
        mailing_id = await insert_mailing(
            conn, starts_at=now - timedelta(hours=1), ends_at=now - timedelta(seconds=1)
        )
        await conn.execute(
            text(
                """
                INSERT INTO message (mailing_id, client_id, status, lease_until) VALUES
                (:m, 1, 'pending', NULL), (:m, 2, 'retrying', NULL), (:m, 3, 'deferred', NULL),
                (:m, 4, 'sent', NULL), (:m, 5, 'sending', now() + interval '1 h')
                """
            ),
            {"m": mailing_id},
        )

    await scheduler.housekeeping()

    async with clean_engine.connect() as conn:
        assert await status_counts(conn, mailing_id) == {"expired": 3, "sent": 1, "sending": 1}
        finished = await conn.scalar(text("SELECT finished_at FROM mailing"))
    assert finished is None, "a message is still in a provider call"

    async with clean_engine.begin() as conn:
        await conn.execute(text("UPDATE message SET status = 'sent' WHERE client_id = 5"))
    await scheduler.housekeeping()
    async with clean_engine.connect() as conn:
        assert await conn.scalar(text("SELECT finished_at IS NOT NULL FROM mailing")) is True


async def test_the_end_expires_idle_messages_even_of_a_mailing_marked_finished(
    scheduler: Scheduler, clean_engine: AsyncEngine
) -> None:
    now = utcnow()
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 3)
        mailing_id = await insert_mailing(
            conn, starts_at=now - timedelta(hours=1), ends_at=now - timedelta(seconds=1)
        )
        await conn.execute(
            text(
                """
                INSERT INTO message (mailing_id, client_id, status) VALUES
                (:m, 1, 'deferred'), (:m, 2, 'retrying'), (:m, 3, 'sent')
                """
            ),
            {"m": mailing_id},
        )
        # As a lost race could leave it: finished, yet with messages still waiting.
        await conn.execute(text("UPDATE mailing SET finished_at = now(), fanout_done_at = now()"))

    await scheduler.housekeeping()

    async with clean_engine.connect() as conn:
        assert await status_counts(conn, mailing_id) == {"expired": 2, "sent": 1}


async def test_finishing_cannot_race_a_retry_failed_that_reopens_the_mailing(
    scheduler: Scheduler, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 2)
        mailing_id = await insert_mailing(conn)
        await conn.execute(
            text(
                "INSERT INTO message (mailing_id, client_id, status) "
                "SELECT :m, id, 'failed' FROM client"
            ),
            {"m": mailing_id},
        )
        await conn.execute(text("UPDATE mailing SET fanout_done_at = now(), started_at = now()"))

    # What POST /mailings/{id}/retry-failed does, held open while the scheduler finishes.
    retry = await clean_engine.connect()
    await retry.execute(
        text("SELECT id FROM mailing WHERE id = :m FOR NO KEY UPDATE"), {"m": mailing_id}
    )
    await retry.execute(
        text("UPDATE message SET status = 'deferred', attempts = 0, next_attempt_at = now()")
    )
    await retry.execute(
        text("UPDATE mailing SET updated_at = now() WHERE id = :m"), {"m": mailing_id}
    )
    housekeeping = asyncio.create_task(scheduler.housekeeping())
    await asyncio.sleep(0.5)
    await retry.commit()
    await retry.close()
    await housekeeping
    await scheduler.housekeeping()  # a later round, with the lock gone, judges it afresh

    async with clean_engine.connect() as conn:
        finished = await conn.scalar(text("SELECT finished_at FROM mailing"))
        assert await status_counts(conn, mailing_id) == {"deferred": 2}
    assert finished is None, "finished while two messages had work again"


async def test_a_finished_mailing_never_starts_its_fan_out_again(
    scheduler: Scheduler, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 5)
        mailing_id = await insert_mailing(conn)
        await conn.execute(text("UPDATE mailing SET finished_at = now()"))

    await run_until_idle(scheduler)

    async with clean_engine.connect() as conn:
        assert await status_counts(conn, mailing_id) == {}


async def test_a_finished_mailing_has_its_counter_shards_folded(
    scheduler: Scheduler, clean_engine: AsyncEngine, broker: AbstractRobustConnection
) -> None:
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 40)
        mailing_id = await insert_mailing(conn)
    await run_until_idle(scheduler)
    # Settle the messages from several sessions, as senders do: several counter shards.
    sessions = [await clean_engine.connect() for _ in range(4)]
    try:
        for low, conn in zip(range(0, 40, 10), sessions, strict=True):
            await conn.execute(
                text(
                    "UPDATE message SET status = CASE WHEN id % 4 = 0 THEN 'failed' ELSE 'sent' "
                    "END WHERE mailing_id = :m AND id > :low AND id <= :low + 10"
                ),
                {"m": mailing_id, "low": low},
            )
            await conn.commit()
    finally:
        for conn in sessions:
            await conn.close()
    async with clean_engine.connect() as conn:
        shards_before = await conn.scalar(
            text("SELECT count(DISTINCT shard) FROM mailing_message_count WHERE mailing_id = :m"),
            {"m": mailing_id},
        )
    assert shards_before > 1

    await scheduler.housekeeping()

    async with clean_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT status, shard, count FROM mailing_message_count "
                    "WHERE mailing_id = :m ORDER BY status"
                ),
                {"m": mailing_id},
            )
        ).all()
        finished = await conn.scalar(
            text("SELECT finished_at IS NOT NULL FROM mailing WHERE id = :m"), {"m": mailing_id}
        )
        truth = await status_counts(conn, mailing_id)
    assert finished
    assert [tuple(r) for r in rows] == [("failed", 0, 10), ("sent", 0, 30)]
    assert truth == {"failed": 10, "sent": 30}


async def test_a_crash_after_the_chunks_committed_but_before_the_cursor_moved(
    scheduler: Scheduler,
    clean_engine: AsyncEngine,
    broker: AbstractRobustConnection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The chunks are inserted by their own transactions; if the step dies before the cursor
    moves, the redo creates nothing twice and every message still gets exactly one job."""
    async with clean_engine.begin() as conn:
        clients = await insert_clients(conn, 1000)
        mailing_id = await insert_mailing(conn)
    advance = queries.advance_fan_out
    calls = 0

    async def dies_once(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("killed between the chunks' commits and the cursor's")
        await advance(*args)

    monkeypatch.setattr(queries, "advance_fan_out", dies_once)
    with pytest.raises(RuntimeError):
        await scheduler.fan_out_once()
    async with clean_engine.connect() as conn:
        cursor = await conn.scalar(
            text("SELECT fanout_cursor FROM mailing WHERE id = :m"), {"m": mailing_id}
        )
        assert cursor == 0
        assert sum((await status_counts(conn, mailing_id)).values()) == 600

    await asyncio.sleep(1.1)  # a failed step holds its mailing back for a second
    await run_until_idle(scheduler)
    await scheduler.housekeeping()  # relays the jobs the dead step left in the outbox

    async with clean_engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT id, client_id FROM message WHERE mailing_id = :m"), {"m": mailing_id}
            )
        ).all()
        outbox_left = await conn.scalar(text("SELECT count(*) FROM outbox"))
    assert sorted(r.client_id for r in rows) == clients
    assert outbox_left == 0
    per_message = Counter(mid for job in await drain_jobs(broker) for mid in job.message_ids)
    assert set(per_message) == {r.id for r in rows}
    assert max(per_message.values()) == 1


async def test_housekeeping_forgets_idempotency_keys_after_a_day(
    scheduler: Scheduler, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO idempotency_key (caller, key, request_hash, status_code, response, "
                "created_at) VALUES ('default', 'old', '', 201, '{}', now() - interval '25 hours'),"
                " ('default', 'new', '', 201, '{}', now() - interval '23 hours')"
            )
        )
    await scheduler.housekeeping()
    async with clean_engine.connect() as conn:
        keys = (await conn.execute(text("SELECT key FROM idempotency_key"))).scalars().all()
    assert keys == ["new"]


async def test_progress_is_sampled_from_the_start_to_the_final_count(
    scheduler: Scheduler, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 30, tag="p")
        mailing_id = await insert_mailing(conn, tags=["p"])
    await run_until_idle(scheduler)

    async def samples() -> list[int]:
        async with clean_engine.connect() as conn:
            rows = await conn.scalars(
                text("SELECT done FROM mailing_progress WHERE mailing_id = :m ORDER BY sampled_at"),
                {"m": mailing_id},
            )
            return list(rows)

    # The fan-out's first step recorded the start, before any periodic sample.
    assert (await samples())[0] == 0
    async with clean_engine.begin() as conn:
        await conn.execute(
            text("UPDATE message SET status = 'sent', sent_at = now() WHERE mailing_id = :m"),
            {"m": mailing_id},
        )
        assert await queries.finish_settled(conn) == [mailing_id]
        await conn.execute(text("SELECT pg_sleep(0.01)"))
    async with clean_engine.begin() as conn:
        await queries.sample_progress(conn)
    # Finished, it still got its final count in, so nothing it sent goes uncounted.
    assert (await samples())[-1] == 30
    async with clean_engine.begin() as conn:
        await conn.execute(
            text("UPDATE mailing SET finished_at = now() - interval '2 minutes' WHERE id = :m"),
            {"m": mailing_id},
        )
        before = len(await samples())
        await conn.execute(text("SELECT pg_sleep(0.01)"))
    async with clean_engine.begin() as conn:
        await queries.sample_progress(conn)
    assert len(await samples()) == before
