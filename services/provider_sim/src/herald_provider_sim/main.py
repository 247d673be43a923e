"""Command line: `herald-provider-sim [serve]` runs the simulator, `token` prints a bearer token."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from herald_provider_sim.app import running_simulator
from herald_provider_sim.config import FaultValidationError, SimConfig, load_config
from herald_provider_sim.tokens import make_token


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="herald-provider-sim",
        description="Fake of the external sending API; faults are set with HERALD_SIM_* "
        "variables and changed at run time under /_sim/.",
    )
    parser.add_argument("command", nargs="?", choices=("serve", "token"), default="serve")
    parser.add_argument("--host", help="listen address (HERALD_SIM_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port, 0 for any (HERALD_SIM_PORT, 8001)")
    parser.add_argument("--secret", help="HS256 secret (HERALD_SIM_JWT_SECRET)")
    parser.add_argument("--subject", default="herald", help="token: the `sub` claim")
    parser.add_argument("--ttl", type=int, default=None, help="token: lifetime in seconds")
    return parser.parse_args(argv)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is absent on Windows
        return None
    return uvloop.new_event_loop


async def serve(config: SimConfig) -> None:
    """Run until SIGTERM or SIGINT; print one JSON line with the base URL once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running_simulator(config.host, config.port, config) as url:
        print(json.dumps({"event": "provider_sim_started", "url": url}), flush=True)
        await stop.wait()


def run(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    try:
        config = load_config(os.environ)
    except FaultValidationError as error:
        sys.exit(f"herald-provider-sim: bad environment: {error}")
    overrides = {
        name: value
        for name, value in (("host", args.host), ("port", args.port), ("secret", args.secret))
        if value is not None
    }
    config = dataclasses.replace(config, **overrides)
    if args.command == "token":
        print(make_token(config.secret, args.subject, args.ttl))
        return
    if config.access_log:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(config))
    except OSError as error:
        sys.exit(f"herald-provider-sim: cannot listen on {config.host}:{config.port}: {error}")


if __name__ == "__main__":
    run()
