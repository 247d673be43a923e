"""Operator controls: pause, resume, and re-sending the failed messages of a mailing."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_testing.factories import insert_clients, insert_mailing, utcnow

from .conftest import insert_messages

MAILINGS = "/api/v1/mailings"


async def statuses(engine: AsyncEngine) -> list[tuple[str, int, bool]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT status, attempts, next_attempt_at IS NOT NULL FROM message ORDER BY id")
        )
        return [(r[0], r[1], r[2]) for r in rows]


async def test_pause_parks_idle_messages_and_resume_requeues_each_once(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        clients = await insert_clients(conn, 6)
        mailing_id = await insert_mailing(conn)
        await insert_messages(
            conn,
            mailing_id,
            clients,
            ["pending", "retrying", "deferred", "sending", "sent", "failed"],
        )

    paused = await api.post(f"{MAILINGS}/{mailing_id}/pause")

    assert paused.status_code == 200
    assert paused.json()["state"] == "paused"
    assert paused.json()["paused_at"] is not None
    assert [s for s, _, _ in await statuses(clean_engine)] == [
        "paused",
        "paused",
        "paused",
        "sending",
        "sent",
        "failed",
    ]
    listed = await api.get(MAILINGS, params={"state": "paused"})
    assert [m["id"] for m in listed.json()["items"]] == [mailing_id]
    assert (await api.post(f"{MAILINGS}/{mailing_id}/pause")).status_code == 200  # idempotent

    resumed = await api.post(f"{MAILINGS}/{mailing_id}/resume")

    assert resumed.status_code == 200
    assert resumed.json()["state"] == "running"
    assert resumed.json()["paused_at"] is None
    # Deferred with next_attempt_at = now: the scheduler queues each of them once.
    assert await statuses(clean_engine) == [
        ("deferred", 0, True),
        ("deferred", 0, True),
        ("deferred", 0, True),
        ("sending", 0, False),
        ("sent", 0, False),
        ("failed", 0, False),
    ]
    assert (await api.post(f"{MAILINGS}/{mailing_id}/resume")).status_code == 200


async def test_retry_failed_gives_failed_messages_a_new_round(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        clients = await insert_clients(conn, 4)
        mailing_id = await insert_mailing(conn)
        await insert_messages(conn, mailing_id, clients, ["failed", "failed", "sent", "expired"])
        await conn.execute(text("UPDATE message SET attempts = 10"))
        await conn.execute(text("UPDATE mailing SET finished_at = now()"))

    response = await api.post(f"{MAILINGS}/{mailing_id}/retry-failed")

    assert response.status_code == 200
    assert response.json() == {"requeued": 2}
    assert await statuses(clean_engine) == [
        ("deferred", 0, True),
        ("deferred", 0, True),
        ("sent", 10, False),
        ("expired", 10, False),
    ]
    mailing = (await api.get(f"{MAILINGS}/{mailing_id}")).json()
    assert mailing["finished_at"] is None
    assert mailing["state"] == "running"


async def test_retry_failed_of_a_paused_mailing_waits_for_the_resume(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        clients = await insert_clients(conn, 1)
        mailing_id = await insert_mailing(conn)
        await insert_messages(conn, mailing_id, clients, ["failed"])
    await api.post(f"{MAILINGS}/{mailing_id}/pause")

    assert (await api.post(f"{MAILINGS}/{mailing_id}/retry-failed")).json() == {"requeued": 1}
    assert await statuses(clean_engine) == [("paused", 0, False)]


async def test_controls_are_refused_after_the_end_and_404_for_unknown_mailings(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    now = utcnow()
    async with clean_engine.begin() as conn:
        ended = await insert_mailing(
            conn, starts_at=now - timedelta(hours=2), ends_at=now - timedelta(hours=1)
        )
    for action in ("pause", "resume", "retry-failed"):
        refused = await api.post(f"{MAILINGS}/{ended}/{action}")
        assert refused.status_code == 409, action
        assert refused.json()["code"] == "conflict"
        assert "has ended" in refused.json()["detail"]
        assert (await api.post(f"{MAILINGS}/999999/{action}")).status_code == 404


async def test_a_finished_mailing_cannot_be_paused_until_retry_failed_reopens_it(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    async with clean_engine.begin() as conn:
        clients = await insert_clients(conn, 2)
        mailing_id = await insert_mailing(conn)
        await insert_messages(conn, mailing_id, clients, ["sent", "failed"])
        await conn.execute(text("UPDATE mailing SET finished_at = now()"))

    refused = await api.post(f"{MAILINGS}/{mailing_id}/pause")

    assert refused.status_code == 409
    assert refused.json() == {
        "detail": f"mailing {mailing_id} has finished: every message is settled",
        "code": "conflict",
    }
    mailing = (await api.get(f"{MAILINGS}/{mailing_id}")).json()
    assert mailing["state"] == "finished"
    assert mailing["paused_at"] is None
    assert (await api.post(f"{MAILINGS}/{mailing_id}/retry-failed")).json() == {"requeued": 1}
    paused = await api.post(f"{MAILINGS}/{mailing_id}/pause")
    assert paused.status_code == 200
    assert paused.json()["state"] == "paused"
    assert [s for s, _, _ in await statuses(clean_engine)] == ["sent", "paused"]
