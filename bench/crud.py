"""An integrator's CRUD traffic, one request at a time, while a mailing is being delivered.

Each round: create a client, get it, patch it, list clients (limit 50), get the mailing.
Requests start on a fixed schedule (``--rate`` per second, open loop) rather than as fast as
the API answers: a closed loop would take whatever CPU the API frees and so make the delivery
it runs beside depend on its greed. Latencies are from sending to the answer; the same
requests are also timed from their scheduled start, which charges a slow answer's delay to
the requests due meanwhile (one connection: a pessimistic bound). Runs until SIGTERM (or
``--max-seconds``), but never stops before ``--min-requests``; then prints one JSON object
with every latency in milliseconds per operation.

    python -m bench.crud --api-url http://127.0.0.1:8000/api/v1 --token T --mailing-id 2
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from collections.abc import Callable
from functools import partial
from types import FrameType

import httpx

OPERATIONS = ("create client", "get client", "patch client", "list clients", "get mailing")


def run(args: argparse.Namespace) -> dict[str, object]:
    stop = False

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    latencies: dict[str, list[float]] = {op: [] for op in OPERATIONS}
    # The same requests timed from their scheduled start: with one connection, a slow answer
    # also delays the requests due meanwhile, which a client with concurrent connections
    # would not suffer.
    from_schedule: list[float] = []
    errors: dict[str, list[str]] = {op: [] for op in OPERATIONS}
    deadline = time.monotonic() + args.max_seconds
    interval = 1.0 / args.rate
    next_start = time.perf_counter()
    total = 0
    with httpx.Client(
        base_url=args.api_url, headers={"Authorization": f"Bearer {args.token}"}, timeout=30
    ) as api:

        def timed(op: str, call: Callable[[], httpx.Response], ok: int = 200) -> httpx.Response:
            nonlocal total, next_start
            started = next_start
            next_start += interval
            time.sleep(max(0.0, started - time.perf_counter()))
            sent = time.perf_counter()
            try:
                response = call()
            except httpx.HTTPError as error:
                latencies[op].append((time.perf_counter() - sent) * 1000)
                from_schedule.append((time.perf_counter() - started) * 1000)
                errors[op].append(repr(error)[:200])
                total += 1
                raise
            latencies[op].append((time.perf_counter() - sent) * 1000)
            from_schedule.append((time.perf_counter() - started) * 1000)
            total += 1
            if response.status_code != ok:
                errors[op].append(f"{response.status_code} {response.text[:200]}")
            return response

        index = 0
        while (not stop or total < args.min_requests) and time.monotonic() < deadline:
            phone = str(args.first_phone + index)
            index += 1
            try:
                body = {"phone": phone, "tag": "crud", "timezone": "Europe/Moscow"}
                created = timed("create client", partial(api.post, "/clients", json=body), 201)
                if created.status_code != 201:
                    continue
                path = f"/clients/{created.json()['id']}"
                timed("get client", partial(api.get, path))
                timed("patch client", partial(api.patch, path, json={"tag": "crud-patched"}))
                timed("list clients", partial(api.get, "/clients", params={"limit": 50}))
                timed("get mailing", partial(api.get, f"/mailings/{args.mailing_id}"))
            except httpx.HTTPError:
                time.sleep(0.05)
    return {
        "rate_per_s": args.rate,
        "requests": total,
        "rounds": index,
        "latency_ms": latencies,
        "from_schedule_ms": from_schedule,
        "errors": {op: len(items) for op, items in errors.items()},
        "error_examples": {op: items[:3] for op, items in errors.items() if items},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-url", required=True, help="e.g. http://127.0.0.1:8000/api/v1")
    parser.add_argument("--token", required=True)
    parser.add_argument("--mailing-id", type=int, required=True)
    parser.add_argument("--first-phone", type=int, default=77_000_000_000)
    parser.add_argument("--min-requests", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--max-seconds", type=float, default=900)
    args = parser.parse_args(argv)
    print(json.dumps(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
