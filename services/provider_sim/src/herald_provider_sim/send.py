"""The provider's send endpoint: auth, body validation, recording and fault injection."""

from __future__ import annotations

import asyncio
import json
import math
import time

from aiohttp import hdrs, web

from herald_provider_sim.recorder import ERROR, HANG, MALFORMED, OUTAGE, TOO_MANY
from herald_provider_sim.state import Simulator

SIM_KEY = web.AppKey("herald_provider_sim", Simulator)

_INT64_MAX = 2**63 - 1
_PHONE_MIN = 70_000_000_000
_PHONE_MAX = 79_999_999_999
_JSON = "application/json"

_OK_BODY = b'{"code": 0, "message": "OK"}'
_UNAUTHORIZED_BODY = b'{"code": 401, "message": "Unauthorized"}'
_REVOKED_BODY = b'{"code": 401, "message": "Unauthorized: token revoked"}'
_TOO_MANY_BODY = b'{"code": 429, "message": "Too Many Requests"}'
_ERROR_BODIES = {
    500: b'{"code": 500, "message": "Internal Server Error"}',
    502: b'{"code": 502, "message": "Bad Gateway"}',
    503: b'{"code": 503, "message": "Service Unavailable"}',
}
# (content type, body) pairs a broken provider might send with a 200.
_MALFORMED = (
    ("text/html", b"<html><body>Service temporarily overloaded</body></html>"),
    (_JSON, b'{"code": 0, "mess'),
    (_JSON, b'{"code": "x"}'),
    (_JSON, b""),
)


def _reply(status: int, body: bytes, content_type: str = _JSON) -> web.Response:
    return web.Response(status=status, body=body, content_type=content_type)


def _bad_request(reason: str) -> web.Response:
    return _reply(400, json.dumps({"code": 400, "message": reason}).encode())


def _drop(request: web.Request) -> web.Response:
    transport = request.transport
    if transport is not None:
        transport.close()
    # aiohttp treats writing to the closed transport as a client disconnect and stays quiet.
    return web.Response(status=204)


def parse_send(path_id: str, body: bytes) -> tuple[int, int, str] | str:
    """Return (id, phone, text) for a valid request, otherwise the reason it is invalid."""
    if not (path_id.isascii() and path_id.isdigit()) or int(path_id) > _INT64_MAX:
        return "msgId in the path must be an int64"
    try:
        data = json.loads(body)
    except ValueError:
        return "body is not JSON"
    if not isinstance(data, dict):
        return "body must be a JSON object"
    msg_id = data.get("id")
    phone = data.get("phone")
    text = data.get("text")
    if type(msg_id) is not int or msg_id != int(path_id):
        return "id must be an integer equal to msgId in the path"
    if type(phone) is not int or not _PHONE_MIN <= phone <= _PHONE_MAX:
        return "phone must be an integer of 11 digits starting with 7"
    if not isinstance(text, str):
        return "text must be a string"
    return msg_id, phone, text


async def _hang(sim: Simulator, request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(sim.faults.hang_s):
            await sim.stopping.wait()
    except TimeoutError:
        pass
    return _drop(request)


async def handle_send(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    body = await request.read()
    if sim.faults.unauthorized:
        sim.recorder.reject(401)
        return _reply(401, _REVOKED_BODY)
    if not sim.verifier.verify(request.headers.get(hdrs.AUTHORIZATION)):
        sim.recorder.reject(401)
        return _reply(401, _UNAUTHORIZED_BODY)
    parsed = parse_send(request.match_info["msg_id"], body)
    if isinstance(parsed, str):
        sim.recorder.reject(400)
        return _bad_request(parsed)
    msg_id, phone, text = parsed
    outcome, status = sim.decide()
    sim.recorder.record(msg_id, phone, text, time.time(), outcome, status)

    if outcome is OUTAGE:
        return _drop(request)
    if outcome is HANG:
        return await _hang(sim, request)
    delay_s = sim.delay_s()
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    if outcome is ERROR:
        assert status is not None
        return _reply(status, _ERROR_BODIES[status])
    if outcome is TOO_MANY:
        response = _reply(429, _TOO_MANY_BODY)
        response.headers[hdrs.RETRY_AFTER] = str(math.ceil(sim.faults.retry_after_s))
        return response
    if outcome is MALFORMED:
        content_type, garbage = sim.rng.choice(_MALFORMED)
        return _reply(200, garbage, content_type)
    return _reply(200, _OK_BODY)
