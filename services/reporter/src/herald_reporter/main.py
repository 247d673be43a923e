"""``herald-reporter``: entry point; checks the settings, wires the database and the loop."""

from __future__ import annotations

import asyncio
import signal

from herald_common.db import create_engine
from herald_common.logs import configure_logging
from herald_common.loop import run_async
from herald_common.metrics import serve_metrics
from herald_common.settings import settings_or_exit
from herald_reporter.reporter import Reporter
from herald_reporter.settings import ReporterSettings


async def serve(settings: ReporterSettings) -> None:
    engine = create_engine(settings, pool_size=min(settings.db_pool_size, 2))
    reporter = Reporter(engine, settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, reporter.stop)
    try:
        await reporter.run()
    finally:
        await engine.dispose()


def run() -> None:
    settings = settings_or_exit(ReporterSettings, "reporter")
    configure_logging("reporter", settings.service_instance, settings.log_level)
    serve_metrics(settings.metrics_host, settings.metrics_port)
    run_async(serve(settings))
