"""Optional testcontainers path, used by the test fixtures only where a Docker engine answers.

testcontainers is an optional extra (`herald-devstack[docker]`), so it is imported dynamically.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import psycopg

from herald_devstack.admin import ExternalPostgres, ExternalRabbitMQ
from herald_devstack.errors import ServerStartError
from herald_devstack.probes import port_accepts

POSTGRES_IMAGE = "postgres:15-alpine"
RABBITMQ_IMAGE = "rabbitmq:3.10-management-alpine"


def docker_available() -> bool:
    """True when testcontainers is installed and `docker info` succeeds."""
    if importlib.util.find_spec("testcontainers") is None or shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _container(image: str) -> Any:
    module = importlib.import_module("testcontainers.core.container")
    return module.DockerContainer(image)


def start_postgres_container(timeout: float = 60.0) -> tuple[ExternalPostgres, Callable[[], None]]:
    """A throwaway PostgreSQL container; returns its admin and a function that removes it."""
    container = (
        _container(POSTGRES_IMAGE)
        .with_env("POSTGRES_USER", "herald")
        .with_env("POSTGRES_PASSWORD", "herald")
        .with_env("POSTGRES_DB", "herald")
        .with_command("postgres -c fsync=off -c max_connections=200 -c shared_buffers=256MB")
        .with_exposed_ports(5432)
    )
    container.start()
    host = container.get_container_host_ip()
    url = f"postgresql://herald:herald@{host}:{container.get_exposed_port(5432)}/postgres"
    deadline = time.monotonic() + timeout
    while True:
        # The image's init runs a socket-only server first; TCP works only on the final one.
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                container.stop()
                raise ServerStartError(
                    f"PostgreSQL container not ready within {timeout} s"
                ) from None
            time.sleep(0.3)
    return ExternalPostgres(url), container.stop


def start_rabbitmq_container(timeout: float = 90.0) -> tuple[ExternalRabbitMQ, Callable[[], None]]:
    """A throwaway RabbitMQ container (guest may log in remotely in the official image)."""
    container = _container(RABBITMQ_IMAGE).with_exposed_ports(5672, 15672)
    container.start()
    host = container.get_container_host_ip()
    amqp_port = int(container.get_exposed_port(5672))
    broker = ExternalRabbitMQ(
        f"amqp://guest:guest@{host}:{amqp_port}/%2F",
        f"http://{host}:{container.get_exposed_port(15672)}",
    )
    deadline = time.monotonic() + timeout
    while not (port_accepts(amqp_port, host) and broker.api.is_alive()):
        if time.monotonic() > deadline:
            container.stop()
            raise ServerStartError(f"RabbitMQ container not ready within {timeout} s")
        time.sleep(0.3)
    return broker, container.stop
