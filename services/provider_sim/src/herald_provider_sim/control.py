"""The `/_sim/` control API: switch faults at run time, read what was received, reset."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from herald_provider_sim.config import FaultValidationError, update_faults
from herald_provider_sim.send import SIM_KEY

MAX_PAGE = 10_000
DEFAULT_PAGE = 1000


def _unprocessable(error: FaultValidationError) -> web.Response:
    return web.json_response(
        {"error": "validation_error", "field": error.field, "message": error.message}, status=422
    )


def _query_int(request: web.Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise FaultValidationError(name, "must be an integer") from None
    if not minimum <= value <= maximum:
        raise FaultValidationError(name, f"must be between {minimum} and {maximum}")
    return value


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_KEY].faults.to_json())


async def put_faults(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        changes: Any = json.loads(await request.read())
    except ValueError:
        return _unprocessable(FaultValidationError(None, "body must be a JSON object"))
    if not isinstance(changes, dict):
        return _unprocessable(FaultValidationError(None, "body must be a JSON object"))
    try:
        faults = update_faults(sim.faults, changes)
    except FaultValidationError as error:
        return _unprocessable(error)
    sim.set_faults(faults, reseed="seed" in changes)
    return web.json_response(faults.to_json())


async def reset(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    sim.reset()
    return web.json_response({"status": "reset", "faults": sim.faults.to_json()})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_KEY].recorder.stats())


async def requests(request: web.Request) -> web.Response:
    recorder = request.app[SIM_KEY].recorder
    try:
        if "id" in request.query:
            msg_id = _query_int(request, "id", 0, 0, 2**63 - 1)
            return web.json_response({"id": msg_id, "items": recorder.for_id(msg_id)})
        after = _query_int(request, "after", 0, 0, 2**63 - 1)
        limit = _query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    except FaultValidationError as error:
        return _unprocessable(error)
    items, next_after = recorder.page(after, limit)
    return web.json_response({"items": items, "next_after": next_after})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def add_control_routes(app: web.Application) -> None:
    app.router.add_get("/_sim/faults", get_faults)
    app.router.add_put("/_sim/faults", put_faults)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/_sim/stats", stats)
    app.router.add_get("/_sim/requests", requests)
    app.router.add_get("/_sim/healthz", healthz)
