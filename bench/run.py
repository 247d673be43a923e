"""``make bench``: Herald's throughput and latency on this machine, one table, docs/performance.md.

Starts its own PostgreSQL (durable) and RabbitMQ in a temporary directory, Herald through
``HeraldStack`` (simulator, api, scheduler, later two senders), everything on 127.0.0.1, and
measures (a) fan-out, (b) delivery, (c) the HTTP client's ceiling, (d) statistics latency,
(e) CRUD latency during delivery, (f) peak memory; see bench/phases.py.

    uv run --frozen python -m bench.run            # full: 1,000,000 clients, ~3-5 min
    uv run --frozen python -m bench.run --quick    # smoke: 100,000 clients, ~1-2 min
    uv run --frozen python -m bench.run --quick --env HERALD_SENDER_CONCURRENCY=100

Exits 0 when the harness ran, whether or not the targets were met (the table says so).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from types import FrameType

from bench.infra import machine_description, start_infra
from bench.phases import BASE_ENV, FULL, QUICK, REPO, Bench, Results, log
from bench.report import cpu_table, render, results_table, rows, write_doc

DOC = REPO / "docs" / "performance.md"
RESULTS_DIR = REPO / "bench" / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, ~3 minutes")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="HERALD_X=V",
        help="a setting for every Herald process (repeatable), e.g. HERALD_JOB_SIZE=200",
    )
    parser.add_argument(
        "--sender-env",
        action="append",
        default=[],
        metavar="HERALD_X=V",
        help="a setting for the senders only (repeatable), e.g. HERALD_LOG_LEVEL=WARNING",
    )
    parser.add_argument(
        "--doc",
        type=Path,
        default=None,
        help=f"write the results into this file (default: {DOC.relative_to(REPO)} for a full "
        "run, none with --quick)",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not write any document")
    parser.add_argument(
        "--no-import", action="store_true", help="insert the clients with SQL, skip the import"
    )
    parser.add_argument(
        "--no-crud", action="store_true", help="no (e) CRUD loop during the 0 ms delivery"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    return parser.parse_args(argv)


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    sizes = QUICK if args.quick else FULL
    if args.no_import:
        sizes = dataclasses.replace(sizes, import_clients=False)
    env = dict(BASE_ENV)
    sender_env: dict[str, str] = {}
    for option, target in (("--env", env), ("--sender-env", sender_env)):
        for item in getattr(args, option[2:].replace("-", "_")):
            key, sep, value = item.partition("=")
            if not sep or not key.startswith("HERALD_"):
                print(f"{option} takes HERALD_NAME=value, not {item!r}", file=sys.stderr)
                return 2
            target[key] = value
    mode = "quick" if args.quick else "full"
    given = sys.argv[1:] if argv is None else argv
    command = f"`uv run --frozen python -m bench.run {shlex.join(given)}`"
    if not given:
        command = "`make bench` (`uv run --frozen python -m bench.run`)"
    results = Results(mode, dataclasses.asdict(sizes), env, sender_env)
    results.load_before = os.getloadavg()
    base_dir = Path(tempfile.mkdtemp(prefix="hbench-"))
    base_dir.chmod(0o755)  # PostgreSQL runs as `postgres` and must reach its directory
    started = time.perf_counter()
    failure: BaseException | None = None
    log(f"{mode} run in {base_dir}; load average {results.load_before}")
    infra = start_infra(base_dir)
    bench: Bench | None = None
    try:
        results.machine = machine_description(infra)
        bench = Bench(infra, sizes, env, results, base_dir / "logs", sender_env)
        bench.start()
        bench.load_clients()
        mailing_id = bench.fan_out()
        bench.stats_latency(mailing_id)
        bench.prepare_delivery()
        bench.ceiling(0)
        bench.deliver(0, sizes.deliver_0ms, "bench-0ms", with_crud=not args.no_crud)
        bench.ceiling(100)
        bench.deliver(100, sizes.deliver_100ms, "bench-100ms", with_crud=False)
        bench.stack.faults(latency_ms=0)
        bench.peak_rss()
    except BaseException as error:  # report what was measured, then fail
        failure = error
        log(f"harness failed: {error!r}")
    finally:
        if bench is not None:
            try:
                bench.close()
            except Exception as error:
                log(f"stopping Herald: {error!r}")
        infra.stop()
    results.seconds = time.perf_counter() - started
    results.load_after = os.getloadavg()

    table = rows(results)
    print(results_table(table))
    print()
    print(cpu_table(results))
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = RESULTS_DIR / f"{stamp}-{mode}.json"
    raw.write_text(json.dumps(dataclasses.asdict(results), indent=1, default=str))
    log(f"raw results: {raw.relative_to(REPO)}")
    doc = None if args.no_doc else (args.doc or (None if args.quick else DOC))
    if failure is None and doc is not None:
        write_doc(doc, render(results, table, command))
        log(f"written: {doc}")
    if args.keep or failure is not None:
        log(f"kept {base_dir} (logs in {base_dir / 'logs'})")
    else:
        shutil.rmtree(base_dir, ignore_errors=True)
    if failure is not None:
        if isinstance(failure, KeyboardInterrupt):
            return 130
        raise failure
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
