"""``herald-migrate-queues``: move an installation's queues to the arguments this version declares.

The broker refuses to redeclare a queue with other arguments (PRECONDITION_FAILED), so the
classic queues of an older Herald cannot simply become quorum queues. For each queue whose
arguments differ, in two hops, never holding a job only in memory:

1. declare ``<name>.migrating`` with the new arguments, bind it where the old queue was bound and
   unbind the old one (from here on new jobs go to the new queue only);
2. move the old queue's messages across: get one, publish a copy (confirmed), then ack the
   original, so a crash repeats a job at worst and never drops one;
3. once the old queue is empty and has no consumer left, delete it, declare the queue under its
   own name with the new arguments, bind it, unbind ``<name>.migrating`` and move its messages
   back the same way; delete ``<name>.migrating`` when it is empty.

Running it again resumes where it stopped; on an up-to-date installation it changes nothing.
Herald's services should be stopped meanwhile (they refuse to start on the old queues anyway).
A moved retry job starts its delay again (at most one backoff step more). Retry queues of
backoff steps no longer configured are left as they are: they still expire into herald.deliver.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import ChannelClosed, ChannelNotFoundEntity, ChannelPreconditionFailed

from herald_common.broker import connect
from herald_common.logs import configure_logging
from herald_common.rules.backoff import retry_tiers
from herald_common.settings import (
    BrokerToolSettings,
    QueueSettings,
    RetrySettings,
    settings_or_exit,
)
from herald_common.topology import QueueLimits, QueueSpec, declare_exchanges, queue_specs

log = structlog.get_logger()

TEMPORARY_SUFFIX = ".migrating"


class MigrationSettings(BrokerToolSettings, RetrySettings, QueueSettings):
    """The services' queue settings, so that the queues end as the services will declare them."""


class ConsumersStillAttached(Exception):
    def __init__(self, queue: str, consumers: int) -> None:
        super().__init__(
            f"queue {queue} still has {consumers} consumer(s) (an older Herald still running?): "
            "stop them and run herald-migrate-queues again"
        )


async def _probe(connection: AbstractConnection, spec: QueueSpec, name: str) -> str:
    """'missing', 'same' (exists with spec's arguments) or 'other' (exists, other arguments).

    A failed declare closes the channel, so every probe has a channel of its own."""
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        return "missing"
    await channel.close()
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, durable=True, arguments=spec.arguments)
    except ChannelPreconditionFailed:
        return "other"
    await channel.close()
    return "same"


async def _declare(channel: AbstractChannel, spec: QueueSpec, name: str) -> None:
    queue = await channel.declare_queue(name, durable=True, arguments=spec.arguments)
    for exchange, routing_key in spec.bindings:
        await queue.bind(exchange, routing_key=routing_key)


async def _unbind(channel: AbstractChannel, spec: QueueSpec, name: str) -> None:
    queue = await channel.get_queue(name, ensure=False)
    for exchange, routing_key in spec.bindings:
        await queue.unbind(exchange, routing_key=routing_key)


def _copy(message: AbstractIncomingMessage) -> aio_pika.Message:
    return aio_pika.Message(
        message.body,
        headers=dict(message.headers),
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        message_id=message.message_id,
        expiration=message.expiration,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )


async def _move(
    connection: AbstractConnection, source: str, target: str, wait_s: float
) -> tuple[int, int]:
    """Move every message of ``source`` to ``target``; returns (moved, consumers still on
    source once it is empty). Waits up to ``wait_s`` for consumers to leave (their unacked
    messages return to ``source`` when they do, and are moved too)."""
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        queue = await channel.declare_queue(source, passive=True)
        moved = 0
        deadline = time.monotonic() + wait_s
        while True:
            message = await queue.get(no_ack=False, fail=False)
            if message is not None:
                # Confirmed (and routed: mandatory) before the original goes.
                await channel.default_exchange.publish(
                    _copy(message), routing_key=target, mandatory=True
                )
                await message.ack()
                moved += 1
                continue
            # Asked of the broker each time: a robust channel's declare_queue returns the queue
            # object of the first declaration, with that moment's counts.
            underlay = await channel.get_underlay_channel()
            result = await underlay.queue_declare(source, passive=True)
            if result.message_count:
                continue
            consumers = result.consumer_count or 0
            if not consumers or time.monotonic() >= deadline:
                return moved, consumers
            await asyncio.sleep(0.5)
    finally:
        await channel.close()


