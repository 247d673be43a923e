"""Herald as real processes for end-to-end tests: simulator, migrations, api, scheduler, senders.

Every process talks to 127.0.0.1 only; timings are shortened through the same HERALD_*
variables an operator would use, never through test-only code paths.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from herald_devstack.probes import free_port
from herald_devstack.processes import ManagedProcess, ProcessGroup
from herald_provider_sim import make_token
from herald_testing.factories import phone_columns

T = TypeVar("T")

SIM_SECRET = "e2e-secret"
# Herald refuses API tokens under 32 characters.
API_TOKEN = "e2e-api-token-0123456789abcdef0123456789"

# Short delays so that a test sees several retry rounds within seconds.
FAST_ENV = {
    "HERALD_RETRY_BASE_MS": "200",
    "HERALD_RETRY_MAX_MS": "1600",
    # Far above the simulator's latency even on a loaded machine: a call cut short by the
    # timeout is retried, and the provider sees the client twice. Hang tests set 1 s themselves.
    "HERALD_PROVIDER_TIMEOUT_S": "5",
    "HERALD_PROVIDER_CONNECT_TIMEOUT_S": "0.5",
    "HERALD_LEASE_S": "10",
    "HERALD_SCHEDULER_POLL_INTERVAL_S": "0.5",
    "HERALD_OUTBOX_GRACE_S": "2",
    "HERALD_MAX_ATTEMPTS": "30",
    "HERALD_LOG_LEVEL": "INFO",
    # Several replicas share this host; a test that reads metrics picks its own ports.
    "HERALD_METRICS_PORT": "0",
}


def wait_until(
    probe: Callable[[], T | None], timeout: float, interval: float = 0.2, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout} s (last: {last!r})")


@dataclass
class HeraldStack:
    group: ProcessGroup
    database_url: str
    amqp_url: str
    extra_env: Mapping[str, str] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)
    sim_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.metrics_ports: dict[str, int] = {}
        self.env = {
            **FAST_ENV,
            "HERALD_DATABASE_URL": self.database_url,
            "HERALD_AMQP_URL": self.amqp_url,
            "HERALD_API_TOKEN": API_TOKEN,
            "HERALD_API_PORT": str(self.api_port),
            "HERALD_PROVIDER_URL": f"http://127.0.0.1:{self.sim_port}/v1",
            "HERALD_PROVIDER_TOKEN": make_token(SIM_SECRET),
            "HERALD_SIM_PORT": str(self.sim_port),
            "HERALD_SIM_JWT_SECRET": SIM_SECRET,
            **self.extra_env,
        }
        if self.env.get("HERALD_OIDC_ISSUER") and not self.env.get("HERALD_OIDC_REDIRECT_URL"):
            # The admin UI needs its callback configured (never taken from the Host header).
            self.env["HERALD_OIDC_REDIRECT_URL"] = f"http://127.0.0.1:{self.api_port}/admin/auth"
        self.api = httpx.Client(
            base_url=f"http://127.0.0.1:{self.api_port}/api/v1",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        self.sim = httpx.Client(base_url=f"http://127.0.0.1:{self.sim_port}/_sim", timeout=10)

    # --- processes -------------------------------------------------------------------------

    def _start(
        self, name: str, module: str, wrapper: Sequence[str] = (), **env: str
    ) -> ManagedProcess:
        """``wrapper``: a command the service runs under (``faketime -f -5s``)."""
        command = [*wrapper, sys.executable, "-m", module]
        return self.group.start(name, command, env={**self.env, **env})

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "-c", "from herald_common.migrate import run; run()"],
            env={**os.environ, **self.env},
            check=True,
            capture_output=True,
        )

    def start_simulator(self) -> ManagedProcess:
        process = self._start("simulator", "herald_provider_sim")
        process.wait_http_ok(f"http://127.0.0.1:{self.sim_port}/_sim/healthz", timeout=30)
        return process

    def start_api(self) -> ManagedProcess:
        process = self._start("api", "herald_api")
        process.wait_http_ok(f"http://127.0.0.1:{self.api_port}/readyz", timeout=60)
        return process

    def start_scheduler(self, name: str = "scheduler", **env: str) -> ManagedProcess:
        process = self._start(name, "herald_scheduler", HERALD_SERVICE_INSTANCE=name, **env)
        process.wait_for_line("scheduler_started", timeout=60)
        return process

    def start_sender(self, name: str, wrapper: Sequence[str] = (), **env: str) -> ManagedProcess:
        process = self._start(name, "herald_sender", wrapper, HERALD_SERVICE_INSTANCE=name, **env)
        process.wait_for_line("sender_started", timeout=60)
        return process

    def start_all(self, senders: int = 2, metrics: bool = False) -> None:
        """Everything; with ``metrics`` each worker serves /metrics on a port of its own."""
        self.migrate()
        self.start_simulator()
        self.start_api()
        names = ["scheduler"] + [f"sender-{index}" for index in range(1, senders + 1)]
        if metrics:
            self.metrics_ports = {name: free_port() for name in names}
        ports = {
            name: {"HERALD_METRICS_PORT": str(port)} for name, port in self.metrics_ports.items()
        }
        self.start_scheduler(**ports.get("scheduler", {}))
        for name in names[1:]:
            self.start_sender(name, **ports.get(name, {}))

    def scrape(self, name: str) -> dict[str, float]:
        """A worker's metrics as {'name{labels}': value}; 'api' scrapes the API."""
        if name == "api":
            url = f"http://127.0.0.1:{self.api_port}/metrics"
        else:
            url = f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"
        samples: dict[str, float] = {}
        for line in httpx.get(url, timeout=10).text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                samples[key] = float(value)
        return samples

    def close(self) -> None:
        self.api.close()
        self.sim.close()
        self.group.terminate_all(timeout=10)

    # --- API and simulator helpers ---------------------------------------------------------

    def faults(self, **faults: Any) -> None:
        self.sim.put("/faults", json=faults).raise_for_status()

    def sim_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.sim.get("/stats").json()
        return stats

    def sim_requests(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self.sim.get("/requests", params={"after": after, "limit": 10_000}).json()
            items += page["items"]
            if not page["items"] or page.get("next_after") is None:
                return items
            after = page["next_after"]

    def create_mailing(self, **fields: Any) -> dict[str, Any]:
        """POST a mailing that starts now and ends in 10 minutes unless ``fields`` say otherwise;
        datetimes may be given as ``datetime``."""
        now = datetime.now(UTC)
        body: dict[str, Any] = {
            "starts_at": now,
            "ends_at": now + timedelta(minutes=10),
            "text": "Hello from Herald",
            **fields,
        }
        for key in ("starts_at", "ends_at"):
            if isinstance(body[key], datetime):
                body[key] = body[key].isoformat()
        response = self.api.post("/mailings", json=body)
        assert response.status_code == 201, response.text
        mailing: dict[str, Any] = response.json()
        return mailing

    def start_mailing(self, tag: str, **fields: Any) -> int:
        """A mailing for the clients tagged ``tag``, starting now; returns its id."""
        mailing_id: int = self.create_mailing(filter={"tags": [tag]}, text=f"for {tag}", **fields)[
            "id"
        ]
        return mailing_id

    def stats(self, mailing_id: int) -> dict[str, Any]:
        response = self.api.get(f"/mailings/{mailing_id}/stats")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def wait_settled(self, mailing_id: int, expected_total: int, timeout: float) -> dict[str, Any]:
        """Until every message of the mailing is in a terminal status."""

        def settled() -> dict[str, Any] | None:
            stats = self.stats(mailing_id)
            by = stats["by_status"]
            terminal = by["sent"] + by["failed"] + by["expired"] + by["cancelled"]
            return stats if stats["total"] == expected_total == terminal else None

        return wait_until(settled, timeout, 0.3, f"mailing {mailing_id} settled")

    def all_messages(self, mailing_id: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self.api.get(
                f"/mailings/{mailing_id}/messages", params={"after": after, "limit": 1000}
            ).json()
            items += page["items"]
            if page["next_after"] is None:
                return items
            after = page["next_after"]


def create_clients(
    stack: HeraldStack, phones: list[str], tag: str, timezone: str = "Europe/Moscow"
) -> list[int]:
    """Create clients through the API, 25 requests at a time, as an integrator would."""
    import asyncio

    async def run() -> list[int]:
        async with httpx.AsyncClient(
            base_url=str(stack.api.base_url), headers=dict(stack.api.headers), timeout=30
        ) as client:
            ids: list[int] = []
            for start in range(0, len(phones), 25):
                responses = await asyncio.gather(
                    *(
                        client.post("/clients", json={"phone": p, "tag": tag, "timezone": timezone})
                        for p in phones[start : start + 25]
                    )
                )
                for response in responses:
                    assert response.status_code == 201, response.text
                    ids.append(response.json()["id"])
            return ids

    return asyncio.run(run())


def db_status_counts(stack: HeraldStack, mailing_id: int) -> dict[str, int]:
    """Straight from the database: also for mailings the API no longer shows (deleted)."""
    import psycopg

    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM message WHERE mailing_id = %s GROUP BY status",
            (mailing_id,),
        ).fetchall()
    return dict(rows)


def bulk_clients(
    stack: HeraldStack, first_phone: int, count: int, tag: str, timezone: str = "UTC"
) -> None:
    """Many clients straight into the database, for volume tests of the pipeline."""
    import psycopg

    with psycopg.connect(stack.database_url) as conn:
        conn.execute(
            """
            INSERT INTO client (phone, operator_code, tag, timezone)
            SELECT phone, operator_code, %(tag)s, %(tz)s
            FROM unnest(%(phones)s::text[], %(codes)s::text[]) WITH ORDINALITY
                AS generated (phone, operator_code, n)
            ORDER BY n
            """,
            {"tag": tag, "tz": timezone, **phone_columns(first_phone, count)},
        )
