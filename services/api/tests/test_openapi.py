"""The published API description: every path of the public contract, and Swagger UI."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
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
        api_token=SecretStr("unused-" + "0" * 32),
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


# --- what client generators read -------------------------------------------------------------

# The operations an integrator's generated client calls, by the public contract's paths.
OPERATION_IDS = {
    ("post", "/api/v1/clients"): "create_client",
    ("get", "/api/v1/clients"): "list_clients",
    ("post", "/api/v1/clients/import"): "import_clients",
    ("get", "/api/v1/clients/{client_id}"): "get_client",
    ("patch", "/api/v1/clients/{client_id}"): "update_client",
    ("delete", "/api/v1/clients/{client_id}"): "delete_client",
    ("post", "/api/v1/mailings"): "create_mailing",
    ("get", "/api/v1/mailings"): "list_mailings",
    ("get", "/api/v1/mailings/stats"): "get_all_mailing_stats",
    ("get", "/api/v1/mailings/{mailing_id}"): "get_mailing",
    ("patch", "/api/v1/mailings/{mailing_id}"): "update_mailing",
    ("delete", "/api/v1/mailings/{mailing_id}"): "delete_mailing",
    ("post", "/api/v1/mailings/{mailing_id}/pause"): "pause_mailing",
    ("post", "/api/v1/mailings/{mailing_id}/resume"): "resume_mailing",
    ("post", "/api/v1/mailings/{mailing_id}/retry-failed"): "retry_failed_messages",
    ("get", "/api/v1/mailings/{mailing_id}/stats"): "get_mailing_stats",
    ("get", "/api/v1/mailings/{mailing_id}/messages"): "list_mailing_messages",
    ("get", "/healthz"): "check_liveness",
    ("get", "/readyz"): "check_readiness",
}
SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
REF = re.compile(r"#/components/schemas/[A-Za-z][A-Za-z0-9]*")


def each_operation(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


async def test_every_operation_has_a_short_unique_snake_case_id_and_a_tag(
    docs: httpx.AsyncClient,
) -> None:
    operations = each_operation(await openapi(docs))
    ids = [operation["operationId"] for _, _, operation in operations]

    assert len(ids) == len(set(ids)), ids
    for method, path, operation in operations:
        operation_id = operation["operationId"]
        assert SNAKE_CASE.fullmatch(operation_id), operation_id
        # FastAPI's default glues the path and method on: create_client_api_v1_clients_post.
        assert "api_v1" not in operation_id, operation_id
        assert not operation_id.endswith(f"_{method}"), operation_id
        assert len(operation["tags"]) == 1, (method, path)
    assert {(m, p): o["operationId"] for m, p, o in operations} == OPERATION_IDS


def named(schema: dict[str, Any]) -> bool:
    """A reference to a components/schemas entry, or a choice between such references."""
    if "$ref" in schema:
        return bool(REF.fullmatch(schema["$ref"]))
    choices = schema.get("anyOf") or schema.get("oneOf") or []
    return bool(choices) and all(named(choice) for choice in choices)


async def test_every_request_and_response_body_is_a_named_schema(docs: httpx.AsyncClient) -> None:
    spec = await openapi(docs)
    schemas = spec["components"]["schemas"]
    unnamed = []
    for method, path, operation in each_operation(spec):
        bodies = [("request", operation.get("requestBody", {}).get("content", {}))]
        bodies += [(code, r.get("content", {})) for code, r in operation["responses"].items()]
        for where, content in bodies:
            for media_type, media in content.items():
                if media_type == "application/octet-stream":
                    assert media["schema"] == {"type": "string", "format": "binary"}
                elif not named(media["schema"]):
                    unnamed.append((method, path, where, media_type, media["schema"]))

    assert unnamed == []
    # Every 422 in Herald's own shape: FastAPI's has `input` and `ctx`, never sent.
    assert "HTTPValidationError" not in schemas
    assert {"ErrorBody", "ValidationErrorBody", "Liveness", "Readiness"} <= set(schemas)
    for page in ("ClientPage", "MailingPage", "MessagePage"):
        assert page in schemas


def nullable(schema: dict[str, Any]) -> bool:
    choices = schema.get("anyOf") or schema.get("oneOf") or [schema]
    return any(choice.get("type") == "null" for choice in choices)


async def test_patch_bodies_document_null_only_where_it_means_something(
    docs: httpx.AsyncClient,
) -> None:
    schemas = (await openapi(docs))["components"]["schemas"]

    for name in ("ClientUpdate", "MailingUpdate"):
        for field, schema in schemas[name]["properties"].items():
            # A field left out is kept: a default of null would say otherwise.
            assert "default" not in schema, (name, field)
            assert nullable(schema) == ((name, field) == ("MailingUpdate", "send_window")), (
                name,
                field,
            )


async def created_client(api: httpx.AsyncClient) -> str:
    response = await api.post(
        "/api/v1/clients", json={"phone": "79005550001", "timezone": "UTC", "tag": "nulls"}
    )
    assert response.status_code == 201, response.text
    return f"/api/v1/clients/{response.json()['id']}"


async def created_mailing(api: httpx.AsyncClient) -> str:
    start = datetime.now(UTC) + timedelta(days=1)
    response = await api.post(
        "/api/v1/mailings",
        json={
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=1)).isoformat(),
            "text": "nulls",
            "send_window": {"start": "09:00", "end": "21:00"},
        },
    )
    assert response.status_code == 201, response.text
    return f"/api/v1/mailings/{response.json()['id']}"


@pytest.mark.parametrize("schema_name", ["ClientUpdate", "MailingUpdate"])
async def test_a_patch_field_is_documented_nullable_exactly_when_the_api_takes_null(
    api: httpx.AsyncClient, schema_name: str
) -> None:
    spec = (await api.get("/openapi.json")).json()
    properties = spec["components"]["schemas"][schema_name]["properties"]
    url = await (created_client(api) if schema_name == "ClientUpdate" else created_mailing(api))
    before = (await api.get(url)).json()

    for field, schema in properties.items():
        response = await api.patch(url, json={field: None})

        if nullable(schema):
            assert response.status_code == 200, (field, response.text)
            assert response.json()[field] is None, field
        else:
            assert response.status_code == 422, (field, response.text)
            assert response.json()["detail"][0]["loc"] == ["body", field]
            assert (await api.get(url)).json()[field] == before[field], field
