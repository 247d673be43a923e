"""The API on a broker that still has the previous version's classic queues, on a real RabbitMQ:
it serves, says it is not ready, and its retries do not pile up connections on the broker."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote, unquote, urlsplit

import aio_pika
import httpx
from pydantic import SecretStr

from herald_api.main import create_app
from herald_api.settings import ApiSettings
from herald_common.rules.backoff import retry_tiers
from herald_devstack.admin import BrokerAdmin
from herald_devstack.rabbitmq_api import ManagementClient, credentials_of
from herald_testing.old_topology import declare_classic_topology

from .conftest import TOKEN

# Long enough for five attempts (the API waits 0.5, 1, 2, 4 s between them).
RETRYING_S = 9.0


def connections_of(rabbitmq: BrokerAdmin, amqp_url: str) -> int:
    vhost = quote(unquote(urlsplit(amqp_url).path[1:]), safe="")
    management = ManagementClient(rabbitmq.management_url, *credentials_of(amqp_url))
    status, body = management.request("GET", f"/api/vhosts/{vhost}/connections")
    assert status == 200, body
    return len(body)


async def test_the_api_stays_unready_on_classic_queues_without_piling_up_connections(
    migrated_db_url: str, amqp_url: str, rabbitmq_server: BrokerAdmin
) -> None:
    connection = await aio_pika.connect(amqp_url)
    await declare_classic_topology(await connection.channel(), retry_tiers(2_000, 900_000))
    await connection.close()
    settings = ApiSettings(
        database_url=migrated_db_url,
        amqp_url=amqp_url,
        api_token=SecretStr(TOKEN),
        db_pool_size=2,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client,
    ):
        began = time.monotonic()
        await asyncio.sleep(RETRYING_S)
        ready = await client.get("/readyz")
        healthz = await client.get("/healthz")
        # The management API lists a connection within its statistics interval (5 s): every
        # connection of the first attempts would be listed by now had they been left open.
        open_connections = await asyncio.to_thread(connections_of, rabbitmq_server, amqp_url)
        assert time.monotonic() - began >= RETRYING_S

    assert ready.status_code == 503
    assert ready.json()["checks"]["broker"] == "unavailable"
    assert healthz.status_code == 200
    assert open_connections <= 1  # at most the attempt in progress
