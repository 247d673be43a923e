"""What guards the API's edge: named bearer tokens, a request-body limit, CORS, and the
headers that keep browsers from misusing HTML responses."""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_TOKEN_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DEFAULT_TOKEN_NAME = "default"


@dataclass(frozen=True, slots=True)
class ApiToken:
    name: str
    secret: bytes


def parse_named_tokens(spec: str) -> list[ApiToken]:
    """``name=token,name2=token2`` (``HERALD_API_TOKENS``); every mistake named, never the
    token itself."""
    tokens: list[ApiToken] = []
    for index, entry in enumerate(filter(None, (e.strip() for e in spec.split(","))), start=1):
        name, sep, secret = entry.partition("=")
        name, secret = name.strip(), secret.strip()
        if not sep or not secret:
            raise ValueError(f"entry {index} must be name=token")
        if not _TOKEN_NAME.match(name):
            raise ValueError(f"entry {index}: a token's name is 1-64 of A-Z a-z 0-9 _ . -")
        if name == DEFAULT_TOKEN_NAME or any(t.name == name for t in tokens):
            raise ValueError(f"entry {index}: the name {name!r} is used twice")
        tokens.append(ApiToken(name, secret.encode()))
    return tokens


def identify(tokens: list[ApiToken], given: bytes) -> str | None:
    """The name of the token ``given`` is, or None. Every token is compared, each in constant
    time, so the time taken tells nothing about which one came close."""
    found: str | None = None
    for token in tokens:
        if hmac.compare_digest(given, token.secret) and found is None:
            found = token.name
    return found


class BodyLimit:
    """413 for a request body over ``limit`` bytes, whether announced by Content-Length or
    streamed; paths in ``exempt`` check their own limit while streaming (the REST bulk
    import), paths in ``limits`` have a larger one here (the admin UI's upload, which is
    spooled as a form before any route code runs).

    A streamed body that runs over is cut short, and whatever the application answers to
    the truncated body is replaced by the 413 (an exception would be turned into a parsing
    error by FastAPI on its way out)."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        exempt: frozenset[str],
        limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt
        self.limits = dict(limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.limit)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(send, limit)
                return
        received = 0
        exceeded = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def replacing_send(message: Message) -> None:
            if not exceeded:
                await send(message)
            elif message["type"] == "http.response.start":
                await self._refuse(send, limit)

        await self.app(scope, counting_receive, replacing_send)

    async def _refuse(self, send: Send, limit: int) -> None:
        body = orjson.dumps(
            {
                "detail": f"the request body is larger than {limit} bytes",
                "code": "payload_too_large",
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# For HTML without a policy of its own (the docs pages and the admin UI set theirs): nothing
# from another origin, no inline script, no framing.
HTML_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"base-uri 'none'; frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """``nosniff`` on every response; a content security policy and no framing on HTML."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                content_type = next((v for k, v in headers if k == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    # A page with a policy of its own (the admin UI's, stricter) keeps it.
                    own = {k for k, _ in headers}
                    headers += [(k, v) for k, v in HTML_HEADERS if k not in own]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def install_cors(app: FastAPI, origins: list[str]) -> None:
    """Closed unless origins are configured: then those origins, and only them, may call the
    API from a browser with the bearer token (no cookies are involved)."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=["X-Request-ID"],
        allow_credentials=False,
        max_age=600,
    )
