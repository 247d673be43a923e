"""The real API app in-process, through its lifespan and connected to the broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import SecretStr

from herald_api.main import create_app
from herald_api.settings import ApiSettings

BROKER_WAIT_S = 10.0


async def wait_until_connected(app: FastAPI, timeout_s: float = BROKER_WAIT_S) -> None:
    # The publisher exposes a flag, not an event, so poll it, within a bound.
    async with asyncio.timeout(timeout_s):
        while not app.state.events.connected:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@asynccontextmanager
async def started_app(
    db_url: str, amqp_url: str, token: str, **overrides: Any
) -> AsyncIterator[FastAPI]:
    """The app with ``token`` as its API token; ``overrides`` are further settings."""
    overrides.setdefault("db_pool_size", 2)
    settings = ApiSettings(
        database_url=db_url, amqp_url=amqp_url, api_token=SecretStr(token), **overrides
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await wait_until_connected(app)
        yield app
