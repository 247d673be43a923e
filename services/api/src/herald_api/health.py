"""Liveness and readiness: /healthz says the process serves, /readyz that DB and broker answer."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_api.events import EventPublisher

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 2.0


CheckStatus = Literal["ok", "unavailable"]


class Liveness(BaseModel):
    status: Literal["ok"]


class ReadinessChecks(BaseModel):
    database: CheckStatus
    broker: CheckStatus


class Readiness(BaseModel):
    """200 when every check is ok, 503 otherwise, with the same body."""

    status: Literal["ready", "not ready"]
    checks: ReadinessChecks


@router.get("/healthz", summary="Liveness")
async def check_liveness() -> Liveness:
    return Liveness(status="ok")


async def _database_ok(engine: AsyncEngine) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@router.get(
    "/readyz",
    summary="Readiness: database and broker reachable",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database or the broker is not."}},
)
async def check_readiness(request: Request) -> JSONResponse:
    events: EventPublisher = request.app.state.events
    checks = {
        "database": "ok" if await _database_ok(request.app.state.engine) else "unavailable",
        "broker": "ok" if events.connected else "unavailable",
    }
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
