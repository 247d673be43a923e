"""The published API description: every path of the public contract, and Swagger UI."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from herald_api.main import create_app
from herald_api.settings import ApiSettings

# The public contract of the brief, path parameters named {id}.
CONTRACT: dict[str, set[str]] = {
    "/api/v1/clients": {"get", "post"},
    "/api/v1/clients/{id}": {"get", "patch", "delete"},
    "/api/v1/mailings": {"get", "post"},
    "/api/v1/mailings/{id}": {"get", "patch", "delete"},
    "/api/v1/mailings/stats": {"get"},
    "/api/v1/mailings/{id}/stats": {"get"},
    "/api/v1/mailings/{id}/messages": {"get"},
    "/healthz": {"get"},
    "/readyz": {"get"},
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def app_without_services() -> FastAPI:
    """The app without its lifespan: describing the API needs no database and no broker."""
    settings = ApiSettings(
        database_url="postgresql://nobody@127.0.0.1:1/none",
        amqp_url="amqp://nobody@127.0.0.1:1/",
        api_token=SecretStr("unused"),
    )
    return create_app(settings)


@pytest.fixture
async def docs() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app_without_services())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def openapi(docs: httpx.AsyncClient) -> dict[str, Any]:
    response = await docs.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


async def test_openapi_lists_every_contract_path_with_its_methods(
    docs: httpx.AsyncClient,
) -> None:
    spec = await openapi(docs)
    paths = {
        re.sub(r"\{[^}]+\}", "{id}", path): {m for m in item if m in HTTP_METHODS}
        for path, item in spec["paths"].items()
    }

    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "Herald"
    assert {path: paths.get(path) for path in CONTRACT} == CONTRACT


async def test_openapi_documents_auth_and_status_codes(docs: httpx.AsyncClient) -> None:
    spec = await openapi(docs)
    schemes = spec["components"]["securitySchemes"]
    bearer = [
        name
        for name, scheme in schemes.items()
        if scheme["type"] == "http" and scheme["scheme"].lower() == "bearer"
    ]

    assert len(bearer) == 1
    for path, item in spec["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        for method, operation in item.items():
            assert operation["security"] == [{bearer[0]: []}], (method, path)
            assert "401" in operation["responses"], (method, path)
    clients = spec["paths"]["/api/v1/clients/{client_id}"]
    assert "201" in spec["paths"]["/api/v1/clients"]["post"]["responses"]
    assert "201" in spec["paths"]["/api/v1/mailings"]["post"]["responses"]
    assert "204" in clients["delete"]["responses"]
    assert "404" in clients["get"]["responses"]
    client_create = spec["components"]["schemas"]["ClientCreate"]
    assert set(client_create["required"]) == {"phone", "timezone"}
    assert client_create["properties"]["phone"]["type"] == "string"


async def test_docs_serve_swagger_ui_for_the_openapi_document(docs: httpx.AsyncClient) -> None:
    response = await docs.get("/docs/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="swagger-ui"' in response.text
    assert 'data-openapi-url="/openapi.json"' in response.text


async def test_redoc_serves_the_openapi_document(docs: httpx.AsyncClient) -> None:
    response = await docs.get("/redoc/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<redoc spec-url="/openapi.json">' in response.text


def policy(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in directives}


@pytest.mark.parametrize("page", ["/docs/", "/redoc/"])
async def test_docs_pages_load_everything_from_this_origin(
    docs: httpx.AsyncClient, page: str
) -> None:
    response = await docs.get(page)
    csp = policy(response.headers["content-security-policy"])
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)

    # Only keywords ('self', 'none'...) and data:/blob:, never another origin.
    sources = [source for sources in csp.values() for source in sources]
    assert all(s.startswith("'") or s in {"data:", "blob:"} for s in sources), csp
    assert csp["script-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert "<script>" not in response.text  # every script is a file: no inline script
    assert assets
    for asset in assets:
        assert asset.startswith("/"), asset
        assert not asset.startswith("//"), asset
        served = await docs.get(asset)
        assert served.status_code == 200, asset
        if asset.endswith(".js"):
            assert served.headers["content-type"].startswith("text/javascript"), asset
        if asset.endswith(".css"):
            assert served.headers["content-type"].startswith("text/css"), asset


async def test_docs_pages_follow_a_proxy_prefix() -> None:
    transport = httpx.ASGITransport(app_without_services(), root_path="/herald")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/docs/")

    assert 'data-openapi-url="/herald/openapi.json"' in response.text
    assert 'src="/herald/docs/swagger-ui/swagger-ui-bundle.js"' in response.text
