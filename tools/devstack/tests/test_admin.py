import uuid

import psycopg

from herald_devstack.admin import BrokerAdmin, DatabaseAdmin, ExternalPostgres, ExternalRabbitMQ
from herald_devstack.rabbitmq_api import ManagementClient


def test_external_postgres_creates_and_drops_databases(postgres_server: DatabaseAdmin) -> None:
    external = ExternalPostgres(postgres_server.url("postgres") + "?connect_timeout=5")
    name = f"ext_{uuid.uuid4().hex[:8]}"

    external.create_database(name)
    external.create_database(name, exist_ok=True)
    url = external.url(name)
    assert url.endswith(f"/{name}?connect_timeout=5")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (name,)
    external.drop_database(name)
    external.drop_database(name)  # already gone: fine

    with psycopg.connect(external.url("postgres")) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert row is None


def test_external_rabbitmq_manages_vhosts(rabbitmq_server: BrokerAdmin) -> None:
    external = ExternalRabbitMQ(rabbitmq_server.url("/"), rabbitmq_server.management_url)
    api = ManagementClient(rabbitmq_server.management_url)
    name = f"ext-{uuid.uuid4().hex[:8]}"

    external.create_vhost(name)
    assert name in api.list_vhosts()
    assert external.url(name) == rabbitmq_server.url(name)
    external.delete_vhost(name)
    external.delete_vhost(name)  # already gone: fine
    assert name not in api.list_vhosts()


def test_management_client_takes_credentials_from_its_url() -> None:
    client = ManagementClient("http://admin:s%40cret@broker:15672/")

    assert (client.base_url, client.username, client.password) == (
        "http://broker:15672",
        "admin",
        "s@cret",
    )
