"""RabbitMQ topology, declared in this one place by every service that touches it.

    herald.jobs (direct) --deliver--> herald.deliver ──reject──> herald.dead (fanout) → herald.dead
    herald.retry (direct) --retry.<ttl>--> herald.retry.<ttl>ms ──TTL expiry──> herald.jobs/deliver
    herald.events (topic) --mailing.*--> herald.scheduler.events

Retry queues have a fixed TTL each (one per backoff step), so changing the steps creates new
queues instead of failing on a mismatched argument.
"""

from __future__ import annotations

from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, ExchangeType

JOBS_EXCHANGE = "herald.jobs"
DELIVER_QUEUE = "herald.deliver"
DELIVER_ROUTING_KEY = "deliver"
RETRY_EXCHANGE = "herald.retry"
DEAD_EXCHANGE = "herald.dead"
DEAD_QUEUE = "herald.dead"
EVENTS_EXCHANGE = "herald.events"
SCHEDULER_EVENTS_QUEUE = "herald.scheduler.events"
# Events only wake the scheduler early; a stale one is useless, so they do not pile up.
EVENTS_TTL_MS = 60_000


def retry_queue_name(ttl_ms: int) -> str:
    return f"herald.retry.{ttl_ms}ms"


def retry_routing_key(ttl_ms: int) -> str:
    return f"retry.{ttl_ms}"


def mailing_event_routing_key(kind: str) -> str:
    return f"mailing.{kind}"


async def declare_topology(channel: AbstractChannel, retry_tiers_ms: list[int]) -> None:
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
        SCHEDULER_EVENTS_QUEUE, durable=True, arguments={"x-message-ttl": EVENTS_TTL_MS}
    )
    await events_queue.bind(events, routing_key="mailing.*")


def persistent_message(
    body: bytes,
    headers: dict[str, Any] | None = None,
    expiration_ms: int | None = None,
) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers=headers or {},
        expiration=expiration_ms / 1000 if expiration_ms is not None else None,
    )
