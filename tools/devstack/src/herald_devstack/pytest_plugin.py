"""pytest fixtures: session PostgreSQL and RabbitMQ, fresh databases and vhosts, process groups.

Servers start lazily, the first time a test asks for them, and stop at the end of the session.
Where they come from:
- HERALD_TEST_DATABASE_URL / HERALD_TEST_AMQP_URL (+ HERALD_TEST_RABBITMQ_MANAGEMENT_URL, default
  http://HOST:15672): external servers, used as they are;
- otherwise local binaries (PostgreSQL 15, Debian's rabbitmq-server) in temporary directories;
- otherwise, or with HERALD_TEST_BACKEND=docker, testcontainers where a Docker engine answers.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from herald_devstack.errors import BinaryNotFoundError

if TYPE_CHECKING:
    # Loaded by every pytest run in the workspace: keep psycopg and httpx out of its import time.
    from herald_devstack.admin import BrokerAdmin, DatabaseAdmin
    from herald_devstack.processes import ProcessGroup


def _use_docker(find_local_binary: Callable[[], Path]) -> bool:
    backend = os.environ.get("HERALD_TEST_BACKEND", "auto")
    if backend not in ("auto", "local", "docker"):
        raise pytest.UsageError(f"HERALD_TEST_BACKEND must be auto, local or docker: {backend!r}")
    if backend != "auto":
        return backend == "docker"
    try:
        find_local_binary()
    except BinaryNotFoundError:
        from herald_devstack.containers import docker_available

        return docker_available()
    return False


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[DatabaseAdmin]:
    """A PostgreSQL for the whole session (user herald, fsync off when we started it)."""
    from herald_devstack.admin import ExternalPostgres
    from herald_devstack.postgres import PostgresServer, find_pg_bindir

    external = os.environ.get("HERALD_TEST_DATABASE_URL")
    if external:
        yield ExternalPostgres(external)
        return
    if _use_docker(find_pg_bindir):
        from herald_devstack.containers import start_postgres_container

        admin, remove = start_postgres_container()
        try:
            yield admin
        finally:
            remove()
        return
    # Short path under /tmp: its parents are traversable by the postgres user (pytest's own
    # tmp_path root is mode 0700) and the unix socket path stays under 108 bytes.
    with tempfile.TemporaryDirectory(prefix="herald-pg-", ignore_cleanup_errors=True) as base_dir:
        server = PostgresServer(Path(base_dir), durable=False)
        try:
            server.start()
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[BrokerAdmin]:
    """A RabbitMQ for the whole session (guest/guest; management API at .management_url)."""
    from herald_devstack.admin import ExternalRabbitMQ
    from herald_devstack.rabbitmq import RabbitMQServer, find_rabbitmq_server

    external = os.environ.get("HERALD_TEST_AMQP_URL")
    if external:
        yield ExternalRabbitMQ(external, os.environ.get("HERALD_TEST_RABBITMQ_MANAGEMENT_URL"))
        return
    if _use_docker(find_rabbitmq_server):
        from herald_devstack.containers import start_rabbitmq_container

        broker, remove = start_rabbitmq_container()
        try:
            yield broker
        finally:
            remove()
        return
    with tempfile.TemporaryDirectory(prefix="herald-rmq-", ignore_cleanup_errors=True) as base_dir:
        server = RabbitMQServer(Path(base_dir))
        try:
            server.start()
            yield server
        finally:
            server.stop(graceful=False)


@pytest.fixture
def fresh_database(postgres_server: DatabaseAdmin) -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    postgres_server.create_database(name)
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def fresh_vhost(rabbitmq_server: BrokerAdmin) -> Iterator[str]:
    """The AMQP URL of a new, empty vhost, deleted (with its queues) after the test."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    rabbitmq_server.create_vhost(name)
    try:
        yield rabbitmq_server.url(name)
    finally:
        rabbitmq_server.delete_vhost(name)


@pytest.fixture
def process_group(tmp_path: Path) -> Iterator[ProcessGroup]:
    """A ProcessGroup logging to tmp_path/processes; whatever still runs is stopped after."""
    from herald_devstack.processes import ProcessGroup

    group = ProcessGroup(log_dir=tmp_path / "processes")
    try:
        yield group
    finally:
        group.terminate_all(timeout=5)
