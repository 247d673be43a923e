"""RabbitMQ connections and a publisher that returns only once the broker has confirmed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from herald_common.topology import persistent_message


async def connect(url: str, name: str) -> AbstractRobustConnection:
    """A connection that re-opens itself and its channels and consumers after a broker restart."""
    return await aio_pika.connect_robust(url, client_properties={"connection_name": name})


@dataclass(frozen=True, slots=True)
class Outgoing:
    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    expiration_ms: int | None = None


class Publisher:
    """Publishes with publisher confirms and ``mandatory``: an unroutable message is an error."""

    def __init__(self, channel: AbstractChannel) -> None:
        self._channel = channel
        self._exchanges: dict[str, AbstractExchange] = {}

    @classmethod
    async def open(cls, connection: AbstractRobustConnection) -> Publisher:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return cls(channel)

    async def _exchange(self, name: str) -> AbstractExchange:
        exchange = self._exchanges.get(name)
        if exchange is None:
            exchange = await self._channel.get_exchange(name, ensure=False)
            self._exchanges[name] = exchange
        return exchange

    async def publish(self, item: Outgoing) -> None:
        exchange = await self._exchange(item.exchange)
        message = persistent_message(item.body, item.headers, item.expiration_ms)
        await exchange.publish(message, routing_key=item.routing_key, mandatory=True)

    async def publish_all(self, items: Sequence[Outgoing]) -> None:
        """Publish concurrently (confirms are pipelined); raises if any was not confirmed."""
        await asyncio.gather(*(self.publish(item) for item in items))

    async def close(self) -> None:
        await self._channel.close()
