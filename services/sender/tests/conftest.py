"""Sender test fixtures: the worker on a real database and broker, the simulator in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.broker import Publisher, connect
from herald_common.clock import DatabaseClock
from herald_common.rules.backoff import retry_tiers
from herald_common.topology import declare_topology
from herald_provider_sim import make_token, running_simulator
from herald_sender.provider import ProviderClient
from herald_sender.recorder import Recorder
from herald_sender.settings import SenderSettings
from herald_sender.worker import DeliveryWorker

SECRET = "sender-tests-secret"


@dataclass
class Rig:
    worker: DeliveryWorker
    engine: AsyncEngine
    broker: AbstractRobustConnection
    sim: httpx.AsyncClient  # the simulator's control API
    settings: SenderSettings
    closing: list[AbstractChannel] = field(default_factory=list)  # closed by the test

    async def faults(self, **faults: object) -> None:
        response = await self.sim.put("/_sim/faults", json=faults)
        response.raise_for_status()

    def worker_with(
        self,
        *,
        engine: AsyncEngine | None = None,
        provider: ProviderClient | None = None,
        publisher: Publisher | None = None,
        clock: DatabaseClock | None = None,
        **settings: object,
    ) -> DeliveryWorker:
        """Another worker on the rig's recorder; by default also its engine and provider, with
        some settings changed."""
        return DeliveryWorker(
            engine or self.engine,
            provider or self.worker._provider,
            self.worker._recorder,
            self.settings.model_copy(update=settings),
            publisher=publisher,
            clock=clock,
        )

    async def received(self) -> list[dict[str, object]]:
        response = await self.sim.get("/_sim/requests", params={"limit": 10_000})
        items: list[dict[str, object]] = response.json()["items"]
        return items


@pytest.fixture
async def rig(clean_engine: AsyncEngine, migrated_db_url: str, amqp_url: str) -> AsyncIterator[Rig]:
    from herald_provider_sim.config import SimConfig

    async with running_simulator("127.0.0.1", 0, SimConfig(secret=SECRET)) as base_url:
        settings = SenderSettings(
            database_url=migrated_db_url,
            amqp_url=amqp_url,
            provider_url=base_url,
            provider_token=make_token(SECRET),
            provider_timeout_s=0.5,
            retry_base_ms=100,
            retry_max_ms=800,
            max_attempts=3,
            send_guard_ms=500,
        )  # type: ignore[arg-type]
        connection = await connect(amqp_url, "sender-tests")
        channel = await connection.channel()
        await declare_topology(channel, retry_tiers(settings.retry_base_ms, settings.retry_max_ms))
        recorder = Recorder(clean_engine, await Publisher.open(connection), 100, 0.002)
        recorder.start()
        sim_root = base_url.removesuffix("/v1")
        async with (
            ProviderClient(
                base_url,
                settings.provider_token.get_secret_value(),
                concurrency=50,
                connect_timeout_s=0.5,
                timeout_s=settings.provider_timeout_s,
            ) as provider,
            httpx.AsyncClient(base_url=sim_root) as sim,
        ):
            worker = DeliveryWorker(clean_engine, provider, recorder, settings)
            yield Rig(worker, clean_engine, connection, sim, settings)
        await recorder.stop()
        await connection.close()
