"""herald-migrate-queues on a real RabbitMQ: from the classic queues of the previous Herald, with
jobs in them, to the quorum queues, losing none.

The old topology is declared exactly as the previous version's ``declare_topology`` did;
the command runs as a real process, as an operator runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import ChannelNotFoundEntity

from herald_common.broker import connect
from herald_common.rules.backoff import retry_tiers
from herald_common.topology import (
    DEAD_EXCHANGE,
    DEAD_QUEUE,
    DELIVER_QUEUE,
    DELIVER_ROUTING_KEY,
    EVENTS_EXCHANGE,
    JOBS_EXCHANGE,
    RETRY_EXCHANGE,
    SCHEDULER_EVENTS_QUEUE,
    TopologyMismatch,
    declare_topology,
    retry_queue_name,
    retry_routing_key,
)
from herald_testing.old_topology import declare_classic_topology

# Long steps, so that no retry job expires into herald.deliver while the test counts.
BASE_MS, MAX_MS = 60_000, 120_000
TIERS = retry_tiers(BASE_MS, MAX_MS)
ENV = {"HERALD_RETRY_BASE_MS": str(BASE_MS), "HERALD_RETRY_MAX_MS": str(MAX_MS)}
JOBS, RETRIES, DEAD, EVENTS = 300, 20, 5, 3


def job(index: int) -> aio_pika.Message:
    body = json.dumps({"v": 1, "mailing_id": 1, "message_ids": [index]}).encode()
    return aio_pika.Message(
        body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={"x-mailing-id": 1, "x-message-ids": str(index)},
    )


async def fill_old_queues(connection: AbstractRobustConnection) -> None:
    channel = await connection.channel(publisher_confirms=True)
    await declare_classic_topology(channel, TIERS)
    jobs = await channel.get_exchange(JOBS_EXCHANGE)
    retry = await channel.get_exchange(RETRY_EXCHANGE)
    dead = await channel.get_exchange(DEAD_EXCHANGE)
    events = await channel.get_exchange(EVENTS_EXCHANGE)
    await asyncio.gather(*(jobs.publish(job(i), DELIVER_ROUTING_KEY) for i in range(JOBS)))
    for i in range(RETRIES):
        message = job(10_000 + i)
        message.expiration = 50.0  # seconds: the jittered delay of a retry job
        await retry.publish(message, retry_routing_key(TIERS[0]))
    for i in range(DEAD):
        await dead.publish(job(20_000 + i), "")
    for i in range(EVENTS):
        await events.publish(aio_pika.Message(f"event {i}".encode()), "mailing.created")
    await channel.close()


async def drain(
    connection: AbstractRobustConnection, queue_name: str
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    channel = await connection.channel()
    queue = await channel.get_queue(queue_name)
    taken = []
    while message := await queue.get(no_ack=True, fail=False):
        taken.append(message)
    await channel.close()
    return taken


async def exists(connection: AbstractRobustConnection, name: str) -> bool:
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        return False
    await channel.close()
    return True


def migrate_queues(amqp_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HERALD_")},
        **ENV,
        "HERALD_AMQP_URL": amqp_url,
    }
    code = "from herald_common.queue_migration import run; run()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def moved_counts(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    for line in result.stdout.splitlines() + result.stderr.splitlines():
        if "queue_migration_done" in line:
            moved: dict[str, int] = json.loads(line)["moved"]
            return moved
    raise AssertionError(f"no queue_migration_done line: {result.stdout} {result.stderr}")


async def test_the_new_version_refuses_the_old_queues_naming_the_command(amqp_url: str) -> None:
    connection = await connect(amqp_url, "test")
    try:
        await declare_classic_topology(await connection.channel(), TIERS)
        with pytest.raises(TopologyMismatch, match="herald-migrate-queues") as caught:
            await declare_topology(await connection.channel(), TIERS)
        assert caught.value.queue == DEAD_QUEUE
    finally:
        await connection.close()


async def test_migration_moves_every_job_to_quorum_queues(amqp_url: str) -> None:
    connection = await connect(amqp_url, "test")
    try:
        await fill_old_queues(connection)

        result = await asyncio.to_thread(migrate_queues, amqp_url)
        assert result.returncode == 0, result.stderr + result.stdout
        assert (
            moved_counts(result)
            == {
                DEAD_QUEUE: DEAD * 2,  # each message is moved twice: there and back
                DELIVER_QUEUE: JOBS * 2,
                retry_queue_name(TIERS[0]): RETRIES * 2,
                **{retry_queue_name(ttl): 0 for ttl in TIERS[1:]},
                SCHEDULER_EVENTS_QUEUE: EVENTS * 2,
            }
        )

        # The services' own declaration now passes: the queues have exactly its arguments.
        await declare_topology(await connection.channel(), TIERS)
        assert not [
            n for n in [DELIVER_QUEUE, DEAD_QUEUE] if await exists(connection, f"{n}.migrating")
        ]

        delivered = await drain(connection, DELIVER_QUEUE)
        ids = Counter(json.loads(m.body)["message_ids"][0] for m in delivered)
        assert ids == Counter(range(JOBS))  # every job, each once
        assert all(m.headers["x-mailing-id"] == 1 for m in delivered)
        assert all(m.content_type == "application/json" for m in delivered)
        retried = await drain(connection, retry_queue_name(TIERS[0]))
        assert sorted(json.loads(m.body)["message_ids"][0] for m in retried) == list(
            range(10_000, 10_000 + RETRIES)
        )
        # A retry job keeps its own delay (it starts again: at most one step more).
        assert {m.expiration for m in retried} == {50.0}
        assert len(await drain(connection, DEAD_QUEUE)) == DEAD
        assert len(await drain(connection, SCHEDULER_EVENTS_QUEUE)) == EVENTS

        # A job published now reaches the new herald.deliver once (the old bindings are gone).
        channel = await connection.channel(publisher_confirms=True)
        jobs = await channel.get_exchange(JOBS_EXCHANGE)
        await jobs.publish(job(99_999), DELIVER_ROUTING_KEY, mandatory=True)
        assert [
            json.loads(m.body)["message_ids"] for m in await drain(connection, DELIVER_QUEUE)
        ] == [[99_999]]

        again = await asyncio.to_thread(migrate_queues, amqp_url)
        assert again.returncode == 0, again.stderr
        assert set(moved_counts(again).values()) == {0}
    finally:
        await connection.close()


async def test_an_old_consumer_still_attached_stops_the_migration_and_a_rerun_finishes(
    amqp_url: str,
) -> None:
    """An old sender holding unacknowledged jobs: the command waits, then refuses to delete the
    queue under it; once the sender is gone its jobs are back in the queue and a rerun moves
    them too."""
    connection = await connect(amqp_url, "test")
    old_sender = await connect(amqp_url, "old sender")
    try:
        await fill_old_queues(connection)
        channel = await old_sender.channel()
        await channel.set_qos(prefetch_count=7)
        held: list[aio_pika.abc.AbstractIncomingMessage] = []
        all_held = asyncio.Event()

        async def hold(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            held.append(message)  # never acked: a sender busy with them
            if len(held) == 7:
                all_held.set()

        await (await channel.get_queue(DELIVER_QUEUE)).consume(hold)
        await asyncio.wait_for(all_held.wait(), 30)

        stopped = await asyncio.to_thread(migrate_queues, amqp_url, "--wait", "1")
        assert stopped.returncode == 1
        assert "consumer" in stopped.stdout + stopped.stderr
        assert await exists(connection, f"{DELIVER_QUEUE}.migrating")

        await old_sender.close()  # its 7 jobs return to the old queue
        result = await asyncio.to_thread(migrate_queues, amqp_url)
        assert result.returncode == 0, result.stderr + result.stdout
        await declare_topology(await connection.channel(), TIERS)
        delivered = await drain(connection, DELIVER_QUEUE)
        assert Counter(json.loads(m.body)["message_ids"][0] for m in delivered) == Counter(
            range(JOBS)
        )
        assert not await exists(connection, f"{DELIVER_QUEUE}.migrating")
    finally:
        await old_sender.close()
        await connection.close()
