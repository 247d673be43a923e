"""Liveness and readiness as a load balancer or kubelet sees them."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from herald_api.main import create_app
from herald_api.observability import route_template
from herald_api.settings import ApiSettings
from herald_devstack.probes import free_port

from .conftest import TOKEN


async def test_healthz_answers_ok(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_when_database_and_broker_answer(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok"},
    }


async def test_readyz_is_503_while_the_broker_is_unreachable(migrated_db_url: str) -> None:
    # Port 9 (discard) has no AMQP server: the publisher keeps retrying in the background.
    settings = ApiSettings(
        database_url=migrated_db_url,
        amqp_url="amqp://guest:guest@127.0.0.1:9/",
        api_token=SecretStr(TOKEN),
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client,
    ):
        response = await client.get("/readyz")
        healthz = await client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "not ready",
        "checks": {"database": "ok", "broker": "unavailable"},
    }
    assert healthz.status_code == 200


@pytest.mark.parametrize(
    ("path", "params", "relative", "expected"),
    [
        (
            "/api/v1/clients/5",
            {"client_id": 5},
            "/clients/{client_id}",
            "/api/v1/clients/{client_id}",
        ),
        ("/api/v1/clients", {}, "/clients", "/api/v1/clients"),
        ("/healthz", {}, "/healthz", "/healthz"),
        (
            "/api/v1/mailings/7/stats",
            {"mailing_id": 7},
            "/mailings/{mailing_id}/stats",
            "/api/v1/mailings/{mailing_id}/stats",
        ),
    ],
)
def test_route_template_restores_router_prefixes(
    path: str, params: dict[str, int], relative: str, expected: str
) -> None:
    class Route:
        """As Starlette's: ``path`` keeps the convertors, ``path_format`` drops them."""

        def __init__(self, path_format: str) -> None:
            self.path_format = path_format
            self.path = path_format.replace("_id}", "_id:int}")

    scope = {"path": path, "path_params": params, "route": Route(relative)}
    assert route_template(scope) == expected


def test_route_template_of_an_unmatched_request() -> None:
    assert route_template({"path": "/nope", "path_params": {}}) == "unmatched"


def _requests_counted(method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("herald_api_requests_total", labels) or 0.0


@pytest.mark.parametrize(
    ("path", "route", "status"),
    [
        ("/docs/", "/docs/", 200),
        ("/openapi.json", "/openapi.json", 200),
        ("/redoc/", "/redoc/", 200),
        ("/docs/swagger-ui/swagger-ui.css", "/docs/swagger-ui/{path}", 200),
        ("/admin/static/admin.css", "/admin/static/{path}", 200),
        ("/admin/static/no-such-file.css", "/admin/static/{path}", 404),
        ("/api/v1/clients/987654", "/api/v1/clients/{client_id}", 404),
        ("/no/such/page", "unmatched", 404),
        # No OIDC issuer in these tests: the admin's one "how to turn me on" page takes any path.
        ("/admin/no/such/page", "/admin/{path}", 404),
    ],
)
async def test_requests_are_counted_by_a_bounded_route_label(
    api: httpx.AsyncClient, path: str, route: str, status: int
) -> None:
    before = _requests_counted("GET", route, status)

    response = await api.get(path)

    assert response.status_code == status
    assert _requests_counted("GET", route, status) == before + 1


async def test_a_database_that_cannot_be_reached_is_a_503_to_retry_not_a_500() -> None:
    # Nothing listens on that port: every connection is refused, as while PostgreSQL restarts.
    settings = ApiSettings(
        database_url=f"postgresql+psycopg://herald:herald@127.0.0.1:{free_port()}/herald",
        amqp_url="amqp://guest:guest@127.0.0.1:9/",
        api_token=SecretStr(TOKEN),
    )
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://test", headers=headers
        ) as client,
    ):
        responses = [
            await client.get("/api/v1/clients"),
            await client.get("/api/v1/mailings/stats"),
            await client.post(
                "/api/v1/clients",
                json={"phone": "79001234567", "tag": "t", "timezone": "UTC"},
            ),
            await client.post(
                "/api/v1/mailings",
                json={
                    "starts_at": "2030-01-01T00:00:00Z",
                    "ends_at": "2030-01-02T00:00:00Z",
                    "text": "t",
                    "filter": {},
                },
                headers={"Idempotency-Key": "k-1"},
            ),
            await client.post(
                "/api/v1/clients/import",
                content=b"phone,tag,timezone\n79001234568,t,UTC\n",
                headers={"Content-Type": "text/csv"},
            ),
        ]
        healthz = await client.get("/healthz")
        readyz = await client.get("/readyz")

    for response in responses:
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "2"
        assert response.json() == {
            "detail": "the database cannot be reached for the moment; retry shortly",
            "code": "unavailable",
        }
    assert healthz.status_code == 200
    assert readyz.status_code == 503
    assert readyz.json()["checks"]["database"] == "unavailable"
