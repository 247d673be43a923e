"""Statistics and message lists of mailings, as an operator reads them."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.statuses import ALL_STATUSES
from herald_testing.factories import insert_clients, insert_mailing, utcnow

from .conftest import assert_invalid, insert_message, insert_messages

MAILINGS = "/api/v1/mailings"
STATUSES = [s.value for s in ALL_STATUSES]


def zeros(**counts: int) -> dict[str, int]:
    return {status: counts.get(status, 0) for status in STATUSES}


async def test_stats_of_one_mailing_count_every_status_including_zeros(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    assert STATUSES == [
        "pending",
        "sending",
        "retrying",
        "deferred",
        "paused",
        "sent",
        "failed",
        "expired",
        "cancelled",
    ]
    async with clean_engine.begin() as conn:
        clients = await insert_clients(conn, 6)
        mailing_id = await insert_mailing(conn)
        empty_id = await insert_mailing(conn)
        await insert_messages(
            conn, mailing_id, clients, ["sent", "sent", "sent", "failed", "pending", "expired"]
        )

    response = await api.get(f"{MAILINGS}/{mailing_id}/stats")
    empty = await api.get(f"{MAILINGS}/{empty_id}/stats")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == mailing_id
    assert body["state"] == "running"
    assert body["total"] == 6
    assert body["by_status"] == zeros(sent=3, failed=1, pending=1, expired=1)
    assert empty.status_code == 200
    assert empty.json()["total"] == 0
    assert empty.json()["by_status"] == zeros()


async def test_stats_of_all_mailings_list_every_live_one_and_add_up(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        clients = await insert_clients(conn, 4)
        first = await insert_mailing(conn)
        second = await insert_mailing(conn, starts_at=utcnow() + timedelta(hours=1))
        quiet = await insert_mailing(conn)
        deleted = await insert_mailing(conn)
        await insert_messages(conn, first, clients, ["sent", "sent", "failed", "cancelled"])
        await insert_messages(conn, second, clients[:2], ["deferred", "sent"])
        await insert_messages(conn, deleted, clients[:1], ["pending"])
    assert (await api.delete(f"{MAILINGS}/{deleted}")).status_code == 204

    response = await api.get(f"{MAILINGS}/stats")

    assert response.status_code == 200
    body = response.json()
    by_id = {m["id"]: m for m in body["mailings"]}
    assert list(by_id) == [first, second, quiet]
    assert by_id[first]["total"] == 4
    assert by_id[first]["by_status"] == zeros(sent=2, failed=1, cancelled=1)
    assert by_id[second]["total"] == 2
    assert by_id[second]["by_status"] == zeros(deferred=1, sent=1)
    assert by_id[second]["state"] == "scheduled"
    assert by_id[quiet]["total"] == 0
    assert by_id[quiet]["by_status"] == zeros()
    assert body["totals"] == {
        "mailings": 3,
        "total": 6,
        "by_status": zeros(sent=3, failed=1, cancelled=1, deferred=1),
    }


async def test_stats_of_all_mailings_when_there_are_none(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{MAILINGS}/stats")

    assert response.status_code == 200
    assert response.json() == {
        "mailings": [],
        "totals": {"mailings": 0, "total": 0, "by_status": zeros()},
    }


async def test_messages_are_paged_and_filtered_by_status(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    sent_at = utcnow() - timedelta(minutes=1)
    async with clean_engine.begin() as conn:
        clients = await insert_clients(conn, 5)
        mailing_id = await insert_mailing(conn)
        other_id = await insert_mailing(conn)
        ids = [
            await insert_message(conn, mailing_id, clients[0], "sent", sent_at=sent_at),
            *await insert_messages(
                conn, mailing_id, clients[1:], ["pending", "sent", "failed", "pending"]
            ),
        ]
        await insert_messages(conn, other_id, clients, ["pending"] * 5)

    url = f"{MAILINGS}/{mailing_id}/messages"
    first = (await api.get(url, params={"limit": 2})).json()
    second = (await api.get(url, params={"limit": 2, "after": first["next_after"]})).json()
    third = (await api.get(url, params={"limit": 2, "after": second["next_after"]})).json()
    pending = (await api.get(url, params={"status": "pending"})).json()
    expired = (await api.get(url, params={"status": "expired"})).json()

    assert [m["id"] for m in first["items"]] == ids[:2]
    assert first["next_after"] == ids[1]
    assert [m["id"] for m in second["items"]] == ids[2:4]
    assert [m["id"] for m in third["items"]] == ids[4:]
    assert third["next_after"] is None
    assert [m["id"] for m in pending["items"]] == [ids[1], ids[4]]
    assert {m["status"] for m in pending["items"]} == {"pending"}
    assert expired == {"items": [], "next_after": None}
    item = first["items"][0]
    assert item["mailing_id"] == mailing_id
    assert item["client_id"] == clients[0]
    assert item["status"] == "sent"
    assert item["attempts"] == 0
    assert item["last_error"] is None
    assert datetime.fromisoformat(item["sent_at"]) == sent_at
    assert_invalid(await api.get(url, params={"status": "lost"}), "query", "status")
    assert_invalid(await api.get(url, params={"limit": 0}), "query", "limit")


async def test_unknown_or_deleted_mailing_is_404_for_stats_and_messages(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        deleted = await insert_mailing(conn)
    assert (await api.delete(f"{MAILINGS}/{deleted}")).status_code == 204

    for mailing_id in (deleted, deleted + 1000):
        for suffix in ("stats", "messages"):
            response = await api.get(f"{MAILINGS}/{mailing_id}/{suffix}")

            assert response.status_code == 404, (mailing_id, suffix)
            assert response.json()["code"] == "not_found"
            assert str(mailing_id) in response.json()["detail"]


async def test_stats_of_one_mailing_report_progress_rate_and_estimated_finish(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    now = utcnow()
    async with clean_engine.begin() as conn:
        clients = await insert_clients(conn, 10)
        mailing_id = await insert_mailing(
            conn, starts_at=now - timedelta(minutes=5), ends_at=now + timedelta(hours=1)
        )
        await insert_messages(
            conn, mailing_id, clients, ["sent"] * 5 + ["failed"] + ["pending"] * 4
        )
        await conn.execute(
            text("UPDATE mailing SET started_at = :at WHERE id = :id"),
            {"at": now - timedelta(minutes=5), "id": mailing_id},
        )
        # A minute ago 3 were settled: 3 more since, so 0.05/s, and 4 left → 80 s to go.
        await conn.execute(
            text(
                "INSERT INTO mailing_progress (mailing_id, sampled_at, done) "
                "VALUES (:id, now() - interval '60 seconds', 3), (:id, now() - interval '3 s', 6)"
            ),
            {"id": mailing_id},
        )

    body = (await api.get(f"{MAILINGS}/{mailing_id}/stats")).json()

    progress = body["progress"]
    assert (progress["done"], progress["total"], progress["percent"]) == (6, 10, 60.0)
    assert progress["rate_per_s"] == pytest.approx(0.05, abs=0.002)
    finish = datetime.fromisoformat(progress["estimated_finish_at"])
    assert now + timedelta(seconds=70) < finish < utcnow() + timedelta(seconds=90)

    # One of the four left now waits for its client's window: no finish is promised.
    async with clean_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE message SET status = 'deferred' WHERE id = "
                "(SELECT min(id) FROM message WHERE mailing_id = :id AND status = 'pending')"
            ),
            {"id": mailing_id},
        )
    waiting = (await api.get(f"{MAILINGS}/{mailing_id}/stats")).json()
    assert waiting["by_status"]["deferred"] == 1
    assert waiting["progress"]["rate_per_s"] == pytest.approx(0.05, abs=0.002)
    assert waiting["progress"]["estimated_finish_at"] is None


async def test_progress_of_a_finished_mailing_has_no_estimate(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    now = utcnow()
    async with clean_engine.begin() as conn:
        clients = await insert_clients(conn, 2)
        mailing_id = await insert_mailing(
            conn, starts_at=now - timedelta(hours=2), ends_at=now - timedelta(hours=1)
        )
        await insert_messages(conn, mailing_id, clients, ["sent", "expired"])

    progress = (await api.get(f"{MAILINGS}/{mailing_id}/stats")).json()["progress"]

    assert progress["done"] == progress["total"] == 2
    assert progress["percent"] == 100.0
    assert progress["estimated_finish_at"] is None
