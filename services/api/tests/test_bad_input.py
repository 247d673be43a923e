"""Inputs the fuzzer (tests/e2e/test_fuzz.py) found unhandled, each pinned down: a clear 4xx
naming the field and the reason, never a 500, nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from .conftest import assert_invalid, count_rows


def mailing(**fields: object) -> dict[str, object]:
    now = datetime.now(UTC)
    body: dict[str, object] = {
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "text": "hello",
        "filter": {},
    }
    body.update(fields)
    return body


@pytest.mark.parametrize(
    ("escaped", "reason"),
    [("vip\\u0000", "NUL"), ("\\ud8ee", "unicode"), ("a\\udc14b", "unicode")],
)
async def test_a_tag_postgresql_cannot_store_is_a_422_not_a_500(
    api: httpx.AsyncClient, clean_engine: AsyncEngine, escaped: str, reason: str
) -> None:
    # Written as JSON escapes: a lone surrogate is legal there, and impossible in UTF-8.
    body = '{"phone": "79001234567", "timezone": "UTC", "tag": "' + escaped + '"}'
    response = await api.post(
        "/api/v1/clients", content=body, headers={"Content-Type": "application/json"}
    )
    assert_invalid(response, "tag", case=escaped)
    assert reason in response.json()["detail"][0]["msg"]
    assert await count_rows(clean_engine, "client") == 0


async def test_a_mailing_text_with_a_nul_is_a_422(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    response = await api.post("/api/v1/mailings", json=mailing(text="hi\u0000there"))
    assert_invalid(response, "text")
    assert "NUL" in response.json()["detail"][0]["msg"]
    tags = await api.post("/api/v1/mailings", json=mailing(filter={"tags": ["a\u0000"]}))
    assert_invalid(tags, "filter", "tags", 0)
    assert await count_rows(clean_engine, "mailing") == 0


@pytest.mark.parametrize("path", ["/api/v1/clients", "/api/v1/mailings", "/api/v1/clients/1"])
async def test_a_body_that_is_not_utf8_json_is_a_422_naming_the_body(
    api: httpx.AsyncClient, path: str
) -> None:
    method = "PATCH" if path.endswith("/1") else "POST"
    response = await api.request(
        method, path, content=b"x\xff\x0f\xc3", headers={"Content-Type": "application/json"}
    )
    assert_invalid(response, "body")


@pytest.mark.parametrize(
    ("content_type", "named"),
    [
        (None, "no Content-Type"),
        ("text/plain", "Content-Type 'text/plain'"),
        ("application/x-www-form-urlencoded", "Content-Type 'application/x-www-form-urlencoded'"),
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/clients", "/api/v1/mailings", "/api/v1/clients/1"])
async def test_json_sent_without_a_json_content_type_is_told_so(
    api: httpx.AsyncClient,
    clean_engine: AsyncEngine,
    path: str,
    content_type: str | None,
    named: str,
) -> None:
    # What `curl -d '{...}'` without -H 'Content-Type: application/json' sends.
    existing = await api.post(
        "/api/v1/clients", json={"phone": "79001234500", "tag": "t", "timezone": "UTC"}
    )
    path = path.replace("/1", f"/{existing.json()['id']}")
    body = b'{"phone": "79001234567", "tag": "t", "timezone": "UTC"}'
    headers = {} if content_type is None else {"Content-Type": content_type}
    method = "PATCH" if path.startswith("/api/v1/clients/") else "POST"

    response = await api.request(method, path, content=body, headers=headers)

    assert_invalid(response, "body")
    assert response.json()["detail"] == [
        {
            "loc": ["body"],
            "msg": f"the body must be JSON, sent as Content-Type: application/json ({named})",
            "type": "content_type",
        }
    ]
    assert await count_rows(clean_engine, "client") == 1
    assert await count_rows(clean_engine, "mailing") == 0


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/clients", "GET, POST"),
        ("/api/v1/clients/7", "DELETE, GET, PATCH"),
        ("/api/v1/mailings/7", "DELETE, GET, PATCH"),
        ("/api/v1/mailings/stats", "GET"),
    ],
)
async def test_a_405_names_every_method_of_the_path(
    api: httpx.AsyncClient, path: str, allowed: str
) -> None:
    response = await api.request("PUT", path)
    assert response.status_code == 405, response.text
    assert response.headers["Allow"] == allowed


async def test_a_word_where_an_id_goes_is_a_405_or_404_not_a_422_for_the_id(
    api: httpx.AsyncClient,
) -> None:
    # /mailings/stats is a path of its own: PATCH there is a method it lacks, not a bad id.
    assert (await api.patch("/api/v1/mailings/stats", json={})).status_code == 405
    assert (await api.get("/api/v1/clients/abc")).status_code == 404
