"""Request logging and metrics: one JSON line per request, joined by ``request_id`` and ids.

A pure ASGI middleware (not BaseHTTPMiddleware) so that the endpoint runs in the middleware's
context: ids a router notes with ``note_ids`` end up on every later line of the request and
on its closing ``http_request`` line.
"""

from __future__ import annotations

import inspect
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any

import structlog
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald_api import metrics

log = structlog.get_logger()

_REQUEST_IDS: ContextVar[dict[str, Any] | None] = ContextVar("herald_request_ids", default=None)
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Probes and scrapes would drown the log; they are still counted in the metrics.
QUIET_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
PATH_IDS = ("mailing_id", "client_id")


def note_ids(**ids: int) -> None:
    """Attach entity ids to the current request's log lines (e.g. the id of what was created)."""
    noted = _REQUEST_IDS.get()
    if noted is not None:
        noted.update(ids)
    structlog.contextvars.bind_contextvars(**ids)


def note_caller(name: str) -> None:
    """Attach the name of the API token that authenticated the request to its log line."""
    noted = _REQUEST_IDS.get()
    if noted is not None:
        noted["caller"] = name


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _VALID_REQUEST_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route with its router prefixes: ``/api/v1/clients/{client_id}``.

    Included routers report their route relative to their prefix; the request path ends with
    that relative route filled in with the path parameters, so what precedes it is the prefix.
    """
    # path_format: the path without its convertors (``{client_id}``, not ``{client_id:int}``).
    relative = getattr(scope.get("route"), "path_format", None)
    if not isinstance(relative, str):
        return _plain_route(scope)
    params = scope.get("path_params") or {}
    try:
        rendered = relative.format(**params)
    except (KeyError, IndexError, ValueError):
        return relative
    path: str = scope["path"]
    return path[: len(path) - len(rendered)] + relative if path.endswith(rendered) else relative


def _plain_route(scope: Scope) -> str:
    """The route of a request that no FastAPI route matched, or ``unmatched``.

    Starlette's own routes (``/docs/``, ``/openapi.json``) leave no ``route`` in the scope, only
    their ``endpoint``: without path parameters their path is the route, one of a fixed set. A
    static-files mount serves any file under its root, so it is labelled by the root alone.
    A mounted app whose own routes missed also leaves itself as the endpoint: that is a 404.
    """
    endpoint = scope.get("endpoint")
    if isinstance(endpoint, StaticFiles):
        return f"{scope.get('root_path', '')}/{{path}}"
    if (inspect.isfunction(endpoint) or inspect.ismethod(endpoint)) and not scope.get(
        "path_params"
    ):
        path: str = scope["path"]
        return path
    return "unmatched"


def _is_id(value: object) -> bool:
    # Ids reach the path parameters through the ``:int`` convertor; out of BIGINT range they
    # are refused later (422), and stay off the log line.
    return isinstance(value, int) and 0 < value < 2**63


class RequestObservability:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        noted: dict[str, Any] = {}
        ids_token = _REQUEST_IDS.set(noted)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode()))
            await send(message)

        started = time.perf_counter()
        try:
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            _REQUEST_IDS.reset(ids_token)
            self._observe(scope, request_id, status, elapsed, noted)

    @staticmethod
    def _observe(
        scope: Scope, request_id: str, status: int, elapsed: float, noted: dict[str, Any]
    ) -> None:
        route = route_template(scope)
        method = scope["method"]
        metrics.REQUESTS.labels(method, route, str(status)).inc()
        metrics.LATENCY.labels(method, route).observe(elapsed)
        path = scope["path"]
        params = scope.get("path_params") or {}
        ids: dict[str, Any] = {key: params[key] for key in PATH_IDS if _is_id(params.get(key))}
        ids.update(noted)
        emit = log.debug if path in QUIET_PATHS else log.info
        emit(
            "http_request",
            request_id=request_id,
            method=method,
            path=path,
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            **ids,
        )
