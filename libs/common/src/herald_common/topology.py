"""RabbitMQ topology, declared in this one place by every service that touches it.

    herald.jobs (direct) --deliver--> herald.deliver ──reject, delivery limit──> herald.dead
    herald.retry (direct) --retry.<ttl>--> herald.retry.<ttl>ms ──TTL expiry──> herald.jobs/deliver
    herald.events (topic) --mailing.*--> herald.scheduler.events

Every queue is a quorum queue: replicated on the nodes of a cluster, so a job survives the loss
of a node (a minority of them). Dead-lettering is at-least-once (the broker keeps a job until the
target queue confirms it), which needs ``x-overflow: reject-publish``. Retry queues have a fixed
TTL each (one per backoff step), so changing the steps creates new queues instead of failing on
a mismatched argument. Found on RabbitMQ 3.10.8 (libs/common/tests/test_topology.py): quorum
queues honour both the queue's ``x-message-ttl`` and a message's own ``expiration`` and
dead-letter both on expiry; ``reject-publish`` on a quorum queue accepts one message beyond
``x-max-length`` before it nacks.

Queues declared by an older Herald (classic queues) are moved by ``herald-migrate-queues``
(``queue_migration.py``): redeclaring a queue with other arguments is refused by the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, ExchangeType
from aio_pika.exceptions import ChannelPreconditionFailed

from herald_common.settings import QueueSettings

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


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """HERALD_DELIVERY_LIMIT and HERALD_DEAD_MAX_LENGTH; the defaults are the settings'."""

    delivery_limit: int = QueueSettings.model_fields["delivery_limit"].default
    dead_max_length: int = QueueSettings.model_fields["dead_max_length"].default

    @classmethod
    def of(cls, settings: QueueSettings) -> QueueLimits:
        return cls(settings.delivery_limit, settings.dead_max_length)


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A queue as Herald declares it, with the bindings that feed it."""

    name: str
    arguments: dict[str, Any]
    bindings: tuple[tuple[str, str], ...]  # (exchange, routing key)


class TopologyMismatch(Exception):
    """A queue exists with other arguments than this version declares (e.g. a classic queue
    from before the quorum queues): the broker refuses to redeclare it."""

    def __init__(self, queue: str, reason: str) -> None:
        super().__init__(
            f"queue {queue} exists with other arguments than this Herald declares ({reason}); "
            "run `herald-migrate-queues` once (docs/operations.md, 'Moving to quorum queues')"
        )
        self.queue = queue


QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}
# At-least-once dead-lettering: the source queue keeps a message until the target confirms it.
# The broker accepts the strategy only with reject-publish.
AT_LEAST_ONCE: dict[str, Any] = {
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}


def queue_specs(retry_tiers_ms: list[int], limits: QueueLimits) -> list[QueueSpec]:
    """Every queue of the topology, the dead-letter target first (the others point at it)."""
    specs = [
        # Jobs kept for a human: drop the oldest when full rather than refuse a dead job.
        QueueSpec(
            DEAD_QUEUE,
            {**QUORUM, "x-max-length": limits.dead_max_length, "x-overflow": "drop-head"},
            ((DEAD_EXCHANGE, ""),),
        ),
        QueueSpec(
            DELIVER_QUEUE,
            {
                **QUORUM,
                **AT_LEAST_ONCE,
                "x-dead-letter-exchange": DEAD_EXCHANGE,
                "x-delivery-limit": limits.delivery_limit,
            },
            ((JOBS_EXCHANGE, DELIVER_ROUTING_KEY),),
        ),
    ]
    for ttl_ms in retry_tiers_ms:
        args = {
            **QUORUM,
            **AT_LEAST_ONCE,
            "x-message-ttl": ttl_ms,
            "x-dead-letter-exchange": JOBS_EXCHANGE,
            "x-dead-letter-routing-key": DELIVER_ROUTING_KEY,
        }
        binding = ((RETRY_EXCHANGE, retry_routing_key(ttl_ms)),)
        specs.append(QueueSpec(retry_queue_name(ttl_ms), args, binding))
    # Replicated too: a classic queue whose node is down cannot be consumed, and the scheduler's
    # consumer would keep its connection from being restored on another node.
    specs.append(
        QueueSpec(
            SCHEDULER_EVENTS_QUEUE,
            {**QUORUM, "x-message-ttl": EVENTS_TTL_MS},
            ((EVENTS_EXCHANGE, "mailing.*"),),
        )
    )
    return specs


async def declare_exchanges(channel: AbstractChannel) -> None:
    await channel.declare_exchange(JOBS_EXCHANGE, ExchangeType.DIRECT, durable=True)
    await channel.declare_exchange(DEAD_EXCHANGE, ExchangeType.FANOUT, durable=True)
    await channel.declare_exchange(RETRY_EXCHANGE, ExchangeType.DIRECT, durable=True)
    await channel.declare_exchange(EVENTS_EXCHANGE, ExchangeType.TOPIC, durable=True)


async def declare_topology(
    channel: AbstractChannel, retry_tiers_ms: list[int], limits: QueueLimits | None = None
) -> None:
    """Declare exchanges, queues and bindings; raises ``TopologyMismatch`` (the channel is then
    closed by the broker) if a queue exists with other arguments."""
    await declare_exchanges(channel)
    for spec in queue_specs(retry_tiers_ms, limits or QueueLimits()):
        try:
            queue = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)
        except ChannelPreconditionFailed as error:
            raise TopologyMismatch(spec.name, str(error)) from error
        for exchange, routing_key in spec.bindings:
            await queue.bind(exchange, routing_key=routing_key)


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
