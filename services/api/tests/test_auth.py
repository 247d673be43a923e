"""Every /api/v1 call needs the bearer token; the probes and the docs need none."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from .conftest import TOKEN, count_rows

CONTRACT = {
    ("POST", "/api/v1/clients"),
    ("GET", "/api/v1/clients"),
    ("GET", "/api/v1/clients/{id}"),
    ("PATCH", "/api/v1/clients/{id}"),
    ("DELETE", "/api/v1/clients/{id}"),
    ("POST", "/api/v1/mailings"),
    ("GET", "/api/v1/mailings"),
    ("GET", "/api/v1/mailings/{id}"),
    ("PATCH", "/api/v1/mailings/{id}"),
    ("DELETE", "/api/v1/mailings/{id}"),
    ("GET", "/api/v1/mailings/stats"),
    ("GET", "/api/v1/mailings/{id}/stats"),
    ("GET", "/api/v1/mailings/{id}/messages"),
}
BAD_HEADERS: list[dict[str, str]] = [
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": "Bearer "},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
]


def api_operations(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app describes under /api/v1, path parameters named {id}."""
    return {
        (method.upper(), re.sub(r"\{[^}]+\}", "{id}", path))
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/api/v1")
        for method in item
    }


async def test_every_api_route_refuses_a_missing_or_wrong_token_with_401(
    app: FastAPI, anonymous: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    operations = api_operations(app)
    assert operations >= CONTRACT

    for method, path in sorted(operations):
        url = path.replace("{id}", "1")
        body = {"phone": "79001234567", "timezone": "UTC"} if method == "POST" else None
        for headers in BAD_HEADERS:
            response = await anonymous.request(method, url, headers=headers, json=body)

            case = f"{method} {url} {headers}"
            assert response.status_code == 401, case
            assert response.headers["WWW-Authenticate"] == "Bearer", case
            assert response.json() == {
                "detail": "missing or invalid bearer token",
                "code": "unauthorized",
            }, case
    assert await count_rows(clean_engine, "client") == 0


async def test_the_right_token_is_accepted(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/api/v1/clients", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response.json() == {"items": [], "next_after": None}


async def test_probes_docs_and_metrics_need_no_token(anonymous: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs/"):
        response = await anonymous.get(path)

        assert response.status_code == 200, path
    metrics = await anonymous.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE " in metrics.text
