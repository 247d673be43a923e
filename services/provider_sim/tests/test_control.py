"""The `/_sim/` control API: faults at run time, stats, request paging and reset."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import SimClient


async def test_healthz(sim: SimClient) -> None:
    assert await sim.get("/_sim/healthz") == {"status": "ok"}


async def test_put_changes_only_the_given_fields(sim: SimClient) -> None:
    before = await sim.get("/_sim/faults")

    response = await sim.set_faults(error_ratio=0.25, outage=True)

    assert response.status_code == 200
    after = await sim.get("/_sim/faults")
    assert after == {**before, "error_ratio": 0.25, "outage": True}
    assert before["error_ratio"] == 0.0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"error_ratio": 1.5}, "error_ratio"),
        ({"hang_ratio": -0.1}, "hang_ratio"),
        ({"malformed_ratio": "half"}, "malformed_ratio"),
        ({"latency_ms": -5}, "latency_ms"),
        ({"retry_after_s": True}, "retry_after_s"),
        ({"outage": "yes"}, "outage"),
        ({"seed": 1.5}, "seed"),
        ({"no_such_fault": 1}, "no_such_fault"),
        ({"latency_ms": 10, "status_429_ratio": 2}, "status_429_ratio"),
    ],
)
async def test_bad_fault_values_get_422_naming_the_field_and_change_nothing(
    sim: SimClient, changes: dict[str, Any], field: str
) -> None:
    before = await sim.get("/_sim/faults")

    response = await sim.set_faults(**changes)

    assert response.status_code == 422
    assert response.json()["field"] == field
    assert await sim.get("/_sim/faults") == before


async def test_non_object_fault_body_gets_422(sim: SimClient) -> None:
    response = await sim.http.put(f"{sim.root}/_sim/faults", content=b"[1, 2]")

    assert response.status_code == 422


async def test_faults_switch_at_run_time(sim: SimClient) -> None:
    assert (await sim.send(1)).status_code == 200
    await sim.set_faults(error_ratio=1.0)
    assert (await sim.send(2)).status_code >= 500
    await sim.set_faults(error_ratio=0.0)
    assert (await sim.send(3)).status_code == 200


async def test_stats_count_requests_acceptances_and_duplicates(sim: SimClient) -> None:
    for msg_id in (1, 2, 2, 3):
        await sim.send(msg_id)
    await sim.set_faults(error_ratio=1.0)
    await sim.send(3)
    await sim.send(4)

    stats = await sim.get("/_sim/stats")

    assert stats["requests"] == 6
    assert stats["accepted"] == 4
    assert stats["distinct_ids"] == 4
    assert stats["distinct_accepted"] == 3
    assert stats["duplicates_accepted"] == [2]
    assert stats["by_outcome"]["ok"] == 4
    assert stats["by_outcome"]["error"] == 2
    first = datetime.fromisoformat(stats["first_received_at"])
    last = datetime.fromisoformat(stats["last_received_at"])
    last_accepted = datetime.fromisoformat(stats["last_accepted_at"])
    assert first <= last_accepted <= last
    assert first.utcoffset() is not None


async def test_requests_page_in_arrival_order(sim: SimClient) -> None:
    for msg_id in (10, 11, 12, 13, 14):
        await sim.send(msg_id)

    pages: list[list[int]] = []
    after = 0
    while True:
        page = await sim.get("/_sim/requests", after=after, limit=2)
        if not page["items"]:
            break
        pages.append([item["id"] for item in page["items"]])
        assert [item["index"] for item in page["items"]][-1] == page["next_after"]
        after = page["next_after"]

    assert pages == [[10, 11], [12, 13], [14]]
    assert after == 5


async def test_requests_by_id(sim: SimClient) -> None:
    await sim.send(7)
    await sim.send(8)
    await sim.send(7)

    items = (await sim.get("/_sim/requests", id=7))["items"]

    assert [(item["index"], item["id"]) for item in items] == [(1, 7), (3, 7)]
    assert (await sim.get("/_sim/requests", id=999))["items"] == []


@pytest.mark.parametrize("params", [{"limit": 0}, {"after": -1}, {"after": "x"}, {"id": "abc"}])
async def test_bad_paging_parameters_get_422(sim: SimClient, params: dict[str, Any]) -> None:
    response = await sim.http.get(f"{sim.root}/_sim/requests", params=params)

    assert response.status_code == 422
    assert response.json()["field"] == next(iter(params))


async def test_reset_clears_records_and_restores_startup_faults(sim: SimClient) -> None:
    startup = await sim.get("/_sim/faults")
    await sim.send(1)
    await sim.set_faults(error_ratio=1.0, latency_ms=5)

    response = await sim.http.post(f"{sim.root}/_sim/reset")

    assert response.status_code == 200
    assert await sim.get("/_sim/faults") == startup
    stats = await sim.get("/_sim/stats")
    assert (stats["requests"], stats["accepted"], stats["distinct_ids"]) == (0, 0, 0)
    assert stats["first_received_at"] is None
    assert (await sim.get("/_sim/requests"))["items"] == []
    assert (await sim.send(1)).status_code == 200
    assert (await sim.get("/_sim/requests"))["items"][0]["index"] == 1
