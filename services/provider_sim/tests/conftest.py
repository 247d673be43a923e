"""Fixtures: a real simulator on a free local port and an HTTP client that talks to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from herald_provider_sim import Faults, SimConfig, make_token, running_simulator

SECRET = "test-secret-of-a-decent-length-0123456789"
PHONE = 79001234567


@dataclass
class SimClient:
    """Talks to one running simulator the way Herald and a test harness would."""

    base_url: str
    http: httpx.AsyncClient
    secret: str

    @property
    def token(self) -> str:
        return make_token(self.secret)

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v1")

    async def send(
        self,
        msg_id: int,
        *,
        body: Any = None,
        token: str | None = None,
        wait_s: float | None = None,
    ) -> httpx.Response:
        payload = (
            {"id": msg_id, "phone": PHONE, "text": f"hello {msg_id}"} if body is None else body
        )
        headers = {"Authorization": f"Bearer {token or self.token}"}
        timeout = httpx.USE_CLIENT_DEFAULT if wait_s is None else httpx.Timeout(wait_s)
        return await self.http.post(
            f"{self.base_url}/send/{msg_id}", json=payload, headers=headers, timeout=timeout
        )

    async def set_faults(self, **changes: Any) -> httpx.Response:
        return await self.http.put(f"{self.root}/_sim/faults", json=changes)

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.http.get(f"{self.root}{path}", params=params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def sim() -> AsyncIterator[SimClient]:
    config = SimConfig(secret=SECRET, faults=Faults(seed=7))
    async with (
        running_simulator("127.0.0.1", 0, config) as url,
        httpx.AsyncClient(timeout=5) as http,
    ):
        yield SimClient(url, http, SECRET)
