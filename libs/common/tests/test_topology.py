"""The quorum topology on a real RabbitMQ (3.10 here): what the retry jitter and the dead-letter
queue rely on, checked on the broker rather than assumed from its documentation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from herald_common.broker import Outgoing, Publisher, connect
from herald_common.topology import (
    DEAD_EXCHANGE,
    DEAD_QUEUE,
    DELIVER_QUEUE,
    DELIVER_ROUTING_KEY,
    JOBS_EXCHANGE,
    RETRY_EXCHANGE,
    QueueLimits,
    declare_topology,
    retry_routing_key,
)

TIER_MS = 1_500


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await connect(amqp_url, "topology-tests")
    try:
        yield connection
    finally:
        await connection.close()


WAIT_S = 20


async def first_message(
    channel: AbstractChannel, queue_name: str
) -> tuple[AbstractIncomingMessage, float]:
    queue = await channel.get_queue(queue_name)
    began = time.monotonic()
    while time.monotonic() - began < WAIT_S:
        message = await queue.get(no_ack=False, fail=False)
        if message is not None:
            return message, time.monotonic() - began
        await asyncio.sleep(0.02)
    raise AssertionError(f"nothing arrived in {queue_name} within {WAIT_S} s")


async def test_a_retry_job_expires_back_into_deliver_at_its_own_expiration(
    broker: AbstractRobustConnection,
) -> None:
    """Per-message ``expiration`` (the jitter) is honoured by a quorum retry queue and the
    expired job is dead-lettered into herald.deliver (at-least-once)."""
    channel = await broker.channel()
    await declare_topology(channel, [TIER_MS])
    publisher = await Publisher.open(broker)
    await publisher.publish(
        Outgoing(RETRY_EXCHANGE, retry_routing_key(TIER_MS), b"jittered", {}, expiration_ms=300)
    )
    message, waited = await first_message(channel, DELIVER_QUEUE)
    assert message.body == b"jittered"
    assert message.headers["x-death"][0]["reason"] == "expired"  # type: ignore[index]
    assert waited < TIER_MS / 1000  # its own 300 ms, not the queue's 1.5 s


async def test_a_retry_job_without_expiration_waits_the_queue_ttl(
    broker: AbstractRobustConnection,
) -> None:
    channel = await broker.channel()
    await declare_topology(channel, [TIER_MS])
    publisher = await Publisher.open(broker)
    await publisher.publish(Outgoing(RETRY_EXCHANGE, retry_routing_key(TIER_MS), b"plain"))
    message, waited = await first_message(channel, DELIVER_QUEUE)
    assert message.body == b"plain"
    assert waited >= TIER_MS / 1000 * 0.9


async def test_a_job_given_back_more_than_the_delivery_limit_goes_to_dead(
    broker: AbstractRobustConnection,
) -> None:
    """A poison job that kills its sender comes back each time; past the limit it is parked."""
    channel = await broker.channel()
    await declare_topology(channel, [TIER_MS], QueueLimits(delivery_limit=3))
    publisher = await Publisher.open(broker)
    await publisher.publish(Outgoing(JOBS_EXCHANGE, DELIVER_ROUTING_KEY, b"poison"))
    deliveries = 0
    deliver = await channel.get_queue(DELIVER_QUEUE)
    for _ in range(10):
        message = await deliver.get(no_ack=False, fail=False)
        if message is None:
            break
        deliveries += 1
        await message.nack(requeue=True)  # as a sender that died with it would
    assert deliveries == 4  # the first delivery and 3 more
    dead, _ = await first_message(channel, DEAD_QUEUE)
    assert dead.body == b"poison"
    assert dead.headers["x-first-death-reason"] == "delivery_limit"


async def test_dead_keeps_the_newest_jobs_up_to_its_length(
    broker: AbstractRobustConnection,
) -> None:
    channel = await broker.channel(publisher_confirms=True)
    await declare_topology(channel, [TIER_MS], QueueLimits(dead_max_length=3))
    dead_exchange = await channel.get_exchange(DEAD_EXCHANGE)
    for index in range(5):
        await dead_exchange.publish(aio_pika.Message(f"{index}".encode()), "")
    dead = await channel.get_queue(DEAD_QUEUE)
    kept = []
    while message := await dead.get(no_ack=True, fail=False):
        kept.append(message.body)
    assert kept == [b"2", b"3", b"4"]
