"""Jobs survive the broker: Herald on a 3-node RabbitMQ cluster, one node stopped mid-mailing,
and a broker that blocks publishers (memory alarm) mid-mailing.

The cluster is this module's own (three nodes from the Debian package, one epmd, one cookie,
joined with rabbitmqctl). HERALD_AMQP_URL lists the three nodes; every service connects to the
first that answers and fails over to another when its node goes down. The delivery and retry
queues are quorum queues replicated on the three nodes, so a job survives its node.

After a node stops: every message ends ``sent`` exactly once in the database, the provider saw
every client, nothing was sent at or after ends_at, no Herald process died, and the duplicates
the provider accepted are at most the provider calls in flight just before the stop (as in
test_crash_infra.py: the larger of the senders' in-flight gauge and the messages ``sending``).
Measured figures are printed.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import httpx
import pytest

from herald_common.rules.backoff import retry_tiers
from herald_common.topology import declare_topology
from herald_devstack.admin import DatabaseAdmin
from herald_devstack.processes import ProcessGroup
from herald_devstack.rabbitmq import RabbitMQServer
from herald_devstack.rabbitmq_cluster import RabbitMQCluster
from herald_testing.stack import (
    FAST_ENV,
    HeraldStack,
    bulk_clients,
    db_status_counts,
    wait_until,
)

pytestmark = pytest.mark.e2e

SLOTS = 20
SENDERS = ("sender-1", "sender-2")
ENV = {
    "HERALD_SENDER_CONCURRENCY": str(SLOTS),
    # Short, so that the alarm test sees publishes fail and the services carry on within seconds.
    "HERALD_PUBLISH_TIMEOUT_S": "1",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitMQCluster]:
    base_dir = Path(tempfile.mkdtemp(prefix="herald-cluster-"))
    cluster = RabbitMQCluster(base_dir, size=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


def cluster_stack(
    postgres: DatabaseAdmin,
    cluster: RabbitMQCluster,
    log_dir: Path,
    leaders_on: RabbitMQServer | None = None,
) -> Iterator[HeraldStack]:
    """Herald on the cluster; with ``leaders_on``, the queues are declared through that node
    first, so that their leaders live there (a quorum queue's leader starts on the node the
    declaring client is connected to) while the services connect to the first node."""
    name = uuid.uuid4().hex[:12]
    postgres.create_database(f"e2e_{name}")
    vhost = f"e2e-{name}"
    cluster.create_vhost(vhost)
    if leaders_on is not None:

        async def declare() -> None:
            connection = await aio_pika.connect(leaders_on.url(vhost))
            tiers = retry_tiers(
                int(FAST_ENV["HERALD_RETRY_BASE_MS"]), int(FAST_ENV["HERALD_RETRY_MAX_MS"])
            )
            await declare_topology(await connection.channel(), tiers)
            await connection.close()

        asyncio.run(declare())
    stack = HeraldStack(
        ProcessGroup(log_dir=log_dir), postgres.url(f"e2e_{name}"), cluster.url(vhost), ENV
    )
    try:
        stack.start_all(senders=len(SENDERS), metrics=True)
        yield stack
    finally:
        stack.close()
        for node in cluster.nodes:
            if not node.is_running():
                node.start()
        cluster.delete_vhost(vhost)
        postgres.drop_database(f"e2e_{name}")


def vhost_of(stack: HeraldStack) -> str:
    return quote(stack.amqp_url.split(",")[0].rsplit("/", 1)[1], safe="")


def connection_nodes(stack: HeraldStack, cluster: RabbitMQCluster) -> dict[str, str]:
    """{connection name: node} of the stack's connections."""
    status, body = cluster.api.request("GET", f"/api/vhosts/{vhost_of(stack)}/connections")
    assert status == 200, body
    return {item["client_properties"].get("connection_name", ""): item["node"] for item in body}


def queue_leader(stack: HeraldStack, cluster: RabbitMQCluster, queue: str) -> str:
    status, body = cluster.api.request("GET", f"/api/queues/{vhost_of(stack)}/{queue}")
    assert status == 200, body
    return str(body.get("leader") or body["node"])


