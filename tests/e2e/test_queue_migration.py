"""An installation of the previous Herald, with a mailing's jobs waiting in its classic queues,
moved to this version with herald-migrate-queues: the new services refuse the old queues, the
command moves the jobs (all of them are in the new queue before any service starts), and the
mailing then ends all sent, with no duplicate at the provider."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import aio_pika
import pytest

from herald_common.broker import connect
from herald_common.rules.backoff import retry_tiers
from herald_common.topology import (
    DELIVER_QUEUE,
    DELIVER_ROUTING_KEY,
    JOBS_EXCHANGE,
    QueueLimits,
    queue_specs,
)
from herald_devstack.processes import ProcessExitedError
from herald_testing.old_topology import declare_classic_topology
from herald_testing.stack import HeraldStack, bulk_clients, db_status_counts, wait_until

from .conftest import StackFactory

pytestmark = pytest.mark.e2e

CLIENTS = 1_000


def tiers(stack: HeraldStack) -> list[int]:
    return retry_tiers(
        int(stack.env["HERALD_RETRY_BASE_MS"]), int(stack.env["HERALD_RETRY_MAX_MS"])
    )


async def deliver_depth(stack: HeraldStack) -> int:
    connection = await aio_pika.connect(stack.amqp_url)
    channel = await connection.channel()
    underlay = await channel.get_underlay_channel()
    result = await underlay.queue_declare(DELIVER_QUEUE, passive=True)
    await connection.close()
    return result.message_count or 0


async def make_it_an_old_installation(stack: HeraldStack) -> list[bytes]:
    """Take the jobs out, replace the quorum queues by the previous version's classic ones,
    and put the jobs back: what an installation of the previous Herald holds mid-mailing."""
    connection = await connect(stack.amqp_url, "test")
    channel = await connection.channel(publisher_confirms=True)
    deliver = await channel.get_queue(DELIVER_QUEUE)
    jobs = []
    while message := await deliver.get(no_ack=True, fail=False):
        jobs.append(message.body)
    for spec in queue_specs(tiers(stack), QueueLimits()):
        await channel.queue_delete(spec.name)
    # A new channel: RabbitMQ 3.10 crashes a channel (INTERNAL_ERROR) that publishes to a
    # classic queue of the name of a quorum queue it used before the deletion.
    await channel.close()
    channel = await connection.channel(publisher_confirms=True)
    await declare_classic_topology(channel, tiers(stack))
    exchange = await channel.get_exchange(JOBS_EXCHANGE)
    for body in jobs:
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await exchange.publish(message, DELIVER_ROUTING_KEY, mandatory=True)
    await connection.close()
    return jobs


def test_jobs_in_classic_queues_survive_the_move_to_quorum_queues(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(senders=0)  # the jobs wait in the queue
    bulk_clients(stack, 79_600_000_000, CLIENTS, "migration")
    mailing = stack.create_mailing(filter={"tags": ["migration"]})
    wait_until(lambda: stack.stats(mailing["id"])["total"] == CLIENTS, 60, what="fan-out")
    wait_until(lambda: asyncio.run(deliver_depth(stack)) >= CLIENTS // 100, 60, what="jobs")
    for name in ("scheduler", "api"):
        stack.group[name].terminate()

    jobs = asyncio.run(make_it_an_old_installation(stack))
    ids = [i for body in jobs for i in json.loads(body)["message_ids"]]
    assert len(ids) == len(set(ids)) == CLIENTS

    # This version refuses the classic queues and names the command.
    with pytest.raises(ProcessExitedError):
        stack.start_sender("sender-early")
    assert "herald-migrate-queues" in stack.group["sender-early"].output()

    migrate = subprocess.run(
        [sys.executable, "-c", "from herald_common.queue_migration import run; run()"],
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    lines = [json.loads(line) for line in migrate.stdout.splitlines() if line.startswith("{")]
    done = [line for line in lines if line.get("event") == "queue_migration_done"]
    assert done, migrate.stdout
    assert done[0]["moved"][DELIVER_QUEUE] == 2 * len(jobs)  # there and back
    # Every job is in the new queue before any service runs (a scheduler's sweep that
    # re-creates lost jobs cannot be what makes the mailing end).
    assert asyncio.run(deliver_depth(stack)) == len(jobs)

    stack.group.restart("api").wait_http_ok(f"http://127.0.0.1:{stack.api_port}/readyz", timeout=60)
    stack.group.restart("scheduler").wait_for_line("scheduler_started", timeout=60)
    stack.start_sender("sender-1")
    stack.start_sender("sender-2")
    stats = stack.wait_settled(mailing["id"], CLIENTS, timeout=90)
    assert stats["by_status"]["sent"] == CLIENTS
    assert db_status_counts(stack, mailing["id"]) == {"sent": CLIENTS}
    sim = stack.sim_stats()
    assert sim["distinct_accepted"] == CLIENTS
    assert sim["duplicates_accepted_count"] == 0
