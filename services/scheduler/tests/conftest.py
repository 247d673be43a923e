"""Scheduler test fixtures: a scheduler wired to a real database and a fresh vhost."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.broker import Publisher, connect
from herald_common.rules.backoff import retry_tiers
from herald_common.topology import declare_topology
from herald_scheduler.backlog import DeliverBacklog
from herald_scheduler.scheduler import Scheduler
from herald_scheduler.settings import SchedulerSettings


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await connect(amqp_url, "scheduler-tests")
    channel = await connection.channel()
    await declare_topology(channel, retry_tiers(2000, 900_000))
    try:
        yield connection
    finally:
        await connection.close()


def make_settings(db_url: str, amqp_url: str, **overrides: object) -> SchedulerSettings:
    return SchedulerSettings(database_url=db_url, amqp_url=amqp_url, outbox_grace_s=0, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def scheduler(
    clean_engine: AsyncEngine,
    broker: AbstractRobustConnection,
    migrated_db_url: str,
    amqp_url: str,
) -> Scheduler:
    publisher = await Publisher.open(broker)
    settings = make_settings(
        migrated_db_url, amqp_url, fanout_chunk_size=300, job_size=50, stale_job_s=30
    )
    return Scheduler(clean_engine, publisher, settings, DeliverBacklog(broker).ready_jobs)
