"""The API's edge: named tokens, the body limit, CORS closed unless configured, and the
headers HTML responses carry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_api.security import identify, parse_named_tokens
from herald_api.settings import ApiSettings

from .conftest import TOKEN, count_rows, started_app

CI_TOKEN = "ci-token-0123456789abcdef0123456789"
PARTNER_TOKEN = "partner-token-fedcba9876543210fedcba"


@pytest.fixture
async def secured_app(
    clean_engine: AsyncEngine, migrated_db_url: str, amqp_url: str
) -> AsyncIterator[FastAPI]:
    async with started_app(
        migrated_db_url,
        amqp_url,
        api_tokens=SecretStr(f"ci={CI_TOKEN}, partner={PARTNER_TOKEN}"),
        cors_origins="https://admin.example.org",
        max_body_bytes=4096,
    ) as app:
        yield app


@pytest.fixture
async def client(secured_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(secured_app), base_url="http://test"
    ) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_every_configured_token_works_and_the_log_names_it_not_its_value(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    for token in (TOKEN, CI_TOKEN, PARTNER_TOKEN):
        assert (await client.get("/api/v1/clients", headers=bearer(token))).status_code == 200
    refused = await client.get("/api/v1/clients", headers=bearer(CI_TOKEN[:-1]))
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"

    out = capsys.readouterr().out
    assert "caller=partner" in out or '"caller": "partner"' in out
    assert "caller=ci" in out or '"caller": "ci"' in out
    for secret in (TOKEN, CI_TOKEN, PARTNER_TOKEN):
        assert secret not in out


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("ci", "entry 1 must be name=token"),
        ("ci=", "entry 1 must be name=token"),
        ("a=b, bad name=x", "entry 2: a token's name"),
        ("ci=a,ci=b", "entry 2: the name 'ci' is used twice"),
        ("default=x", "entry 1: the name 'default' is used twice"),
    ],
)
def test_a_bad_token_list_is_refused_at_start_naming_the_entry_not_the_token(
    spec: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        ApiSettings(
            database_url="postgresql://h@127.0.0.1/h",
            amqp_url="amqp://127.0.0.1/",
            api_token=SecretStr(TOKEN),
            api_tokens=SecretStr(spec),
        )
    message = str(raised.value)
    assert "api_tokens" in message
    assert reason in message
    assert "=b" not in message.replace(spec, "")


def test_identify_compares_every_token() -> None:
    tokens = parse_named_tokens("a=one,b=two")
    assert identify(tokens, b"two") == "b"
    assert identify(tokens, b"one") == "a"
    assert identify(tokens, b"three") is None
    assert identify(tokens, b"") is None


async def test_a_body_over_the_limit_is_413_and_writes_nothing(
    client: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    big: dict[str, Any] = {"phone": "79001234567", "timezone": "UTC", "tag": "x" * 5000}
    announced = await client.post("/api/v1/clients", json=big, headers=bearer(TOKEN))
    assert announced.status_code == 413
    assert announced.json()["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        # Streamed without a Content-Length: counted as it arrives.
        yield b'{"phone": "79001234567", "timezone": "UTC", "tag": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    streamed = await client.post(
        "/api/v1/clients",
        content=chunks(),
        headers={**bearer(TOKEN), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert await count_rows(clean_engine, "client") == 0
    small = await client.post(
        "/api/v1/clients",
        json={"phone": "79001234567", "timezone": "UTC"},
        headers=bearer(TOKEN),
    )
    assert small.status_code == 201


async def test_the_import_keeps_its_own_larger_limit(client: httpx.AsyncClient) -> None:
    rows = "".join(f"7900{n:07d},UTC,{'t' * 40}\n" for n in range(200))
    response = await client.post(
        "/api/v1/clients/import",
        content="phone,timezone,tag\n" + rows,
        headers={**bearer(TOKEN), "Content-Type": "text/csv"},
    )
    assert len(rows) > 4096
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 200


async def test_cors_answers_only_the_configured_origin(client: httpx.AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = await client.options(
        "/api/v1/clients", headers={"Origin": "https://admin.example.org", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://admin.example.org"
    other = await client.options(
        "/api/v1/clients", headers={"Origin": "https://evil.example.com", **preflight}
    )
    assert "access-control-allow-origin" not in other.headers


async def test_cors_is_closed_by_default(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/healthz", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in response.headers
    preflight = await anonymous.options(
        "/api/v1/clients",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


async def test_html_carries_a_content_security_policy_and_refuses_framing(
    anonymous: httpx.AsyncClient,
) -> None:
    for page in ("/docs/", "/redoc/"):
        docs = await anonymous.get(page)
        assert docs.headers["content-type"].startswith("text/html")
        assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
        assert docs.headers["x-frame-options"] == "DENY"
        assert docs.headers["x-content-type-options"] == "nosniff"
    api = await anonymous.get("/healthz")
    assert api.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in api.headers
