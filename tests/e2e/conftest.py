"""End-to-end fixtures: Herald as real processes on a real PostgreSQL and RabbitMQ.

``shared_stack`` serves a whole module (tests reset the simulator and use their own tags);
``stack_factory`` gives a test its own stack, for crash tests that kill processes.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from herald_devstack.admin import BrokerAdmin, DatabaseAdmin
from herald_devstack.processes import ProcessGroup
from herald_testing.stack import HeraldStack

StackFactory = Callable[..., HeraldStack]


def _stack(
    postgres: DatabaseAdmin,
    rabbitmq: BrokerAdmin,
    log_dir: Path,
    senders: int,
    env: dict[str, str],
    metrics: bool = False,
) -> Iterator[HeraldStack]:
    name = uuid.uuid4().hex[:12]
    postgres.create_database(f"e2e_{name}")
    rabbitmq.create_vhost(f"e2e-{name}")
    group = ProcessGroup(log_dir=log_dir)
    stack = HeraldStack(
        group, postgres.url(f"e2e_{name}"), rabbitmq.url(f"e2e-{name}"), extra_env=env
    )
    try:
        stack.start_all(senders=senders, metrics=metrics)
        yield stack
    finally:
        stack.close()
        rabbitmq.delete_vhost(f"e2e-{name}")
        postgres.drop_database(f"e2e_{name}")


@pytest.fixture(scope="module")
def shared_stack(
    postgres_server: DatabaseAdmin, rabbitmq_server: BrokerAdmin
) -> Iterator[HeraldStack]:
    log_dir = Path(tempfile.mkdtemp(prefix="herald-e2e-"))
    yield from _stack(postgres_server, rabbitmq_server, log_dir, 2, {})


@pytest.fixture(scope="module")
def narrow_stack(
    postgres_server: DatabaseAdmin, rabbitmq_server: BrokerAdmin
) -> Iterator[HeraldStack]:
    """Five provider slots per sender: a slow provider then keeps a mailing going for seconds."""
    log_dir = Path(tempfile.mkdtemp(prefix="herald-e2e-"))
    yield from _stack(
        postgres_server, rabbitmq_server, log_dir, 2, {"HERALD_SENDER_CONCURRENCY": "5"}
    )


@pytest.fixture
def slow_stack(narrow_stack: HeraldStack) -> HeraldStack:
    narrow_stack.sim.post("/reset").raise_for_status()
    return narrow_stack


@pytest.fixture
def stack(shared_stack: HeraldStack) -> HeraldStack:
    shared_stack.sim.post("/reset").raise_for_status()
    return shared_stack


@pytest.fixture
def stack_factory(
    postgres_server: DatabaseAdmin, rabbitmq_server: BrokerAdmin, tmp_path: Path
) -> Iterator[StackFactory]:
    generators: list[Iterator[HeraldStack]] = []

    def make(senders: int = 2, **env: str) -> HeraldStack:
        generator = _stack(postgres_server, rabbitmq_server, tmp_path / "logs", senders, env)
        generators.append(generator)
        return next(generator)

    yield make
    for generator in generators:
        for _ in generator:  # runs the clean-up after the yield
            pass


@pytest.fixture(scope="module")
def stack_factory_module(
    postgres_server: DatabaseAdmin, rabbitmq_server: BrokerAdmin
) -> Iterator[StackFactory]:
    """Like ``stack_factory``, for a stack that several tests of a module inspect."""
    log_dir = Path(tempfile.mkdtemp(prefix="herald-e2e-"))
    generators: list[Iterator[HeraldStack]] = []

    def make(senders: int = 2, metrics: bool = False, **env: str) -> HeraldStack:
        generator = _stack(postgres_server, rabbitmq_server, log_dir, senders, env, metrics)
        generators.append(generator)
        return next(generator)

    yield make
    for generator in generators:
        for _ in generator:
            pass
