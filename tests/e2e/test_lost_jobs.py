"""The database is the truth: jobs the broker lost are found again (issue 12, item 1).

A mailing is under way when its jobs vanish from RabbitMQ, as when an operator purges the
queues or a node comes back without its data. No process of Herald is restarted. The messages
whose job is gone are still ``pending`` (or ``retrying``) in PostgreSQL, and the scheduler's
lost-job sweep gives them a new job once the delivery queue has run dry and they have waited
``HERALD_STALE_JOB_S``: every message still ends ``sent``, long before the end, and duplicates
at the provider stay within the senders' slots.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from herald_devstack.admin import BrokerAdmin, DatabaseAdmin
from herald_devstack.processes import ProcessGroup
from herald_devstack.rabbitmq import RabbitMQServer
from herald_devstack.rabbitmq_api import ManagementClient
from herald_testing.stack import HeraldStack, bulk_clients, db_status_counts, wait_until

from .conftest import StackFactory

pytestmark = pytest.mark.e2e

CLIENTS = 3_000
SLOTS = 20
SENDERS = 2
STALE_S = 3
ENV = {
    "HERALD_SENDER_CONCURRENCY": str(SLOTS),
    "HERALD_STALE_JOB_S": str(STALE_S),
}


def vhost_of(stack: HeraldStack) -> str:
    return unquote(urlsplit(stack.amqp_url).path[1:]) or "/"


def job_queues(api: ManagementClient, vhost: str) -> list[str]:
    """herald.deliver and every retry queue (the management API's counts lag by seconds, so
    what was lost is judged from the database instead)."""
    return [
        name
        for name in api.queues(vhost)
        if name == "herald.deliver" or name.startswith("herald.retry.")
    ]


def start_mailing(stack: HeraldStack, tag: str, first_phone: int) -> dict[str, Any]:
    bulk_clients(stack, first_phone, CLIENTS, tag)
    # Slow enough for the mailing to last several seconds; some 500s fill the retry queues.
    stack.faults(latency_ms=50, error_ratio=0.2)
    mailing = stack.create_mailing(filter={"tags": [tag]})
    wait_until(lambda: stack.sim_stats()["accepted"] >= 600, 60, 0.05, "mailing under way")
    return mailing


def check_all_sent(stack: HeraldStack, mailing: dict[str, Any], timeout: float) -> None:
    began = time.monotonic()
    stats = stack.wait_settled(mailing["id"], CLIENTS, timeout=timeout)
    assert stats["by_status"]["sent"] == CLIENTS, stats
    assert db_status_counts(stack, mailing["id"]) == {"sent": CLIENTS}
    sim = stack.sim_stats()
    assert sim["distinct_accepted"] == CLIENTS
    # Losing a job loses no outcome: the provider sees a message twice only for calls in
    # flight when a sender itself is cut off, at most its slots.
    assert sim["duplicates_accepted_count"] <= SENDERS * SLOTS, sim["duplicates_accepted"][:20]
    assert not [p.name for p in stack.group.exited()], "a Herald process died"
    print(
        f"settled {time.monotonic() - began:.1f} s after the loss; duplicates accepted "
        f"{sim['duplicates_accepted_count']}"
    )


def lost_job_requeues(stack: HeraldStack) -> int:
    log_path = stack.group["scheduler"].log_path
    assert log_path is not None
    return sum(
        1
        for line in log_path.read_text().splitlines()
        if '"messages_requeued"' in line and '"job_lost"' in line
    )


def test_purging_every_job_queue_mid_mailing_loses_no_message(
    stack_factory: StackFactory, rabbitmq_server: BrokerAdmin
) -> None:
    api: ManagementClient = rabbitmq_server.api  # type: ignore[attr-defined]
    stack = stack_factory(senders=SENDERS, **ENV)
    mailing = start_mailing(stack, "purged", 79_610_000_000)
    vhost = vhost_of(stack)

    queues = job_queues(api, vhost)
    for name in queues:
        api.purge_queue(vhost, name)
    waiting = db_status_counts(stack, mailing["id"])

    assert "herald.deliver" in queues
    assert len(queues) > 1
    # Far more messages waited for a job than the senders hold (2 × 3 jobs of 100).
    assert waiting.get("pending", 0) > 1_000, waiting
    check_all_sent(stack, mailing, timeout=90)
    assert lost_job_requeues(stack) > 0


@pytest.fixture
def own_rabbitmq() -> Iterator[RabbitMQServer]:
    base = Path(tempfile.mkdtemp(prefix="herald-lost-rmq-"))
    server = RabbitMQServer(base)  # ports chosen now and kept across restarts
    try:
        server.start()
        yield server
    finally:
        server.stop(graceful=False)
        shutil.rmtree(base, ignore_errors=True)


def test_a_broker_back_without_its_data_gets_its_queues_and_jobs_back(
    postgres_server: DatabaseAdmin, own_rabbitmq: RabbitMQServer, tmp_path: Path
) -> None:
    # The default vhost: a node started on an empty data directory has it (and guest) again.
    database = f"e2e_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(database)
    stack = HeraldStack(
        ProcessGroup(log_dir=tmp_path / "logs"),
        postgres_server.url(database),
        own_rabbitmq.url("/"),
        extra_env=ENV,
    )
    try:
        stack.start_all(senders=SENDERS)
        mailing = start_mailing(stack, "wiped", 79_620_000_000)

        own_rabbitmq.stop(graceful=False)
        shutil.rmtree(own_rabbitmq.base_dir / "mnesia")
        own_rabbitmq.start()

        # The services redeclare the topology by themselves when they reconnect.
        wait_until(
            lambda: "herald.deliver" in own_rabbitmq.api.queues("/"), 60, what="queues redeclared"
        )
        check_all_sent(stack, mailing, timeout=120)
        assert lost_job_requeues(stack) > 0
    finally:
        stack.close()
        postgres_server.drop_database(database)
