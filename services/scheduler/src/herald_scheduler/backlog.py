"""How many delivery jobs wait in the broker, asked of RabbitMQ with a passive declare.

The lost-job sweep runs only when the answer is 0: with ready jobs in the queue, a message
still ``pending`` may simply be waiting its turn.
"""

from __future__ import annotations

import asyncio

from aio_pika.abc import AbstractConnection

from herald_common.topology import DELIVER_QUEUE

PROBE_TIMEOUT_S = 5.0


class DeliverBacklog:
    def __init__(self, connection: AbstractConnection) -> None:
        self._connection = connection

    async def ready_jobs(self) -> int | None:
        """Jobs ready in the delivery queue; None when the broker cannot say (away, blocked,
        the queue not declared yet after a reset): then nothing is assumed lost."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                # A channel of its own: a passive declare of a missing queue closes its channel.
                channel = await self._connection.channel()
                try:
                    underlay = await channel.get_underlay_channel()
                    declared = await underlay.queue_declare(DELIVER_QUEUE, passive=True)
                finally:
                    await channel.close()
        except Exception:
            return None
        return declared.message_count
