"""``herald-scheduler``: entry point; wires the database, the broker and the loop."""

from __future__ import annotations

import asyncio
import signal

import structlog
from aio_pika.abc import AbstractIncomingMessage

from herald_common.broker import Publisher, connect
from herald_common.db import create_engine
from herald_common.logs import configure_logging
from herald_common.loop import run_async
from herald_common.metrics import serve_metrics
from herald_common.rules.backoff import retry_tiers
from herald_common.settings import settings_or_exit
from herald_common.topology import SCHEDULER_EVENTS_QUEUE, QueueLimits, declare_topology
from herald_scheduler.backlog import DeliverBacklog
from herald_scheduler.scheduler import Scheduler
from herald_scheduler.settings import SchedulerSettings

log = structlog.get_logger()


async def serve(settings: SchedulerSettings) -> None:
    engine = create_engine(settings)
    connection = await connect(settings.amqp_url, f"herald-scheduler {settings.service_instance}")
    channel = await connection.channel()
    tiers = retry_tiers(settings.retry_base_ms, settings.retry_max_ms)
    await declare_topology(channel, tiers, QueueLimits.of(settings))
    publisher = await Publisher.open(connection, settings.publish_timeout_s)
    backlog = DeliverBacklog(connection)
    scheduler = Scheduler(engine, publisher, settings, backlog.ready_jobs)

    async def on_event(message: AbstractIncomingMessage) -> None:
        async with message.process():
            log.info(
                "mailing_event_received",
                mailing_id=message.headers.get("x-mailing-id"),
                request_id=message.headers.get("x-request-id"),
                routing_key=message.routing_key,
            )
            scheduler.wake()

    await channel.set_qos(prefetch_count=50)
    events = await channel.get_queue(SCHEDULER_EVENTS_QUEUE)
    await events.consume(on_event)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, scheduler.stop)
    try:
        await scheduler.run()
    finally:
        await connection.close()
        await engine.dispose()


def run() -> None:
    settings = settings_or_exit(SchedulerSettings, "scheduler")
    configure_logging("scheduler", settings.service_instance, settings.log_level)
    serve_metrics(settings.metrics_host, settings.metrics_port)
    run_async(serve(settings))
