"""herald-dead-letters on a real RabbitMQ: show, replay (all, one mailing, a limit), and the
unreadable jobs that stay."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aio_pika.abc import AbstractRobustConnection
from typer.testing import CliRunner

from herald_common.broker import Outgoing, Publisher, connect
from herald_common.contracts import DeliveryJob
from herald_common.rules.backoff import retry_tiers
from herald_common.topology import DEAD_EXCHANGE, DEAD_QUEUE, DELIVER_QUEUE, declare_topology
from herald_sender.dead_letters import app, sweep_dead_letters
from herald_testing.queues import drain_queue


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await connect(amqp_url, "dead-letter-tests")
    channel = await connection.channel()
    await declare_topology(channel, retry_tiers(100, 800))
    publisher = await Publisher.open(connection)
    jobs = [
        DeliveryJob(mailing_id=1, message_ids=[1, 2]),
        DeliveryJob(mailing_id=2, message_ids=[3]),
        DeliveryJob(mailing_id=1, message_ids=[4]),
    ]
    for job in jobs:
        await publisher.publish(Outgoing(DEAD_EXCHANGE, "", job.encode()))
    await publisher.publish(Outgoing(DEAD_EXCHANGE, "", b"not a job"))
    try:
        yield connection
    finally:
        await connection.close()


def jobs_of(bodies: list[bytes]) -> list[tuple[int, list[int]]]:
    return sorted((j.mailing_id, j.message_ids) for j in map(DeliveryJob.decode, bodies))


async def test_show_counts_by_mailing_and_moves_nothing(
    broker: AbstractRobustConnection, amqp_url: str
) -> None:
    seen = await sweep_dead_letters(amqp_url, replay=False)

    assert seen.moved == Counter({1: 2, 2: 1})
    assert seen.unreadable == 1
    assert len(await drain_queue(broker, DEAD_QUEUE)) == 4
    assert await drain_queue(broker, DELIVER_QUEUE) == []


async def test_replay_one_mailing_then_the_rest_within_a_limit(
    broker: AbstractRobustConnection, amqp_url: str
) -> None:
    first = await sweep_dead_letters(amqp_url, replay=True, mailing_id=2)
    assert (first.moved, first.kept) == (Counter({2: 1}), Counter({1: 2}))
    assert jobs_of(await drain_queue(broker, DELIVER_QUEUE)) == [(2, [3])]

    second = await sweep_dead_letters(amqp_url, replay=True, limit=1)
    assert second.total_moved == 1
    third = await sweep_dead_letters(amqp_url, replay=True)
    assert third.total_moved == 1
    assert jobs_of(await drain_queue(broker, DELIVER_QUEUE)) == [(1, [1, 2]), (1, [4])]
    # The unreadable one stays for a human.
    assert await drain_queue(broker, DEAD_QUEUE) == [b"not a job"]


async def test_the_command_replays_and_says_what_it_did(
    broker: AbstractRobustConnection, amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_AMQP_URL", amqp_url)

    # The command runs its own event loop: give it a thread of its own.
    result = await asyncio.to_thread(CliRunner().invoke, app, ["replay"])

    assert result.exit_code == 0, result.output
    assert "3 job(s) back in herald.deliver" in result.output
    assert "1 unreadable job(s) left in herald.dead" in result.output
    assert len(jobs_of(await drain_queue(broker, DELIVER_QUEUE))) == 3


def test_the_command_names_a_missing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERALD_AMQP_URL", raising=False)

    result = CliRunner().invoke(app, ["show"])

    assert result.exit_code == 2
    assert "HERALD_AMQP_URL: is required" in result.output
