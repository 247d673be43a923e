"""What tests need from a database server or a broker, and adapters for external ones."""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit

from herald_devstack import pgadmin
from herald_devstack.rabbitmq_api import ManagementClient, amqp_url, credentials_of


class DatabaseAdmin(Protocol):
    """Implemented by PostgresServer and ExternalPostgres."""

    def url(self, dbname: str = "herald") -> str: ...

    def create_database(self, name: str, *, exist_ok: bool = False) -> None: ...

    def drop_database(self, name: str) -> None: ...


class BrokerAdmin(Protocol):
    """Implemented by RabbitMQServer and ExternalRabbitMQ."""

    @property
    def management_url(self) -> str: ...

    def url(self, vhost: str = "/") -> str: ...

    def create_vhost(self, name: str) -> None: ...

    def delete_vhost(self, name: str) -> None: ...


class ExternalPostgres:
    """A server we did not start; `admin_url` must allow CREATE/DROP DATABASE."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def __repr__(self) -> str:
        parts = urlsplit(self.admin_url)
        return f"<ExternalPostgres {parts.hostname}:{parts.port}>"

    def url(self, dbname: str = "herald") -> str:
        return pgadmin.with_database(self.admin_url, dbname)

    def create_database(self, name: str, *, exist_ok: bool = False) -> None:
        pgadmin.create_database(self.admin_url, name, exist_ok=exist_ok)

    def drop_database(self, name: str) -> None:
        pgadmin.drop_database(self.admin_url, name)


class ExternalRabbitMQ:
    """A broker we did not start: AMQP at `base_amqp_url`, management API at `management_url`
    (default http://HOST:15672; credentials from the AMQP URL unless the management URL has its
    own)."""

    def __init__(self, base_amqp_url: str, management_url: str | None = None) -> None:
        parts = urlsplit(base_amqp_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 5672
        self._username, self._password = credentials_of(base_amqp_url)
        self._scheme = parts.scheme
        if management_url is None:
            management_url = f"http://{self._host}:15672"
        self.api = ManagementClient(management_url, self._username, self._password)
        self._management_url = self.api.base_url

    def __repr__(self) -> str:
        return f"<ExternalRabbitMQ {self._host}:{self._port}>"

    @property
    def management_url(self) -> str:
        return self._management_url

    def url(self, vhost: str = "/") -> str:
        url = amqp_url(self._host, self._port, self._username, self._password, vhost)
        return url.replace("amqp://", f"{self._scheme}://", 1)

    def create_vhost(self, name: str) -> None:
        self.api.create_vhost(name)

    def delete_vhost(self, name: str) -> None:
        self.api.delete_vhost(name)
