"""/api/v1/clients as an integrator uses it: the directory, its validation, and deletion."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_testing.factories import insert_clients, insert_mailing, status_counts, utcnow

from .conftest import assert_invalid, count_rows, insert_message

CLIENTS = "/api/v1/clients"
BIG_ID = 2**63  # one past the largest BIGINT


async def create(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"phone": "79001234567", "tag": "vip", "timezone": "Europe/Moscow", **fields}
    response = await api.post(CLIENTS, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_create_returns_201_with_id_and_operator_code_from_phone_digits_2_to_4(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post(
        CLIENTS, json={"phone": "79161234567", "tag": "vip", "timezone": "Asia/Vladivostok"}
    )

    assert response.status_code == 201
    body = response.json()
    assert isinstance(body["id"], int)
    assert body["id"] >= 1
    assert body["phone"] == "79161234567"
    assert body["operator_code"] == "916"
    assert body["tag"] == "vip"
    assert body["timezone"] == "Asia/Vladivostok"
    fetched = await api.get(f"{CLIENTS}/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_create_keeps_an_explicit_operator_code(api: httpx.AsyncClient) -> None:
    body = await create(api, phone="79161234567", operator_code="999")

    assert body["operator_code"] == "999"
    assert (await api.get(f"{CLIENTS}/{body['id']}")).json()["operator_code"] == "999"


async def test_tag_defaults_to_empty(api: httpx.AsyncClient) -> None:
    response = await api.post(CLIENTS, json={"phone": "79001234567", "timezone": "UTC"})

    assert response.status_code == 201
    assert response.json()["tag"] == ""


async def test_duplicate_phone_is_409_and_writes_nothing(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    first = await create(api, phone="79001234567")

    response = await api.post(
        CLIENTS, json={"phone": "79001234567", "tag": "other", "timezone": "UTC"}
    )

    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_phone"
    assert "79001234567" in response.json()["detail"]
    assert await count_rows(clean_engine, "client") == 1
    assert (await api.get(f"{CLIENTS}/{first['id']}")).json()["tag"] == "vip"


async def test_each_change_logs_one_line_once_committed_and_a_refused_one_none(
    api: httpx.AsyncClient,
) -> None:
    with structlog.testing.capture_logs() as logs:
        body = await create(api, phone="79161234567")
        refused = await api.post(CLIENTS, json={"phone": "79161234567", "timezone": "UTC"})
        await api.patch(f"{CLIENTS}/{body['id']}", json={"tag": "gold"})
        await api.delete(f"{CLIENTS}/{body['id']}")

    assert refused.status_code == 409
    changes = [
        {key: value for key, value in line.items() if key != "log_level"}
        for line in logs
        if line["event"] in {"client_created", "client_updated", "client_deleted"}
    ]
    assert changes == [
        {
            "event": "client_created",
            "client_id": body["id"],
            "operator_code": "916",
            "tag": "vip",
            "timezone": "Europe/Moscow",
        },
        {"event": "client_updated", "client_id": body["id"], "fields": ["tag"]},
        {"event": "client_deleted", "client_id": body["id"], "messages_cancelled": 0},
    ]


async def test_get_unknown_client_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{CLIENTS}/12345")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_list_pages_by_id_with_limit_and_after(api: httpx.AsyncClient) -> None:
    ids = [(await create(api, phone=f"7900000000{i}"))["id"] for i in range(5)]

    seen: list[int] = []
    pages = 0
    after = 0
    while True:
        response = await api.get(CLIENTS, params={"limit": 2, "after": after})
        assert response.status_code == 200
        page = response.json()
        pages += 1
        seen += [item["id"] for item in page["items"]]
        if page["next_after"] is None:
            break
        assert page["next_after"] == page["items"][-1]["id"]
        after = page["next_after"]

    assert seen == ids
    assert pages == 3
    assert [item["id"] for item in page["items"]] == [ids[4]]


async def test_list_filters_by_tag_operator_code_and_phone(api: httpx.AsyncClient) -> None:
    a = await create(api, phone="79001111111", tag="vip")
    b = await create(api, phone="79011111111", tag="vip")
    c = await create(api, phone="79002222222", tag="new")

    async def ids(**params: str) -> list[int]:
        response = await api.get(CLIENTS, params=params)
        assert response.status_code == 200
        assert response.json()["next_after"] is None
        return [item["id"] for item in response.json()["items"]]

    assert await ids() == [a["id"], b["id"], c["id"]]
    assert await ids(tag="vip") == [a["id"], b["id"]]
    assert await ids(operator_code="900") == [a["id"], c["id"]]
    assert await ids(tag="vip", operator_code="900") == [a["id"]]
    assert await ids(phone="79002222222") == [c["id"]]
    assert await ids(tag="nobody") == []


async def test_patch_changes_only_the_given_fields(api: httpx.AsyncClient) -> None:
    client = await create(api, phone="79001234567", tag="vip", timezone="Europe/Moscow")

    response = await api.patch(f"{CLIENTS}/{client['id']}", json={"tag": "churned"})

    assert response.status_code == 200
    body = response.json()
    assert body["tag"] == "churned"
    assert {k: body[k] for k in ("id", "phone", "operator_code", "timezone")} == {
        "id": client["id"],
        "phone": "79001234567",
        "operator_code": "900",
        "timezone": "Europe/Moscow",
    }
    assert (await api.get(f"{CLIENTS}/{client['id']}")).json()["tag"] == "churned"


async def test_patch_phone_rederives_the_operator_code_unless_given(
    api: httpx.AsyncClient,
) -> None:
    client = await create(api, phone="79001234567")

    derived = await api.patch(f"{CLIENTS}/{client['id']}", json={"phone": "79261234567"})
    explicit = await api.patch(
        f"{CLIENTS}/{client['id']}", json={"phone": "79031234567", "operator_code": "555"}
    )

    assert derived.status_code == 200
    assert derived.json()["operator_code"] == "926"
    assert explicit.status_code == 200
    assert explicit.json()["phone"] == "79031234567"
    assert explicit.json()["operator_code"] == "555"


async def test_patch_phone_to_another_live_clients_phone_is_409(api: httpx.AsyncClient) -> None:
    first = await create(api, phone="79001111111")
    second = await create(api, phone="79002222222")

    response = await api.patch(f"{CLIENTS}/{second['id']}", json={"phone": "79001111111"})

    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_phone"
    assert (await api.get(f"{CLIENTS}/{second['id']}")).json()["phone"] == "79002222222"
    assert (await api.get(f"{CLIENTS}/{first['id']}")).json()["phone"] == "79001111111"


async def test_patch_unknown_client_is_404(api: httpx.AsyncClient) -> None:
    response = await api.patch(f"{CLIENTS}/999", json={"tag": "x"})

    assert response.status_code == 404


async def test_delete_is_204_then_the_client_is_gone(api: httpx.AsyncClient) -> None:
    client = await create(api)

    deleted = await api.delete(f"{CLIENTS}/{client['id']}")

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await api.get(f"{CLIENTS}/{client['id']}")).status_code == 404
    assert (await api.patch(f"{CLIENTS}/{client['id']}", json={"tag": "x"})).status_code == 404
    assert (await api.delete(f"{CLIENTS}/{client['id']}")).status_code == 404
    assert (await api.get(CLIENTS)).json()["items"] == []


async def test_a_deleted_clients_phone_can_be_reused(api: httpx.AsyncClient) -> None:
    old = await create(api, phone="79001234567")
    assert (await api.delete(f"{CLIENTS}/{old['id']}")).status_code == 204

    new = await create(api, phone="79001234567", tag="again")

    assert new["id"] != old["id"]
    listed = (await api.get(CLIENTS, params={"phone": "79001234567"})).json()["items"]
    assert [c["id"] for c in listed] == [new["id"]]


async def test_deleting_a_client_cancels_its_idle_messages_and_keeps_its_history(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    statuses = ["pending", "retrying", "deferred", "sent", "sending"]
    async with clean_engine.begin() as conn:
        gone, other = await insert_clients(conn, 2)
        mailings = [await insert_mailing(conn) for _ in statuses]
        later = utcnow() + timedelta(hours=3)
        for mailing_id, status in zip(mailings, statuses, strict=True):
            await insert_message(
                conn,
                mailing_id,
                gone,
                status,
                sent_at=utcnow() if status == "sent" else None,
                next_attempt_at=later if status == "deferred" else None,
            )
            await insert_message(conn, mailing_id, other, "pending")

    assert (await api.delete(f"{CLIENTS}/{gone}")).status_code == 204

    async with clean_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT mailing_id, client_id, status, next_attempt_at FROM message"
                    " ORDER BY mailing_id, client_id"
                )
            )
        ).all()
        client_rows = await conn.scalar(text("SELECT count(*) FROM client"))
    mine = {r.mailing_id: r.status for r in rows if r.client_id == gone}
    assert [mine[m] for m in mailings] == ["cancelled", "cancelled", "cancelled", "sent", "sending"]
    assert all(r.next_attempt_at is None for r in rows if r.status == "cancelled")
    assert {r.status for r in rows if r.client_id == other} == {"pending"}
    assert client_rows == 2  # a soft delete: the history still points at the client
    # The deleted client's messages still count in the statistics.
    stats = (await api.get(f"/api/v1/mailings/{mailings[3]}/stats")).json()
    assert stats["total"] == 2
    assert stats["by_status"]["sent"] == 1
    stats = (await api.get(f"/api/v1/mailings/{mailings[0]}/stats")).json()
    assert stats["total"] == 2
    assert stats["by_status"]["cancelled"] == 1
    async with clean_engine.connect() as conn:
        assert await status_counts(conn, mailings[0]) == {"cancelled": 1, "pending": 1}


VALID = {"phone": "79001234567", "tag": "vip", "timezone": "Europe/Moscow"}

# (case, body change, field the 422 must name)
BAD_CREATES: list[tuple[str, dict[str, Any], str]] = [
    ("phone with 10 digits", {"phone": "7900123456"}, "phone"),
    ("phone with 12 digits", {"phone": "790012345678"}, "phone"),
    ("phone starting with 8", {"phone": "89001234567"}, "phone"),
    ("phone with a letter", {"phone": "7900123456a"}, "phone"),
    ("phone with a plus", {"phone": "+79001234567"}, "phone"),
    ("phone as a number", {"phone": 79001234567}, "phone"),
    ("operator code of 2 digits", {"operator_code": "12"}, "operator_code"),
    ("operator code with a letter", {"operator_code": "12a"}, "operator_code"),
    ("unknown time zone", {"timezone": "Mars/Olympus"}, "timezone"),
    ("empty time zone", {"timezone": ""}, "timezone"),
    ("tag of 65 characters", {"tag": "x" * 65}, "tag"),
    ("unknown extra field", {"nickname": "bob"}, "nickname"),
]


async def test_create_with_a_bad_field_is_422_naming_it_and_writes_nothing(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    for case, change, field in BAD_CREATES:
        response = await api.post(CLIENTS, json={**VALID, **change})

        assert_invalid(response, "body", field, case=case)
    assert await count_rows(clean_engine, "client") == 0


async def test_create_without_phone_or_timezone_is_422(api: httpx.AsyncClient) -> None:
    missing_phone = await api.post(CLIENTS, json={"tag": "x", "timezone": "UTC"})
    missing_timezone = await api.post(CLIENTS, json={"phone": "79001234567"})

    assert_invalid(missing_phone, "body", "phone")
    assert_invalid(missing_timezone, "body", "timezone")


async def test_patch_with_a_bad_field_is_422_and_changes_nothing(api: httpx.AsyncClient) -> None:
    client = await create(api)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"phone": "89001234567"}, "phone"),
        ({"operator_code": "1234"}, "operator_code"),
        ({"timezone": "Europe/Nowhere"}, "timezone"),
        ({"tag": "y" * 65}, "tag"),
        ({"id": 5}, "id"),
    ]

    for change, field in cases:
        response = await api.patch(f"{CLIENTS}/{client['id']}", json={"tag": "new", **change})

        assert_invalid(response, "body", field, case=str(change))
    assert (await api.get(f"{CLIENTS}/{client['id']}")).json() == client


async def test_ids_outside_bigint_or_not_positive_integers_are_422_not_500(
    api: httpx.AsyncClient,
) -> None:
    for client_id in (str(BIG_ID), "99999999999999999999999", "0"):
        for method in ("GET", "PATCH", "DELETE"):
            response = await api.request(method, f"{CLIENTS}/{client_id}", json={"tag": "x"})

            assert_invalid(response, "path", "client_id", case=f"{method} {client_id}")


async def test_a_path_that_is_no_id_at_all_is_an_unknown_client(api: httpx.AsyncClient) -> None:
    # Ids are digits: /clients/abc names no client (and /mailings/stats is another resource).
    for client_id in ("-1", "abc", "1.5"):
        for method in ("GET", "PATCH", "DELETE"):
            response = await api.request(method, f"{CLIENTS}/{client_id}", json={"tag": "x"})

            assert response.status_code == 404, f"{method} {client_id}: {response.text}"
            assert response.json()["code"] == "not_found"


async def test_list_with_a_bad_query_is_422(api: httpx.AsyncClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"after": -1}, "after"),
        ({"after": BIG_ID}, "after"),
        ({"phone": "123"}, "phone"),
        ({"operator_code": "abcd"}, "operator_code"),
    ]

    for params, field in cases:
        assert_invalid(await api.get(CLIENTS, params=params), "query", field, case=str(params))


async def test_list_accepts_the_page_size_bounds(api: httpx.AsyncClient) -> None:
    await create(api)

    assert (await api.get(CLIENTS, params={"limit": 1})).json()["next_after"] is not None
    assert (await api.get(CLIENTS, params={"limit": 1000})).json()["next_after"] is None


async def test_a_new_time_zone_makes_the_clients_deferred_messages_due_now(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    later = utcnow() + timedelta(hours=5)
    async with clean_engine.begin() as conn:
        moving, staying = await insert_clients(conn, 2, timezone="Europe/Moscow")
        mailing_id = await insert_mailing(conn)
        deferred = await insert_message(conn, mailing_id, moving, "deferred", next_attempt_at=later)
        other = await insert_message(conn, mailing_id, staying, "deferred", next_attempt_at=later)

    async def due() -> dict[int, Any]:
        async with clean_engine.connect() as conn:
            rows = await conn.execute(text("SELECT id, next_attempt_at FROM message"))
            return {row.id: row.next_attempt_at for row in rows}

    same = await api.patch(f"{CLIENTS}/{moving}", json={"timezone": "Europe/Moscow", "tag": "x"})
    assert same.status_code == 200
    assert (await due())[deferred] == later

    before = utcnow()
    moved = await api.patch(f"{CLIENTS}/{moving}", json={"timezone": "Asia/Vladivostok"})
    assert moved.status_code == 200, moved.text
    after = await due()
    assert before - timedelta(seconds=1) <= after[deferred] <= utcnow() + timedelta(seconds=1)
    assert after[other] == later
