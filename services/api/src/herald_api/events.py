"""Mailing events for the scheduler, published after the commit, best effort.

Events only shorten the scheduler's reaction time; it polls the database anyway, so a broker
outage costs latency, never a mailing. Publishing therefore never blocks or fails a request.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from aio_pika.abc import AbstractRobustConnection

from herald_api import metrics
from herald_common.broker import DEFAULT_PUBLISH_TIMEOUT_S, Outgoing, Publisher, connect
from herald_common.contracts import MailingEvent, MailingEventKind
from herald_common.topology import (
    EVENTS_EXCHANGE,
    QueueLimits,
    declare_topology,
    mailing_event_routing_key,
)

log = structlog.get_logger()


class EventPublisher:
    def __init__(
        self,
        amqp_url: str,
        retry_tiers_ms: list[int],
        limits: QueueLimits | None = None,
        publish_timeout_s: float = DEFAULT_PUBLISH_TIMEOUT_S,
    ) -> None:
        self._url = amqp_url
        self._tiers = retry_tiers_ms
        self._limits = limits or QueueLimits()
        # The publish runs beside the request (never in it), bounded so that tasks do not pile
        # up behind a broker that blocks publishers.
        self._timeout_s = publish_timeout_s
        self._connection: AbstractRobustConnection | None = None
        self._publisher: Publisher | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connector: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        # A robust connection is not "closed" while it reconnects; `connected` tells the truth.
        connection = self._connection
        return connection is not None and connection.connected.is_set()

    def start(self) -> None:
        self._connector = asyncio.create_task(self._connect_forever())

    async def _connect_forever(self) -> None:
        delay = 0.5
        while True:
            connection: AbstractRobustConnection | None = None
            try:
                connection = await connect(self._url, "herald-api")
                channel = await connection.channel()
                await declare_topology(channel, self._tiers, self._limits)
                await channel.close()
                self._publisher = await Publisher.open(connection, self._timeout_s)
                self._connection = connection
                log.info("broker_connected")
                return
            except Exception as error:  # the broker may come later; the API serves meanwhile
                # A robust connection left open would go on reconnecting by itself: one more
                # per attempt (e.g. while the queues await herald-migrate-queues).
                if connection is not None:
                    await connection.close()
                log.warning("broker_unavailable", error=str(error), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    def publish(
        self,
        kind: MailingEventKind,
        mailing_id: int,
        starts_at: datetime,
        ends_at: datetime,
        request_id: str | None = None,
    ) -> None:
        event = MailingEvent(
            kind=kind,
            mailing_id=mailing_id,
            starts_at=starts_at,
            ends_at=ends_at,
            occurred_at=datetime.now(UTC),
        )
        task = asyncio.create_task(self._publish(event, request_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, event: MailingEvent, request_id: str | None) -> None:
        ids = {"mailing_id": event.mailing_id, "request_id": request_id, "kind": event.kind}
        if self._publisher is None:
            metrics.EVENTS.labels("skipped").inc()
            log.info("mailing_event_skipped", **ids, reason="no broker")
            return
        headers: dict[str, object] = {"x-mailing-id": event.mailing_id}
        if request_id:
            headers["x-request-id"] = request_id
        item = Outgoing(
            EVENTS_EXCHANGE, mailing_event_routing_key(event.kind), event.encode(), headers
        )
        try:
            await self._publisher.publish(item)
        except Exception as error:
            metrics.EVENTS.labels("failed").inc()
            log.warning("mailing_event_lost", **ids, error=str(error))
            return
        metrics.EVENTS.labels("published").inc()
        log.info("mailing_event_published", **ids)

    async def close(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self._timeout_s)
        if self._connection is not None:
            await self._connection.close()
