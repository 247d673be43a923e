"""Idempotency-Key on the creating POSTs: a retry gets the first answer, never a second entity."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from .conftest import assert_invalid, count_rows


def mailing_body(text: str = "hello") -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "starts_at": (now + timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(hours=2)).isoformat(),
        "text": text,
        "filter": {},
    }


async def test_a_retried_client_create_returns_the_first_answer(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    body = {"phone": "79001234567", "timezone": "UTC", "tag": "vip"}
    key = {"Idempotency-Key": "create-client-1"}
    first = await api.post("/api/v1/clients", json=body, headers=key)
    again = await api.post("/api/v1/clients", json=body, headers=key)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await count_rows(clean_engine, "client") == 1
    # Without a key, the same body is a new request (here: a duplicate phone).
    assert (await api.post("/api/v1/clients", json=body)).status_code == 409


async def test_concurrent_retries_of_a_mailing_create_make_one_mailing(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    body = mailing_body()
    key = {"Idempotency-Key": "mailing-2026-12-02"}
    answers = await asyncio.gather(
        *(api.post("/api/v1/mailings", json=body, headers=key) for _ in range(5))
    )

    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert await count_rows(clean_engine, "mailing") == 1


async def test_the_same_key_for_a_different_request_is_a_422(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    key = {"Idempotency-Key": "k-1"}
    assert (
        await api.post("/api/v1/mailings", json=mailing_body("one"), headers=key)
    ).status_code == 201
    other = await api.post("/api/v1/mailings", json=mailing_body("two"), headers=key)

    assert_invalid(other, "header", "Idempotency-Key")
    assert other.json()["detail"][0]["type"] == "idempotency_key_reused"
    assert await count_rows(clean_engine, "mailing") == 1


async def test_a_refused_request_keeps_no_key(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    body = {"phone": "79001234567", "timezone": "UTC"}
    assert (await api.post("/api/v1/clients", json=body)).status_code == 201
    key = {"Idempotency-Key": "dup"}
    assert (await api.post("/api/v1/clients", json=body, headers=key)).status_code == 409
    # Nothing was stored for the key: once the phone is free, the retry does the work.
    client_id = (await api.get("/api/v1/clients")).json()["items"][0]["id"]
    assert (await api.delete(f"/api/v1/clients/{client_id}")).status_code == 204
    retried = await api.post("/api/v1/clients", json=body, headers=key)
    assert retried.status_code == 201
    assert await count_rows(clean_engine, "idempotency_key") == 1


async def test_a_malformed_key_is_a_422_naming_the_header(api: httpx.AsyncClient) -> None:
    for bad in ("", "x" * 201, "with space"):
        response = await api.post(
            "/api/v1/mailings", json=mailing_body(), headers={"Idempotency-Key": bad}
        )
        assert_invalid(response, "header", "Idempotency-Key", case=repr(bad))
