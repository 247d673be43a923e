"""The provider-call ceiling: one process POSTing ``/send/{id}`` as fast as it can.

It uses the sender's own ``ProviderClient`` (aiohttp, the same connector limits, timeouts and
reply judging) under the same event loop runner as ``herald-sender`` (``run_async``), with as many
calls in flight as all senders together. Nothing else happens per call: no claim, no outcome
write, no broker. The pipeline's rate divided by this is what Herald's own work costs.

    python -m bench.ceiling --url http://127.0.0.1:8001/v1 --token JWT --concurrency 400

Prints one JSON object: requests/s over the measuring window (after a warm-up), outcomes, and
call latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections import Counter
from typing import Any

from bench.measure import summarize
from herald_common.loop import run_async
from herald_sender.provider import ProviderClient

try:
    import uvloop  # noqa: F401 - only to say which loop ran

    LOOP = "uvloop"
except ImportError:  # pragma: no cover
    LOOP = "asyncio"

PHONE = "79999999999"


async def hammer(
    url: str, token: str, concurrency: int, seconds: float, warmup_s: float, first_id: int
) -> dict[str, Any]:
    ids = itertools.count(first_id)
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    async with ProviderClient(
        url, token, concurrency=concurrency, connect_timeout_s=3.0, timeout_s=10.0
    ) as client:
        started = time.perf_counter()
        window_from = started + warmup_s
        window_to = window_from + seconds
        in_window = 0

        async def worker() -> None:
            nonlocal in_window
            while time.perf_counter() < window_to:
                result = await client.send(next(ids), PHONE, "ceiling")
                done = time.perf_counter()
                if window_from <= done < window_to:
                    in_window += 1
                    outcomes[result.metric_label] += 1
                    latencies.append(result.latency_ms)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        "requests": in_window,
        "requests_per_s": round(in_window / seconds, 1),
        "outcomes": dict(outcomes),
        "latency_ms": summarize(latencies).__dict__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the provider base URL, like the sender's")
    parser.add_argument("--token", required=True)
    parser.add_argument("--concurrency", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--first-id", type=int, default=10**12)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}

    async def measure() -> None:
        result.update(
            await hammer(
                args.url, args.token, args.concurrency, args.seconds, args.warmup, args.first_id
            )
        )

    run_async(measure())  # the sender's own event loop (uvloop where installed)
    result["loop"] = LOOP
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
