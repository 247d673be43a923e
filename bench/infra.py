"""PostgreSQL and RabbitMQ of the benchmark's own, the machine's description, broker probes."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import psycopg

from herald_devstack.errors import ServerStartError
from herald_devstack.postgres import PostgresServer
from herald_devstack.rabbitmq import RabbitMQServer


@dataclass
class Infra:
    base_dir: Path
    postgres: PostgresServer
    rabbitmq: RabbitMQServer

    @property
    def database_url(self) -> str:
        return self.postgres.url("herald")

    @property
    def amqp_url(self) -> str:
        return self.rabbitmq.url("/")

    def stop(self) -> None:
        errors: list[str] = []
        for stop in (self.rabbitmq.stop, self.postgres.stop):
            try:
                stop()
            except Exception as error:  # keep stopping the other one
                errors.append(repr(error))
        if errors:
            print(f"bench: stopping servers: {'; '.join(errors)}", file=sys.stderr)


def start_infra(base_dir: Path, attempts: int = 3) -> Infra:
    """RabbitMQ boots (5-10 s) while PostgreSQL starts; both in ``base_dir``.

    Ports are picked free just before the servers bind them; when another run on the machine
    takes one in between, the start fails, and is tried again with new ports."""
    for attempt in range(1, attempts + 1):
        rabbitmq = RabbitMQServer(base_dir / f"rabbitmq-{attempt}")
        postgres = PostgresServer(base_dir / f"pg-{attempt}", durable=True)
        rabbitmq.launch()
        try:
            postgres.start()
            postgres.create_database("herald")
            rabbitmq.wait_ready()
        except ServerStartError as error:
            rabbitmq.stop(graceful=False)
            postgres.stop()
            if attempt == attempts:
                raise
            first = str(error).splitlines()[0]
            print(f"bench: servers did not start ({first}); again", file=sys.stderr)
            continue
        except BaseException:
            rabbitmq.stop(graceful=False)
            postgres.stop()
            raise
        return Infra(base_dir, postgres, rabbitmq)
    raise AssertionError("unreachable")


def rabbitmq_pids(infra: Infra) -> list[int]:
    """The node's processes (beam.smp and its helpers) and its epmd."""
    from herald_devstack.processes import find_marked_processes

    return find_marked_processes(str(infra.rabbitmq.base_dir))


def purge_queue(infra: Infra, queue: str) -> int:
    """Drop every message of ``queue`` (through the management API); returns how many."""
    status, body = infra.rabbitmq.api.request(
        "DELETE", f"/api/queues/{quote('/', safe='')}/{quote(queue, safe='')}/contents"
    )
    if status not in (200, 204):
        raise RuntimeError(f"purging {queue} failed: {status} {body}")
    return queue_depth(infra.amqp_url, queue)


async def _queue_depth(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        count: int = declared.declaration_result.message_count or 0
        return count


def queue_depth(amqp_url: str, queue: str) -> int:
    return asyncio.run(_queue_depth(amqp_url, queue))


def _command_output(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_description(infra: Infra) -> dict[str, Any]:
    import aiohttp

    meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
    with psycopg.connect(infra.database_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        pg_version = str(row[0]) if row else "?"
    status, overview = infra.rabbitmq.api.request("GET", "/api/overview")
    rabbit = overview if status == 200 and isinstance(overview, dict) else {}
    cpu_model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    os_name = ""
    if Path("/etc/os-release").exists():
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(int(meminfo[1]) / 1024 / 1024, 1),
        "os": os_name or platform.platform(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "rabbitmq": rabbit.get("rabbitmq_version", "?"),
        "erlang": rabbit.get("erlang_version", "?"),
        "aiohttp": aiohttp.__version__,
        "uv": _command_output(["uv", "--version"]),
    }


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()
