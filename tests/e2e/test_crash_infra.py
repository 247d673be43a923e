"""Rule 6 for the infrastructure: RabbitMQ, then PostgreSQL, restarted mid-mailing.

Herald runs against a RabbitMQ and a PostgreSQL of this module's own (started from the local
binaries in directories under /tmp, every port chosen once and kept, so each restarts on the same
ports with its data; PostgreSQL is durable since it is restarted). Nothing of Herald is restarted:
the api, the scheduler and the senders must reconnect by themselves.

A mailing of 3,000 clients against a provider answering in 50 ms, with 2 senders of 20 provider
slots each, lasts several seconds; the restart comes once 600 messages are sent. After it: every
message ends in exactly one terminal status (all ``sent``), nothing reached the provider at or
after ends_at, the processes are the ones started before the restart (they reconnected by
themselves), /readyz answers 200 again, and the duplicates the provider accepted are at most the
provider calls in flight just before the restart: the senders' ``herald_provider_calls_in_flight``
(HTTP calls) and the messages ``sending`` (claimed, outcome not yet committed: the architecture's
definition of in flight) are both read then, and the bound is the larger. Measured numbers are
printed for the docs.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest

from herald_devstack.postgres import PostgresServer
from herald_devstack.probes import free_port
from herald_devstack.rabbitmq import RabbitMQServer
from herald_testing.stack import HeraldStack, bulk_clients, db_status_counts, wait_until

from .conftest import _stack

pytestmark = pytest.mark.e2e

CLIENTS = 3_000
SLOTS = 20
SENDERS = ("sender-1", "sender-2")
TEST_BUDGET_S = 120
ENV = {"HERALD_SENDER_CONCURRENCY": str(SLOTS)}


@pytest.fixture(scope="module")
def own_servers() -> Iterator[tuple[PostgresServer, RabbitMQServer]]:
    # Separate mkdtemp directories: PostgreSQL's is handed to the postgres user when we are root.
    pg_dir = Path(tempfile.mkdtemp(prefix="herald-crash-pg-"))
    rmq_dir = Path(tempfile.mkdtemp(prefix="herald-crash-rmq-"))
    postgres = PostgresServer(pg_dir, port=free_port(), durable=True)
    rabbitmq = RabbitMQServer(rmq_dir)  # picks its five ports now and keeps them
    try:
        rabbitmq.launch()
        postgres.start()
        rabbitmq.wait_ready()
        yield postgres, rabbitmq
    finally:
        rabbitmq.stop(graceful=False)
        postgres.stop()
        shutil.rmtree(pg_dir, ignore_errors=True)
        shutil.rmtree(rmq_dir, ignore_errors=True)


def calls_in_flight(stack: HeraldStack) -> int:
    return round(sum(stack.scrape(name)["herald_provider_calls_in_flight"] for name in SENDERS))


def ready_status(stack: HeraldStack) -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{stack.api_port}/readyz", timeout=3).status_code
    except httpx.HTTPError:
        return None


def deliver_consumers(stack: HeraldStack, rabbitmq: RabbitMQServer) -> int:
    vhost = quote(unquote(urlsplit(stack.amqp_url).path[1:]), safe="")
    status, body = rabbitmq.api.request("GET", f"/api/queues/{vhost}/herald.deliver")
    return int(body.get("consumers", 0)) if status == 200 else 0


@dataclass
class Restart:
    """What happened around one restart of a server under a running mailing."""

    stack: HeraldStack
    mailing: dict[str, Any]
    started: float  # monotonic; the scenario and its test share TEST_BUDGET_S from here
    in_flight: int  # herald_provider_calls_in_flight of both senders, just before the stop
    claimed: int  # messages `sending` just before the stop: slots busy from claim to outcome
    sent_before: int
    stop_s: float  # how long the stop took
    down_s: float  # from the stop's beginning until the server was back
    start_s: float
    ready_while_down: list[int | None]  # /readyz answers, polled while the server was down
    stop_wall: float
    up_wall: float
    up_at: float

    def remaining(self) -> float:
        return max(5.0, TEST_BUDGET_S - (time.monotonic() - self.started))


def restart_mid_mailing(
    stack: HeraldStack,
    tag: str,
    first_phone: int,
    stop: Callable[[], None],
    start: Callable[[], None],
    running: Callable[[], bool],
) -> Restart:
    started = time.monotonic()
    bulk_clients(stack, first_phone, CLIENTS, tag)
    stack.faults(latency_ms=50)
    mailing = stack.create_mailing(filter={"tags": [tag]})
    wait_until(lambda: stack.sim_stats()["accepted"] >= 600, 60, 0.05, "mailing under way")

    in_flight = calls_in_flight(stack)
    claimed = db_status_counts(stack, mailing["id"]).get("sending", 0)
    sent_before = stack.sim_stats()["accepted"]
    stop_began, stop_wall = time.monotonic(), time.time()
    ready_while_down: list[int | None] = []
    try:
        stop()
        stopped = time.monotonic()
        while time.monotonic() - stopped < 2:
            ready_while_down.append(ready_status(stack))
            time.sleep(0.2)
        start_began = time.monotonic()
        start()
    finally:
        if not running():
            start()
    up_at = time.monotonic()
    return Restart(
        stack=stack,
        mailing=mailing,
        started=started,
        in_flight=in_flight,
        claimed=claimed,
        sent_before=sent_before,
        stop_s=stopped - stop_began,
        down_s=up_at - stop_began,
        start_s=up_at - start_began,
        ready_while_down=ready_while_down,
        stop_wall=stop_wall,
        up_wall=time.time(),
        up_at=up_at,
    )


def own_stack(
    servers: tuple[PostgresServer, RabbitMQServer], log_dir: Path
) -> Iterator[HeraldStack]:
    postgres, rabbitmq = servers
    generator = _stack(postgres, rabbitmq, log_dir, len(SENDERS), ENV, metrics=True)
    try:
        yield next(generator)
    finally:
        # A failed scenario may have left a server down; the clean-up needs both.
        if not rabbitmq.is_running():
            rabbitmq.start()
        if not postgres.is_running():
            postgres.start()
        for _ in generator:
            pass


def check_outcome(restart: Restart, name: str) -> int:
    """The invariants after the restart; prints and returns the duplicates the provider accepted.

    The bound: the architecture's "in flight" is a slot, held from the claim to the committed
    outcome (the `sending` rows), of which the HTTP calls (the gauge) are a part; both are read
    just before the stop, a few milliseconds apart, so the larger of the two is the bound.
    """
    stack, mailing = restart.stack, restart.mailing
    stats = stack.wait_settled(mailing["id"], CLIENTS, timeout=restart.remaining())
    by = stats["by_status"]
    assert stats["total"] == CLIENTS
    assert by["sent"] == CLIENTS, by
    counts = db_status_counts(stack, mailing["id"])
    assert counts == {"sent": CLIENTS}, counts
    sim = stack.sim_stats()
    assert sim["distinct_accepted"] == CLIENTS
    ends_at = datetime.fromisoformat(mailing["ends_at"])
    requests = stack.sim_requests()
    assert all(datetime.fromisoformat(r["received_at"]) < ends_at for r in requests)
    received = [r["received_ts"] for r in requests]
    while_down = sum(1 for ts in received if restart.stop_wall <= ts < restart.up_wall)
    resumed = min(ts for ts in received if ts >= restart.up_wall) - restart.up_wall
    duplicates: int = sim["duplicates_accepted_count"]
    print(
        f"[{name}] duplicates accepted={duplicates} (ids {sim['duplicates_accepted'][:20]}); "
        f"just before the stop: provider calls in flight={restart.in_flight}, messages claimed "
        f"(sending)={restart.claimed}, sent={restart.sent_before}; provider requests="
        f"{sim['requests']} for {sim['distinct_ids']} ids; stop took {restart.stop_s:.1f} s, "
        f"down {restart.down_s:.1f} s, start took {restart.start_s:.1f} s; provider calls "
        f"while down={while_down}; /readyz while down={Counter(restart.ready_while_down)}; "
        f"provider calls resumed {resumed:.1f} s after the start; mailing settled "
        f"{time.monotonic() - restart.up_at:.1f} s after it"
    )
    assert not [p.name for p in stack.group.exited()], "a Herald process died"
    wait_until(lambda: ready_status(stack) == 200, restart.remaining(), what="api ready")
    assert duplicates <= max(restart.in_flight, restart.claimed)
    return duplicates


@pytest.fixture(scope="class")
def rabbitmq_restart(
    own_servers: tuple[PostgresServer, RabbitMQServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Restart]:
    _, rabbitmq = own_servers
    for stack in own_stack(own_servers, tmp_path_factory.mktemp("rabbitmq-restart")):
        yield restart_mid_mailing(
            stack,
            "crash-rmq",
            79_700_000_000,
            rabbitmq.stop,  # graceful: SIGTERM, the node closes its connections
            rabbitmq.start,
            rabbitmq.is_running,
        )


@pytest.fixture(scope="class")
def postgresql_restart(
    own_servers: tuple[PostgresServer, RabbitMQServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Restart]:
    postgres, _ = own_servers
    for stack in own_stack(own_servers, tmp_path_factory.mktemp("postgresql-restart")):
        yield restart_mid_mailing(
            stack,
            "crash-pg",
            79_800_000_000,
            postgres.stop,  # fast shutdown: clients are disconnected
            postgres.start,
            postgres.is_running,
        )


class TestRabbitMQRestart:
    def test_every_message_ends_once_and_the_services_reconnect(
        self, rabbitmq_restart: Restart, own_servers: tuple[PostgresServer, RabbitMQServer]
    ) -> None:
        _, rabbitmq = own_servers
        restart = rabbitmq_restart
        stack = restart.stack
        wait_until(lambda: deliver_consumers(stack, rabbitmq) >= len(SENDERS), restart.remaining())
        back = time.monotonic() - restart.up_at
        print(f"[rabbitmq restart] both senders consuming {back:.1f} s after the start")
        check_outcome(restart, "rabbitmq restart")

    def test_readyz_reports_the_broker_down(self, rabbitmq_restart: Restart) -> None:
        statuses = rabbitmq_restart.ready_while_down
        assert statuses
        assert all(status == 503 for status in statuses), statuses

    def test_no_unhandled_errors_in_the_senders(self, rabbitmq_restart: Restart) -> None:
        for name in SENDERS:
            log_path = rabbitmq_restart.stack.group[name].log_path
            assert log_path is not None
            lost = [
                line
                for line in log_path.read_text().splitlines()
                if "Task exception was never retrieved" in line
            ]
            assert not lost, f"{name}: {len(lost)} tasks died unhandled, first: {lost[0][:300]}"


class TestPostgreSQLRestart:
    def test_every_message_ends_once_and_the_services_reconnect(
        self, postgresql_restart: Restart
    ) -> None:
        check_outcome(postgresql_restart, "postgresql restart")

    def test_readyz_reports_the_database_down(self, postgresql_restart: Restart) -> None:
        statuses = postgresql_restart.ready_while_down
        assert statuses
        assert all(status == 503 for status in statuses), statuses
