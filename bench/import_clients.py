"""Benchmark of POST /api/v1/clients/import: a million clients as CSV and as NDJSON.

Against a running API (creates clients there; CSV phones from 79000000000, NDJSON phones from
79500000000, so a second run measures updates):

    uv run python bench/import_clients.py --api-url http://127.0.0.1:8000 --token "$TOKEN"

Self-contained (a throwaway PostgreSQL, migrated, and the API in this process on a free port;
no RabbitMQ: the API serves without it). The client table is emptied before each file; with
--again the same file is imported a second time (every row equal: skipped) and then a copy
with every tag changed (every row updated):

    uv run python bench/import_clients.py --self-contained [--durable] [--again]

Prints one JSON line per import: format, rows, bytes, seconds, rows_per_s, and the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, MutableMapping
from pathlib import Path
from typing import Any

import httpx

ZONES = (
    "Europe/Moscow",
    "Europe/Kaliningrad",
    "Europe/Samara",
    "Asia/Yekaterinburg",
    "Asia/Omsk",
    "Asia/Novosibirsk",
    "Asia/Krasnoyarsk",
    "Asia/Irkutsk",
    "Asia/Yakutsk",
    "Asia/Vladivostok",
    "Asia/Magadan",
    "Asia/Kamchatka",
    "UTC",
)
TAGS = ("", "vip", "new", "churned", "b2b", 'quoted "tag", with comma', "retail")
FIRST_PHONE = {"csv": 79_000_000_000, "ndjson": 79_500_000_000}
CONTENT_TYPES = {"csv": "text/csv", "ndjson": "application/x-ndjson"}
CHUNK = 1 << 20
STRIDE = 7_919  # a prime: i * STRIDE mod n visits every phone once, in a scattered order


def rows_of(count: int, first_phone: int, suffix: str = "") -> list[tuple[str, str, str, str]]:
    """(phone, timezone, tag, operator_code or "") for ``count`` distinct phones; ``suffix``
    is appended to every tag (a changed copy of the same clients)."""
    rows = []
    for i in range(count):
        phone = str(first_phone + (i * STRIDE) % count)
        code = "" if i % 4 else f"{900 + i % 99}"
        rows.append((phone, ZONES[i % len(ZONES)], TAGS[i % len(TAGS)] + suffix, code))
    return rows


def write_csv(path: Path, count: int, first_phone: int, suffix: str = "") -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("phone,timezone,tag,operator_code\n")
        for start in range(0, count, 100_000):
            block = rows_of(min(100_000, count - start), first_phone + start, suffix)
            out.write("".join(f"{p},{z},{_csv_cell(t)},{c}\n" for p, z, t, c in block))


def _csv_cell(value: str) -> str:
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def write_ndjson(path: Path, count: int, first_phone: int, suffix: str = "") -> None:
    with path.open("w", encoding="utf-8") as out:
        for start in range(0, count, 100_000):
            block = rows_of(min(100_000, count - start), first_phone + start, suffix)
            out.write(
                "".join(
                    json.dumps(
                        {"phone": p, "timezone": z, "tag": t} | ({"operator_code": c} if c else {})
                    )
                    + "\n"
                    for p, z, t, c in block
                )
            )


def make_files(
    directory: Path, count: int, formats: list[str], suffix: str = ""
) -> dict[str, Path]:
    files = {}
    for fmt in formats:
        path = directory / f"clients{suffix}.{fmt}"
        writer = write_csv if fmt == "csv" else write_ndjson
        writer(path, count, FIRST_PHONE[fmt], suffix)
        files[fmt] = path
    return files


async def read_chunks(path: Path, sent: list[int]) -> AsyncIterator[bytes]:
    """The file in chunks (a streamed, chunked upload); ``sent[0]`` counts the bytes."""
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            sent[0] += len(chunk)
            yield chunk


async def post_file(
    api_url: str, token: str, fmt: str, path: Path, rows: int, on_duplicate: str
) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=600
    ) as client:
        sent = [0]
        started = time.perf_counter()
        response = await client.post(
            "/api/v1/clients/import",
            params={"on_duplicate": on_duplicate},
            content=read_chunks(path, sent),
            headers={"Content-Type": CONTENT_TYPES[fmt]},
        )
        seconds = time.perf_counter() - started
    try:
        answer: Any = response.json()
    except ValueError:
        answer = response.text[:500]
    if isinstance(answer, dict) and "errors" in answer:
        answer["errors"] = answer["errors"][:5]
    return {
        "format": fmt,
        "rows": rows,
        "bytes": sent[0],
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "status": response.status_code,
        "answer": answer,
    }


async def run_against(args: argparse.Namespace, files: dict[str, Path]) -> int:
    failed = 0
    for fmt, path in files.items():
        line = await post_file(args.api_url, args.token, fmt, path, args.rows, args.on_duplicate)
        print(json.dumps(line), flush=True)
        failed += line["status"] != 200
    return 1 if failed else 0


async def run_self_contained(
    args: argparse.Namespace,
    files: dict[str, Path],
    changed: dict[str, Path],
    database_url: str,
) -> int:
    import uvicorn
    from pydantic import SecretStr
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from herald_api.main import create_app
    from herald_api.settings import ApiSettings
    from herald_common.settings import to_sqlalchemy_url
    from herald_devstack.probes import free_port

    token = secrets.token_urlsafe(32)  # the API refuses a token shorter than 32 characters
    port = free_port()
    settings = ApiSettings(
        database_url=database_url,
        amqp_url="amqp://guest:guest@127.0.0.1:1/",  # nobody: the API serves without a broker
        api_token=SecretStr(token),
        api_port=port,
        log_level="ERROR",
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    serving = asyncio.create_task(server.serve())
    engine = create_async_engine(to_sqlalchemy_url(database_url))
    failed = 0
    try:
        async with asyncio.timeout(30):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, no event
                await asyncio.sleep(0.05)
        for fmt, path in files.items():
            async with engine.begin() as conn:
                await conn.execute(text("TRUNCATE client RESTART IDENTITY CASCADE"))
            runs = [("new", path)]
            if args.again:
                runs += [("same", path), ("changed", changed[fmt])]
            for run, file in runs:
                async with engine.begin() as conn:
                    await conn.execute(text("CHECKPOINT"))  # each run starts from a clean slate
                line = await post_file(
                    f"http://127.0.0.1:{port}", token, fmt, file, args.rows, args.on_duplicate
                )
                async with engine.connect() as conn:
                    count = await conn.scalar(text("SELECT count(*) FROM client"))
                server_side = IMPORT_LINES.pop() if IMPORT_LINES else {}
                phases = ("duration_ms", "copy_ms", "check_ms", "write_ms")
                line["server"] = {key: server_side.get(key) for key in phases}
                print(
                    json.dumps(
                        {"run": run, **line, "clients_in_db": count, "durable": args.durable}
                    ),
                    flush=True,
                )
                failed += line["status"] != 200
    finally:
        await engine.dispose()
        server.should_exit = True
        await serving
    return 1 if failed else 0


IMPORT_LINES: list[dict[str, Any]] = []  # the API's clients_imported lines, in order
NOISE = frozenset({"broker_unavailable", "broker_connected"})


def quiet_api_logs() -> None:
    """The API's lines to stderr, except its clients_imported lines (kept for the results),
    routine lines and the absent broker's complaints."""
    import structlog

    def keep_imports(
        _: Any, level: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if event.get("event") == "clients_imported":
            IMPORT_LINES.append(dict(event))
            raise structlog.DropEvent
        if level in ("debug", "info") or event.get("event") in NOISE:
            raise structlog.DropEvent
        return event

    processors = structlog.get_config()["processors"]
    structlog.configure(
        processors=[*processors[:-1], keep_imports, processors[-1]],
        logger_factory=structlog.BytesLoggerFactory(file=sys.stderr.buffer),
    )
    # aiormq complains about the absent broker through the standard library.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    logging.getLogger().handlers[0].setStream(sys.stderr)  # type: ignore[attr-defined]


def run_loop(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Under uvloop when installed, as ``herald-api`` runs (uvicorn's loop="auto")."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


def self_contained(
    args: argparse.Namespace, files: dict[str, Path], changed: dict[str, Path]
) -> int:
    from herald_common.logs import configure_logging
    from herald_common.migrate import upgrade
    from herald_devstack.postgres import PostgresServer

    configure_logging("api", "bench", "INFO")
    quiet_api_logs()
    base_dir = Path(tempfile.mkdtemp(prefix="herald-bench-pg-"))
    server = PostgresServer(base_dir, durable=args.durable)
    try:
        server.start()
        server.create_database("herald")
        upgrade(server.url("herald"))
        url = server.url("herald")
        return run_loop(lambda: run_self_contained(args, files, changed, url))
    finally:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--api-url", help="a running API, e.g. http://127.0.0.1:8000")
    target.add_argument(
        "--self-contained", action="store_true", help="start PostgreSQL and the API here"
    )
    parser.add_argument("--token", help="HERALD_API_TOKEN of the running API")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--formats", default="csv,ndjson", help="comma-separated: csv, ndjson (default both)"
    )
    parser.add_argument("--on-duplicate", default="update", choices=["update", "skip", "reject"])
    parser.add_argument(
        "--durable",
        action="store_true",
        help="self-contained: fsync and synchronous_commit on, as in production",
    )
    parser.add_argument(
        "--again",
        action="store_true",
        help="self-contained: import each file again (all rows equal), then a copy with every "
        "tag changed (all rows updated with on_duplicate=update)",
    )
    args = parser.parse_args(argv)
    if args.api_url and not args.token:
        parser.error("--api-url needs --token")
    if args.again and not args.self_contained:
        parser.error("--again goes with --self-contained")
    formats = [fmt.strip() for fmt in args.formats.split(",") if fmt.strip()]
    if not formats or set(formats) - set(CONTENT_TYPES):
        parser.error("--formats takes csv and/or ndjson")
    with tempfile.TemporaryDirectory(prefix="herald-bench-import-") as directory:
        started = time.perf_counter()
        files = make_files(Path(directory), args.rows, formats)
        changed = make_files(Path(directory), args.rows, formats, "2") if args.again else {}
        print(
            f"generated {args.rows} rows per file in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        if args.self_contained:
            return self_contained(args, files, changed)
        return run_loop(lambda: run_against(args, files))


if __name__ == "__main__":
    raise SystemExit(main())
