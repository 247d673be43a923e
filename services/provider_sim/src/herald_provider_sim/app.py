"""Assembling the simulator's aiohttp application and running it inside an event loop."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from herald_provider_sim.config import SimConfig
from herald_provider_sim.control import add_control_routes
from herald_provider_sim.send import SIM_KEY, handle_send
from herald_provider_sim.state import Simulator

# In-flight latency sleeps are cut off after this so that a stop completes within a second.
SHUTDOWN_TIMEOUT_S = 0.5
_BACKLOG = 1024

logger = logging.getLogger("herald_provider_sim")


async def _release_hung_requests(app: web.Application) -> None:
    app[SIM_KEY].stopping.set()


def create_app(config: SimConfig | None = None) -> web.Application:
    """The simulator as an aiohttp application; its state is `app[SIM_KEY]`."""
    app = web.Application()
    app[SIM_KEY] = Simulator(config or SimConfig())
    for prefix in ("", "/v1"):
        app.router.add_post(prefix + "/send/{msg_id}", handle_send)
    add_control_routes(app)
    app.on_shutdown.append(_release_hung_requests)
    return app


def make_runner(app: web.Application, config: SimConfig) -> web.AppRunner:
    """A runner that cancels handlers of departed clients, so hangs do not pile up."""
    return web.AppRunner(
        app,
        access_log=logger if config.access_log else None,
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        handle_signals=False,
    )


def base_url(host: str, port: int) -> str:
    netloc = f"[{host}]" if ":" in host else host
    return f"http://{netloc}:{port}/v1"


@asynccontextmanager
async def running_simulator(
    host: str | None = None, port: int | None = None, config: SimConfig | None = None
) -> AsyncIterator[str]:
    """Serve the simulator in the current loop and yield its base URL; port 0 picks a free one."""
    config = config or SimConfig()
    host = config.host if host is None else host
    port = config.port if port is None else port
    runner = make_runner(create_app(config), config)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=_BACKLOG)
        await site.start()
        bound_port = runner.addresses[0][1]
        yield base_url(host, bound_port)
    finally:
        await runner.cleanup()
