"""Broker connections over several node URLs, and the publisher's errors, on a real RabbitMQ.

A node going away is played by a TCP proxy in front of the test broker: closing the proxy cuts
every connection through it and refuses new ones, as a stopped node does; pausing it leaves the
socket open with nothing answering, as a broker that blocks publishers does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
from aio_pika.exceptions import DeliveryError
from pydantic import ValidationError

from herald_common.broker import FailoverConnection, Outgoing, Publisher, PublishTimeout, connect
from herald_common.settings import HeraldSettings, split_amqp_urls
from herald_devstack.probes import free_port

A = "amqp://guest:guest@10.0.0.1:5672/herald"
B = "amqps://u:p@rabbit-2.example.com:5671/herald"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(A, [A], id="one-url-as-today"),
        pytest.param(f"{A},{B}", [A, B], id="two"),
        pytest.param(f" {A} , {B} ", [A, B], id="spaces-around-commas"),
        pytest.param("", [], id="empty-means-no-broker"),
    ],
)
def test_split_amqp_urls(value: str, expected: list[str]) -> None:
    assert split_amqp_urls(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(f"{A},", "empty URL between commas", id="trailing-comma"),
        pytest.param(f"{A},,{B}", "empty URL between commas", id="double-comma"),
        pytest.param("http://x/", "amqp:// or amqps://", id="not-amqp"),
        pytest.param(f"{A};{B}", "amqp:// or amqps://", id="semicolon-is-not-a-separator"),
    ],
)
def test_a_bad_amqp_url_list_is_refused_naming_the_setting(value: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        HeraldSettings(database_url="postgresql://h@db/h", amqp_url=value)


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rsplit("@", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{auth}@127.0.0.1:{port}"))


class Proxy:
    """Forwards 127.0.0.1:<port> to the broker; ``close`` plays a node going down, clearing
    ``flowing`` a broker that stops answering."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()


@pytest.fixture
async def proxies(amqp_url: str) -> AsyncIterator[list[Proxy]]:
    port = urlsplit(amqp_url).port
    assert port is not None
    started = [await Proxy(port).start() for _ in range(3)]
    yield started
    for proxy in started:
        with contextlib.suppress(Exception):
            await proxy.close()


async def test_connect_skips_a_node_that_refuses(amqp_url: str) -> None:
    down = _via(amqp_url, free_port())
    connection = await connect(f"{down},{amqp_url}", "test")
    try:
        assert isinstance(connection, FailoverConnection)
        assert connection.url.port == urlsplit(amqp_url).port
    finally:
        await connection.close()


async def test_connect_fails_when_no_node_answers(amqp_url: str) -> None:
    urls = ",".join(_via(amqp_url, free_port()) for _ in range(2))
    with pytest.raises(ConnectionError):
        await connect(urls, "test")


async def test_a_single_url_connects_as_before(amqp_url: str) -> None:
    connection = await connect(amqp_url, "test")
    try:
        assert connection.connected.is_set()
        assert isinstance(connection, FailoverConnection)
        assert [url.port for url in connection.urls] == [urlsplit(amqp_url).port]
    finally:
        await connection.close()


async def test_a_lost_connection_moves_to_the_next_node_and_its_consumer_follows(
    amqp_url: str, proxies: list[Proxy]
) -> None:
    first, second, _ = proxies
    urls = f"{_via(amqp_url, first.port)},{_via(amqp_url, second.port)}"
    connection = await connect(urls, "test")
    try:
        assert connection.url.port == first.port
        channel = await connection.channel()
        queue = await channel.declare_queue(
            "failover", durable=True, arguments={"x-queue-type": "quorum"}
        )
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                await received.put(message.body)

        await queue.consume(on_message)
        publisher = await Publisher.open(connection, timeout_s=10)

        await first.close()  # the node we are on goes down
        deadline = time.monotonic() + 30
        while not (connection.connected.is_set() and connection.url.port == second.port):
            assert time.monotonic() < deadline, "did not reconnect to the second node"
            await asyncio.sleep(0.1)

        # The publisher's channel and the consumer were restored on the new connection.
        async def published() -> None:
            while True:
                try:
                    await publisher.publish(Outgoing("", "failover", b"after failover"))
                    return
                except Exception:  # channels are restored just after the connection
                    await asyncio.sleep(0.2)

        await asyncio.wait_for(published(), 30)
        assert await asyncio.wait_for(received.get(), 30) == b"after failover"
    finally:
        await connection.close()


async def test_a_publish_the_broker_does_not_confirm_in_time_raises(
    amqp_url: str, proxies: list[Proxy]
) -> None:
    proxy = proxies[0]
    connection = await connect(_via(amqp_url, proxy.port), "test")
    try:
        channel = await connection.channel()
        await channel.declare_queue("stalled", durable=True)
        publisher = await Publisher.open(connection, timeout_s=0.5)
        await publisher.publish(Outgoing("", "stalled", b"confirmed"))
        proxy.flowing.clear()  # the socket stays open; no confirm comes back
        began = time.monotonic()
        with pytest.raises(PublishTimeout, match=r"not confirmed within 0\.5 s"):
            await publisher.publish_all([Outgoing("", "stalled", b"stuck")] * 3)
        assert time.monotonic() - began < 3
    finally:
        proxy.flowing.set()
        await connection.close()


async def test_a_publish_a_full_queue_rejects_raises(amqp_url: str) -> None:
    """``x-overflow: reject-publish`` nacks; with confirms that is an error for the caller.
    A quorum queue takes one message beyond x-max-length before it rejects (RabbitMQ 3.10)."""
    connection = await connect(amqp_url, "test")
    try:
        channel = await connection.channel()
        arguments = {"x-queue-type": "quorum", "x-max-length": 2, "x-overflow": "reject-publish"}
        queue = await channel.declare_queue("full", durable=True, arguments=arguments)
        publisher = await Publisher.open(connection)
        for index in range(3):
            await publisher.publish(Outgoing("", "full", f"{index}".encode()))
        with pytest.raises(DeliveryError):
            await publisher.publish(Outgoing("", "full", b"one too many"))
        kept = []
        while message := await queue.get(no_ack=True, fail=False):
            kept.append(message.body)
        assert kept == [b"0", b"1", b"2"]
    finally:
        await connection.close()


async def wait_on(connection: FailoverConnection, port: int) -> None:
    deadline = time.monotonic() + 30
    while not (connection.connected.is_set() and connection.url.port == port):
        assert time.monotonic() < deadline, f"not reconnected through port {port}"
        await asyncio.sleep(0.05)


async def test_failover_goes_round_the_list_and_back_to_the_first(
    amqp_url: str, proxies: list[Proxy]
) -> None:
    """Three nodes: lose the first, then the second (the first is back meanwhile), then the
    third: the connection walks 1 → 2 → 3 → 1, skipping none that answers."""
    first, second, third = proxies
    urls = ",".join(_via(amqp_url, proxy.port) for proxy in proxies)
    connection = await connect(urls, "test")
    assert isinstance(connection, FailoverConnection)
    try:
        assert connection.url.port == first.port
        await first.close()
        await wait_on(connection, second.port)
        proxies[0] = first = await Proxy(first.target_port, first.port).start()  # back up
        await second.close()
        await wait_on(connection, third.port)
        await third.close()
        await wait_on(connection, first.port)
    finally:
        await connection.close()
