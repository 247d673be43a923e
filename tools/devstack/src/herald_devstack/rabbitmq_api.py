"""A minimal client of the RabbitMQ management HTTP API (vhosts, permissions, liveness)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from herald_devstack.errors import DevstackError
from herald_devstack.probes import http_client


def amqp_url(host: str, port: int, username: str, password: str, vhost: str = "/") -> str:
    """An AMQP URL; the vhost is percent-encoded, so the default vhost "/" becomes %2F."""
    user = quote(username, safe="")
    secret = quote(password, safe="")
    return f"amqp://{user}:{secret}@{host}:{port}/{quote(vhost, safe='')}"


def credentials_of(url: str) -> tuple[str, str]:
    """(username, password) in `url`, guest/guest when it has none."""
    parts = urlsplit(url)
    return unquote(parts.username or "guest"), unquote(parts.password or "guest")


class ManagementAPIError(DevstackError):
    pass


class ManagementClient:
    """Talks to `base_url` (e.g. http://127.0.0.1:15672) as `username`."""

    def __init__(
        self, base_url: str, username: str = "guest", password: str = "guest", timeout: float = 10.0
    ) -> None:
        parts = urlsplit(base_url)
        # Credentials may come inside the URL (HERALD_TEST_RABBITMQ_MANAGEMENT_URL).
        if parts.username:
            username, password = credentials_of(base_url)
            base_url = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, decoded JSON body or None). HTTP errors are returned, not raised."""
        try:
            response = http_client().request(
                method,
                self.base_url + path,
                json=body,
                auth=(self.username, self.password),
                timeout=self.timeout,
            )
        except httpx.HTTPError as error:
            raise ManagementAPIError(f"{method} {self.base_url}{path} failed: {error}") from error
        try:
            return response.status_code, response.json() if response.content else None
        except ValueError:
            return response.status_code, response.text

    def is_alive(self) -> bool:
        try:
            status, _ = self.request("GET", "/api/overview")
        except ManagementAPIError:
            return False
        return status == 200

    def list_vhosts(self) -> list[str]:
        _, body = self._expect("GET", "/api/vhosts", ok=(200,))
        return [item["name"] for item in body]

    def create_vhost(self, name: str) -> None:
        """Create `name` (idempotent) and give our user full rights on it."""
        vhost = quote(name, safe="")
        self._expect("PUT", f"/api/vhosts/{vhost}", {}, ok=(201, 204))
        permissions = {"configure": ".*", "write": ".*", "read": ".*"}
        user = quote(self.username, safe="")
        self._expect("PUT", f"/api/permissions/{vhost}/{user}", permissions, ok=(201, 204))

    def delete_vhost(self, name: str) -> None:
        """Delete `name` with everything in it; a missing vhost is fine."""
        self._expect("DELETE", f"/api/vhosts/{quote(name, safe='')}", ok=(204, 404))

    def queues(self, vhost: str) -> dict[str, dict[str, Any]]:
        """The queues of ``vhost`` by name, as the management API describes them."""
        _, body = self._expect("GET", f"/api/queues/{quote(vhost, safe='')}", ok=(200,))
        return {item["name"]: item for item in body}

    def purge_queue(self, vhost: str, name: str) -> None:
        """Drop every ready message of a queue (what an operator's "Purge" button does)."""
        path = f"/api/queues/{quote(vhost, safe='')}/{quote(name, safe='')}/contents"
        self._expect("DELETE", path, ok=(204,))

    def _expect(
        self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...]
    ) -> tuple[int, Any]:
        status, answer = self.request(method, path, body)
        if status not in ok:
            raise ManagementAPIError(f"{method} {self.base_url}{path} answered {status}: {answer}")
        return status, answer
