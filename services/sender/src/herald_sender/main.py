"""``herald-sender``: entry point; consumes delivery jobs until SIGTERM, then drains."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog

from herald_common.broker import Publisher, connect
from herald_common.clock import DatabaseClock
from herald_common.db import create_engine
from herald_common.logs import configure_logging
from herald_common.loop import run_async
from herald_common.metrics import serve_metrics
from herald_common.rules.backoff import retry_tiers
from herald_common.rules.breaker import CircuitBreaker
from herald_common.settings import settings_or_exit
from herald_common.topology import DELIVER_QUEUE, QueueLimits, declare_topology
from herald_sender.gate import ProviderGate
from herald_sender.provider import ProviderClient
from herald_sender.recorder import Recorder
from herald_sender.settings import SenderSettings
from herald_sender.worker import DeliveryWorker

log = structlog.get_logger()
DRAIN_TIMEOUT_S = 20.0


async def serve(settings: SenderSettings) -> None:
    engine = create_engine(settings, pre_ping=False)
    connection = await connect(settings.amqp_url, f"herald-sender {settings.service_instance}")
    channel = await connection.channel()
    tiers = retry_tiers(settings.retry_base_ms, settings.retry_max_ms)
    await declare_topology(channel, tiers, QueueLimits.of(settings))
    await channel.set_qos(prefetch_count=settings.sender_prefetch)
    publisher = await Publisher.open(connection, settings.publish_timeout_s)
    recorder = Recorder(
        engine, publisher, settings.record_batch_size, settings.record_interval_ms / 1000
    )
    recorder.start()
    clock = DatabaseClock()
    # Judge the end, windows and leases on the database's clock from the first job on.
    with contextlib.suppress(Exception):
        await clock.measure(engine)
    measuring = asyncio.create_task(clock.keep_measuring(engine))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    async with ProviderClient(
        settings.provider_url,
        settings.provider_token.get_secret_value(),
        concurrency=settings.sender_concurrency,
        connect_timeout_s=settings.provider_connect_timeout_s,
        timeout_s=settings.provider_timeout_s,
    ) as provider:
        gate = ProviderGate(
            engine,
            CircuitBreaker(
                failure_threshold=settings.breaker_failures,
                base_cooldown_s=settings.breaker_cooldown_s,
                max_cooldown_s=settings.breaker_max_cooldown_s,
            ),
            rate_per_s=settings.rate_limit_per_s,
            burst=settings.rate_limit_burst,
            clock=clock,
        )
        worker = DeliveryWorker(engine, provider, recorder, settings, gate, publisher, clock)
        queue = await channel.get_queue(DELIVER_QUEUE)
        tag = await queue.consume(worker.on_message)
        log.info("sender_started", concurrency=settings.sender_concurrency)
        await stopping.wait()
        # Stop taking jobs, finish those in hand; unfinished ones return to the queue.
        await queue.cancel(tag)
        log.info("sender_draining", jobs=worker.jobs_in_progress)
        await worker.drain(DRAIN_TIMEOUT_S)
    measuring.cancel()
    await recorder.stop()
    await connection.close()
    await engine.dispose()
    log.info("sender_stopped")


def run() -> None:
    settings = settings_or_exit(SenderSettings, "sender")
    configure_logging("sender", settings.service_instance, settings.log_level)
    serve_metrics(settings.metrics_host, settings.metrics_port)
    run_async(serve(settings))
