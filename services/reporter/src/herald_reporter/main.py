"""``herald-reporter``: entry point; checks the settings, wires the database and the loop."""

from __future__ import annotations

import asyncio
import signal
import sys

import structlog
from pydantic import ValidationError

from herald_common.db import create_engine
from herald_common.logs import configure_logging
from herald_common.loop import run_async
from herald_common.metrics import serve_metrics
from herald_reporter.reporter import Reporter
from herald_reporter.settings import ReporterSettings, describe_errors

# Like sysexits' EX_CONFIG family: a configuration error, not a crash worth restarting for.
EXIT_BAD_SETTINGS = 2


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


class BadSettings(Exception):
    """Settings the reporter cannot start with; one line per problem, named by variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def load_settings() -> ReporterSettings:
    try:
        return ReporterSettings()
    except ValidationError as error:
        raise BadSettings(describe_errors(error)) from None


def run() -> None:
    try:
        settings = load_settings()
    except BadSettings as error:
        configure_logging("reporter")
        structlog.get_logger().error("settings_invalid", problems=error.problems)
        for problem in error.problems:
            print(f"herald-reporter: {problem}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_SETTINGS) from None
    configure_logging("reporter", settings.service_instance, settings.log_level)
    serve_metrics(settings.metrics_host, settings.metrics_port)
    run_async(serve(settings))
