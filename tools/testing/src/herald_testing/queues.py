"""Reading what a test's RabbitMQ queues hold: every message taken and acknowledged."""

from __future__ import annotations

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from herald_common.contracts import DeliveryJob
from herald_common.topology import DELIVER_QUEUE


async def drain_queue(connection: AbstractConnection, name: str) -> list[bytes]:
    """The bodies of every message ready in queue ``name``, oldest first, acknowledged."""
    channel = await connection.channel()
    try:
        queue = await channel.get_queue(name)
        bodies: list[bytes] = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            assert isinstance(message, AbstractIncomingMessage)
            bodies.append(message.body)
        return bodies
    finally:
        await channel.close()


async def drain_jobs(
    connection: AbstractConnection, name: str = DELIVER_QUEUE
) -> list[DeliveryJob]:
    """Every delivery job ready in ``name`` (herald.deliver unless said), acknowledged."""
    return [DeliveryJob.decode(body) for body in await drain_queue(connection, name)]
