"""Conflicting writes leave consistent data: the API and the scheduler in one process, on a
real PostgreSQL and RabbitMQ, racing each other on purpose.

- a filter PATCH racing the mailing's start is either applied before the fan-out or refused;
- two deletes of one mailing at once: one 204, one 404, every message cancelled once;
- clients deleted while their mailing fans out never get a message handed to the provider.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.broker import Publisher, connect
from herald_common.rules.backoff import retry_tiers
from herald_common.topology import declare_topology
from herald_scheduler.scheduler import Scheduler
from herald_scheduler.settings import SchedulerSettings
from herald_sender.claims import claim
from herald_testing.api import started_app
from herald_testing.factories import insert_clients, insert_mailing, utcnow

TOKEN = "race-token-0123456789abcdef0123456789"


@pytest.fixture
async def app(
    clean_engine: AsyncEngine, migrated_db_url: str, amqp_url: str
) -> AsyncIterator[FastAPI]:
    async with started_app(migrated_db_url, amqp_url, TOKEN, db_pool_size=4) as app:
        yield app


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app),
        base_url="http://test/api/v1",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client


@pytest.fixture
async def scheduler(
    clean_engine: AsyncEngine, migrated_db_url: str, amqp_url: str
) -> AsyncIterator[Scheduler]:
    connection = await connect(amqp_url, "race-tests")
    channel = await connection.channel()
    await declare_topology(channel, retry_tiers(2000, 900_000))
    settings = SchedulerSettings(
        database_url=migrated_db_url,
        amqp_url=amqp_url,
        fanout_chunk_size=500,
        outbox_grace_s=0,
    )
    try:
        yield Scheduler(clean_engine, await Publisher.open(connection), settings)
    finally:
        await connection.close()


async def fan_out_fully(scheduler: Scheduler) -> None:
    for _ in range(1000):
        if not await scheduler.fan_out_once():
            return
    raise AssertionError("fan-out never finished")


async def messaged_clients(engine: AsyncEngine, mailing_id: int) -> set[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT client_id FROM message WHERE mailing_id = :m"), {"m": mailing_id}
        )
        return {r[0] for r in rows}


async def test_a_filter_patch_racing_the_start_is_applied_before_it_or_refused(
    api: httpx.AsyncClient, scheduler: Scheduler, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        tag_a = set(await insert_clients(conn, 300, first_phone=79_100_000_000, tag="a"))
        tag_b = set(await insert_clients(conn, 300, first_phone=79_200_000_000, tag="b"))
    rng = random.Random(7)
    outcomes = set()
    for _ in range(8):
        async with clean_engine.begin() as conn:
            mailing_id = await insert_mailing(
                conn, starts_at=utcnow() + timedelta(milliseconds=150), tags=["a"]
            )

        async def patch(mailing_id: int = mailing_id) -> int:
            await asyncio.sleep(rng.uniform(0.1, 0.2))
            response = await api.patch(f"/mailings/{mailing_id}", json={"filter": {"tags": ["b"]}})
            return response.status_code

        async def start(mailing_id: int = mailing_id) -> None:
            for _ in range(200):
                await fan_out_fully(scheduler)
                async with clean_engine.connect() as conn:
                    done = await conn.scalar(
                        text("SELECT fanout_done_at IS NOT NULL FROM mailing WHERE id = :m"),
                        {"m": mailing_id},
                    )
                if done:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("the mailing never started")

        status, _ = await asyncio.gather(patch(), start())
        outcomes.add(status)
        expected = tag_b if status == 200 else tag_a
        assert status in (200, 409)
        assert await messaged_clients(clean_engine, mailing_id) == expected
    print(f"PATCH outcomes seen: {sorted(outcomes)}")


async def test_two_deletes_of_one_mailing_at_once(
    api: httpx.AsyncClient, scheduler: Scheduler, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 1000)
        mailing_id = await insert_mailing(conn)
    await fan_out_fully(scheduler)

    first, second = await asyncio.gather(
        api.delete(f"/mailings/{mailing_id}"), api.delete(f"/mailings/{mailing_id}")
    )

    assert sorted([first.status_code, second.status_code]) == [204, 404]
    async with clean_engine.connect() as conn:
        truth = dict(
            (await conn.execute(text("SELECT status, count(*) FROM message GROUP BY status"))).all()
        )
        kept = dict(
            (
                await conn.execute(
                    text(
                        "SELECT status, sum(count) FROM mailing_message_count "
                        "GROUP BY status HAVING sum(count) <> 0"
                    )
                )
            ).all()
        )
    assert truth == {"cancelled": 1000}
    assert kept == truth


async def test_clients_deleted_during_fan_out_never_reach_the_provider(
    api: httpx.AsyncClient, scheduler: Scheduler, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        clients = await insert_clients(conn, 6000)
        mailing_id = await insert_mailing(conn)
    doomed = random.Random(11).sample(clients, 60)

    async def delete_all() -> None:
        for client_id in doomed:
            assert (await api.delete(f"/clients/{client_id}")).status_code == 204
            await asyncio.sleep(0)

    await asyncio.gather(fan_out_fully(scheduler), delete_all())

    async with clean_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT id, status FROM message WHERE mailing_id = :m AND client_id = ANY(:ids)"
                ),
                {"m": mailing_id, "ids": doomed},
            )
        ).all()
    # Cancelled by the delete, or created just after it and still pending...
    assert {status for _, status in rows} <= {"cancelled", "pending"}
    pending = [message_id for message_id, status in rows if status == "pending"]
    # ...and then cancelled at the sender's claim instead of being handed to the provider.
    async with clean_engine.begin() as conn:
        claimed, settled = await claim(
            conn,
            pending,
            utcnow(),
            lease=timedelta(seconds=60),
            guard=timedelta(milliseconds=500),
            max_attempts=10,
        )
    assert claimed == []
    assert {item.decision.action.value for item in settled} <= {"cancel"}
    assert len(settled) == len(pending)
    print(f"deleted during fan-out: {len(rows)} had messages, {len(pending)} still pending")