def senders_node(stack: HeraldStack, cluster: RabbitMQCluster) -> str:
    """The node both senders are connected to (the first listed); the management API lists a
    connection some seconds after it opened (its statistics interval)."""

    def nodes() -> set[str] | None:
        found = {n: node for n, node in connection_nodes(stack, cluster).items() if "sender" in n}
        return set(found.values()) if len(found) == len(SENDERS) else None

    on = wait_until(nodes, 30, 0.5, "both senders' connections listed")
    assert len(on) == 1, on
    return on.pop()


def in_flight(stack: HeraldStack, mailing_id: int) -> tuple[int, int]:
    calls = round(sum(stack.scrape(n)["herald_provider_calls_in_flight"] for n in SENDERS))
    return calls, db_status_counts(stack, mailing_id).get("sending", 0)


def ready_status(stack: HeraldStack) -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{stack.api_port}/readyz", timeout=3).status_code
    except httpx.HTTPError:
        return None


def stop_node_mid_mailing(
    stack: HeraldStack,
    cluster: RabbitMQCluster,
    node: RabbitMQServer,
    clients: int,
    first_phone: int,
    label: str,
    budget_s: float,
) -> dict[str, Any]:
    began = time.monotonic()
    tag = f"cluster-{label}"
    bulk_clients(stack, first_phone, clients, tag)
    # 40 slots at 100 ms: ~400 messages a second at best, so that the mailing outlasts the
    # node's stop (a clean stop takes seconds; the node drops its connections first).
    stack.faults(latency_ms=100)
    mailing = stack.create_mailing(filter={"tags": [tag]})
    wait_until(lambda: stack.sim_stats()["accepted"] >= clients // 5, 60, 0.05, "mailing under way")
    calls, claimed = in_flight(stack, mailing["id"])
    sent_before = stack.sim_stats()["accepted"]
    stop_began = time.monotonic()
    cluster.stop_node(node)
    stopped = time.monotonic()
    sent_at_stop = stack.sim_stats()["accepted"]
    stats = stack.wait_settled(mailing["id"], clients, timeout=budget_s - (stopped - began))
    settled = time.monotonic()

    by = stats["by_status"]
    assert by["sent"] == clients, by
    assert db_status_counts(stack, mailing["id"]) == {"sent": clients}
    sim = stack.sim_stats()
    assert sim["distinct_accepted"] == clients
    ends_at = datetime.fromisoformat(mailing["ends_at"])
    assert all(datetime.fromisoformat(r["received_at"]) < ends_at for r in stack.sim_requests())
    assert not [p.name for p in stack.group.exited()], "a Herald process died"
    moved = connection_nodes(stack, cluster)
    assert node.node_name not in moved.values(), moved
    assert wait_until(lambda: ready_status(stack) == 200, 30, what="api ready")
    duplicates: int = sim["duplicates_accepted_count"]
    now_on = sorted(set(moved.values()))
    print(
        f"[{label}] stopped {node.node_name} with {sent_before} of {clients} sent, "
        f"{sent_at_stop} once the stop returned ({stopped - stop_began:.1f} s); duplicates "
        f"accepted={duplicates}, bound: provider calls in flight={calls}, messages "
        f"sending={claimed}; mailing settled {settled - stopped:.1f} s after the stop; "
        f"connections now on {now_on}"
    )
    assert duplicates <= max(calls, claimed)
    return {"duplicates": duplicates, "settle_s": settled - stopped}


@pytest.fixture(scope="module")
def stack(postgres_server: DatabaseAdmin, cluster: RabbitMQCluster) -> Iterator[HeraldStack]:
    log_dir = Path(tempfile.mkdtemp(prefix="herald-e2e-cluster-"))
    yield from cluster_stack(postgres_server, cluster, log_dir)


def test_a_broker_that_blocks_publishers_stalls_neither_the_api_nor_the_scheduler(
    stack: HeraldStack, cluster: RabbitMQCluster
) -> None:
    """A memory alarm (watermark near 0) blocks every publishing connection of the cluster.
    Meanwhile POST /mailings answers at once, the scheduler fans the mailing out and keeps
    sweeping (its publishes time out, the jobs stay in the outbox); once the alarm clears the
    relay publishes them and the mailing ends all sent."""
    stack.sim.post("/reset").raise_for_status()
    clients = 1_000
    bulk_clients(stack, 79_500_000_000, clients, "alarm")
    node = cluster.nodes[0]
    scheduler = stack.group["scheduler"]
    since = scheduler.line_count
    node.ctl("set_vm_memory_high_watermark", "0.0000001")
    try:
        wait_until(
            lambda: any(n.get("mem_alarm") for n in cluster.api.request("GET", "/api/nodes")[1]),
            30,
            what="memory alarm raised",
        )
        began = time.monotonic()
        mailing = stack.create_mailing(filter={"tags": ["alarm"]})
        answered_s = time.monotonic() - began
        # The fan-out goes on in the database; its publishes time out instead of hanging.
        wait_until(lambda: stack.stats(mailing["id"])["total"] == clients, 60, what="fan-out done")
        scheduler.wait_for_line("PublishTimeout", timeout=30, since=since)
        # The loop still turns: a housekeeping pass (its relay fails the same way) runs after.
        ticks = scheduler.line_count
        scheduler.wait_for_line("outbox_relay_failed", timeout=30, since=ticks)
        sent_during_alarm = stack.sim_stats()["accepted"]
        assert stack.api.get("/mailings", params={"limit": 1}).status_code == 200
    finally:
        node.ctl("set_vm_memory_high_watermark", "0.4")
    released = time.monotonic()
    stats = stack.wait_settled(mailing["id"], clients, timeout=90)
    print(
        f"[memory alarm] POST /mailings answered in {answered_s:.2f} s during the alarm; "
        f"provider calls during the alarm={sent_during_alarm}; mailing settled "
        f"{time.monotonic() - released:.1f} s after the alarm cleared"
    )
    assert answered_s < 2
    assert stats["by_status"]["sent"] == clients
    assert db_status_counts(stack, mailing["id"]) == {"sent": clients}
    assert not [p.name for p in stack.group.exited()], "a Herald process died"


def test_stopping_the_senders_node_loses_nothing(
    stack: HeraldStack, cluster: RabbitMQCluster
) -> None:
    stack.sim.post("/reset").raise_for_status()
    node = cluster.node_named(senders_node(stack, cluster))
    try:
        stop_node_mid_mailing(stack, cluster, node, 3_000, 79_510_000_000, "senders-node", 100)
    finally:
        if not node.is_running():
            cluster.start_node(node)
        cluster.wait_clustered()


@pytest.mark.slow
def test_stopping_the_queue_leaders_node_loses_nothing(
    postgres_server: DatabaseAdmin, cluster: RabbitMQCluster, tmp_path: Path
) -> None:
    """The leaders of the queues on another node than the services' connections: the quorum
    elects new leaders among the two left, the services' connections stay where they are."""
    leaders = cluster.nodes[1]
    for stack in cluster_stack(postgres_server, cluster, tmp_path / "logs", leaders_on=leaders):
        assert queue_leader(stack, cluster, "herald.deliver") == leaders.node_name
        assert senders_node(stack, cluster) != leaders.node_name
        stop_node_mid_mailing(stack, cluster, leaders, 5_000, 79_520_000_000, "leaders-node", 240)
        assert queue_leader(stack, cluster, "herald.deliver") != leaders.node_name


@pytest.mark.slow
def test_stopping_the_senders_node_of_a_long_mailing_loses_nothing(
    postgres_server: DatabaseAdmin, cluster: RabbitMQCluster, tmp_path: Path
) -> None:
    for stack in cluster_stack(postgres_server, cluster, tmp_path / "logs"):
        node = cluster.node_named(senders_node(stack, cluster))
        stop_node_mid_mailing(stack, cluster, node, 10_000, 79_530_000_000, "long", 300)