async def _delete_drained(connection: AbstractConnection, name: str) -> None:
    """Delete a queue ``_move`` found empty with no consumer. Quorum queues refuse the if-empty
    and if-unused flags (NOT_IMPLEMENTED, which closes the connection), so the safety is the
    order instead: the queue was unbound before it was drained, so nothing can enter it since
    (Herald publishes through exchanges only), and with no consumer nothing is unacknowledged."""
    channel = await connection.channel()
    await channel.queue_delete(name)
    await channel.close()


async def migrate_queue(connection: AbstractConnection, spec: QueueSpec, wait_s: float) -> int:
    """Bring one queue to ``spec``; returns how many messages were moved (both hops)."""
    temporary = spec.name + TEMPORARY_SUFFIX
    state = await _probe(connection, spec, spec.name)
    moved = 0
    if state == "other":
        channel = await connection.channel()
        await _declare(channel, spec, temporary)
        await _unbind(channel, spec, spec.name)
        await channel.close()
        log.info("queue_migration_started", queue=spec.name, via=temporary)
        count, consumers = await _move(connection, spec.name, temporary, wait_s)
        moved += count
        if consumers:
            raise ConsumersStillAttached(spec.name, consumers)
        await _delete_drained(connection, spec.name)
        state = "missing"
    if state == "missing":
        channel = await connection.channel()
        await _declare(channel, spec, spec.name)
        await channel.close()
    if await _probe(connection, spec, temporary) == "missing":
        if moved:
            log.info("queue_migrated", queue=spec.name, moved=moved)
        return moved
    # The second hop (also where a run stopped after the first one resumes).
    channel = await connection.channel()
    await _unbind(channel, spec, temporary)
    await channel.close()
    count, consumers = await _move(connection, temporary, spec.name, wait_s)
    moved += count
    if consumers:
        raise ConsumersStillAttached(temporary, consumers)
    await _delete_drained(connection, temporary)
    log.info("queue_migrated", queue=spec.name, moved=moved)
    return moved


async def migrate_queues(
    url: str, retry_tiers_ms: list[int], limits: QueueLimits, wait_s: float = 60.0
) -> dict[str, int]:
    """Every queue of the topology brought to this version's arguments; {queue: moved}."""
    connection = await connect(url, "herald-migrate-queues")
    try:
        channel = await connection.channel()
        await declare_exchanges(channel)
        await channel.close()
        result = {}
        for spec in queue_specs(retry_tiers_ms, limits):
            result[spec.name] = await migrate_queue(connection, spec, wait_s)
        return result
    finally:
        await connection.close()


def run(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="herald-migrate-queues",
        description="Move Herald's RabbitMQ queues (e.g. classic → quorum) without losing jobs; "
        "reads HERALD_AMQP_URL, HERALD_RETRY_*, HERALD_DELIVERY_LIMIT, HERALD_DEAD_MAX_LENGTH.",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=60.0,
        help="seconds to wait for consumers of an old queue to go (default 60)",
    )
    args = parser.parse_args(argv)
    settings = settings_or_exit(MigrationSettings, "migrate-queues")
    configure_logging("migrate-queues", settings.service_instance, settings.log_level)
    tiers = retry_tiers(settings.retry_base_ms, settings.retry_max_ms)
    try:
        moved = asyncio.run(
            migrate_queues(settings.amqp_url, tiers, QueueLimits.of(settings), args.wait)
        )
    except (ConsumersStillAttached, ChannelClosed) as error:
        log.error("queue_migration_failed", error=str(error))
        raise SystemExit(1) from None
    log.info("queue_migration_done", moved=moved)
