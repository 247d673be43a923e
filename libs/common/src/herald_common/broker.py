"""RabbitMQ connections and a publisher that returns only once the broker has confirmed.

HERALD_AMQP_URL may name several nodes of one cluster (comma-separated). A connection starts on
the first that answers and, whenever it is lost, reconnects to the next one in turn: aio-pika's
robust connection alone retries its one URL, which is exactly the node that just went down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from yarl import URL

from herald_common.settings import HeraldSettings, split_amqp_urls
from herald_common.topology import persistent_message

log = structlog.get_logger()

# A node that is down refuses at once; this bounds one that does not answer at all, so that the
# next node gets its turn.
CONNECT_TIMEOUT_S = 10.0
# Between failed attempts once every node has been tried (aio-pika's default is 5 s).
RECONNECT_INTERVAL_S = 2.0
DEFAULT_PUBLISH_TIMEOUT_S: float = HeraldSettings.model_fields["publish_timeout_s"].default


class FailoverConnection(aio_pika.RobustConnection):
    """A robust connection over several node URLs: each time the connection closes (lost, or an
    attempt failed) the next attempt goes to the next URL. Channels, queues and consumers are
    restored on whichever node answers, as aio-pika does for one URL."""

    def __init__(self, urls: Sequence[str], first: int = 0, **kwargs: Any) -> None:
        if not urls:
            raise ValueError("no broker URL")
        self.urls = [URL(url) for url in urls]
        self._current = first % len(self.urls)
        super().__init__(self.urls[self._current], **kwargs)

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        # Rotate before the robust connection schedules its next attempt, which reads self.url.
        if len(self.urls) > 1 and not self._close_called:
            self._current = (self._current + 1) % len(self.urls)
            self.url = self.urls[self._current]
            log.info("broker_failover", next_node=f"{self.url.host}:{self.url.port}")
        await super()._on_connection_close(closing)


async def connect(url: str, name: str) -> AbstractRobustConnection:
    """A connection to the first node in ``url`` (one URL or several comma-separated) that
    answers; it re-opens itself, its channels and consumers, on another node if need be."""
    urls = split_amqp_urls(url)
    if not urls:
        raise ValueError("HERALD_AMQP_URL is empty")
    last_error: BaseException | None = None
    for first in range(len(urls)):
        connection = FailoverConnection(
            urls,
            first,
            client_properties={"connection_name": name},
            reconnect_interval=RECONNECT_INTERVAL_S,
        )
        try:
            await connection.connect(timeout=CONNECT_TIMEOUT_S)
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as error:
            # fail_fast: the first attempt's error ends this connection; try the next node.
            last_error = error
            await connection.close()
            continue
        return connection
    assert last_error is not None
    raise last_error


class PublishTimeout(TimeoutError):
    """The broker did not confirm in time: it may block publishers (memory or disk alarm)."""

    def __init__(self, timeout_s: float, count: int) -> None:
        super().__init__(f"{count} publish(es) not confirmed within {timeout_s:g} s")
        self.timeout_s = timeout_s


@dataclass(frozen=True, slots=True)
class Outgoing:
    exchange: str
    routing_key: str
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    expiration_ms: int | None = None


class Publisher:
    """Publishes with publisher confirms and ``mandatory``: an unroutable message, a message a
    full queue rejects (``reject-publish``: the broker nacks it) and one not confirmed within
    ``timeout_s`` are all errors, so the caller keeps its outbox rows."""

    def __init__(
        self, channel: AbstractChannel, timeout_s: float = DEFAULT_PUBLISH_TIMEOUT_S
    ) -> None:
        self._channel = channel
        self._timeout_s = timeout_s
        self._exchanges: dict[str, AbstractExchange] = {}

    @classmethod
    async def open(
        cls, connection: AbstractRobustConnection, timeout_s: float = DEFAULT_PUBLISH_TIMEOUT_S
    ) -> Publisher:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return cls(channel, timeout_s)

    async def _exchange(self, name: str) -> AbstractExchange:
        exchange = self._exchanges.get(name)
        if exchange is None:
            exchange = await self._channel.get_exchange(name, ensure=False)
            self._exchanges[name] = exchange
        return exchange

    async def _publish(self, item: Outgoing) -> None:
        exchange = await self._exchange(item.exchange)
        message = persistent_message(item.body, item.headers, item.expiration_ms)
        await exchange.publish(message, routing_key=item.routing_key, mandatory=True)

    async def publish(self, item: Outgoing) -> None:
        await self.publish_all([item])

    async def publish_all(self, items: Sequence[Outgoing]) -> None:
        """Publish concurrently (confirms are pipelined, so the batch shares one deadline);
        raises if any was not confirmed."""
        try:
            async with asyncio.timeout(self._timeout_s):
                await asyncio.gather(*(self._publish(item) for item in items))
        except TimeoutError:
            raise PublishTimeout(self._timeout_s, len(items)) from None

    async def close(self) -> None:
        await self._channel.close()
