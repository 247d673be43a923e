"""The RabbitMQ topology of the Herald before quorum queues, verbatim, for migration tests."""

from __future__ import annotations

from typing import Any

from aio_pika.abc import AbstractChannel, ExchangeType

from herald_common.topology import (
    DEAD_EXCHANGE,
    DEAD_QUEUE,
    DELIVER_QUEUE,
    DELIVER_ROUTING_KEY,
    EVENTS_EXCHANGE,
    JOBS_EXCHANGE,
    RETRY_EXCHANGE,
    SCHEDULER_EVENTS_QUEUE,
    retry_queue_name,
    retry_routing_key,
)


async def declare_classic_topology(channel: AbstractChannel, retry_tiers_ms: list[int]) -> None:
    """What the previous ``declare_topology`` declared: the same names, classic queues."""
    jobs = await channel.declare_exchange(JOBS_EXCHANGE, ExchangeType.DIRECT, durable=True)
    dead = await channel.declare_exchange(DEAD_EXCHANGE, ExchangeType.FANOUT, durable=True)
    retry = await channel.declare_exchange(RETRY_EXCHANGE, ExchangeType.DIRECT, durable=True)
    events = await channel.declare_exchange(EVENTS_EXCHANGE, ExchangeType.TOPIC, durable=True)
    dead_queue = await channel.declare_queue(DEAD_QUEUE, durable=True)
    await dead_queue.bind(dead, routing_key="")
    deliver_args: dict[str, Any] = {"x-dead-letter-exchange": DEAD_EXCHANGE}
    deliver = await channel.declare_queue(DELIVER_QUEUE, durable=True, arguments=deliver_args)
    await deliver.bind(jobs, routing_key=DELIVER_ROUTING_KEY)
    for ttl_ms in retry_tiers_ms:
        args: dict[str, Any] = {
            "x-message-ttl": ttl_ms,
            "x-dead-letter-exchange": JOBS_EXCHANGE,
            "x-dead-letter-routing-key": DELIVER_ROUTING_KEY,
        }
        queue = await channel.declare_queue(retry_queue_name(ttl_ms), durable=True, arguments=args)
        await queue.bind(retry, routing_key=retry_routing_key(ttl_ms))
    events_queue = await channel.declare_queue(
        SCHEDULER_EVENTS_QUEUE, durable=True, arguments={"x-message-ttl": 60_000}
    )
    await events_queue.bind(events, routing_key="mailing.*")
