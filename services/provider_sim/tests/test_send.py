"""The send endpoint as Herald's sender sees it: auth, validation and every fault mode."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from herald_provider_sim import SimConfig, make_token, running_simulator

if TYPE_CHECKING:
    from conftest import SimClient

PHONE = 79001234567
OK_BODY = {"code": 0, "message": "OK"}


def is_success_body(response: httpx.Response) -> bool:
    try:
        return bool(response.json() == OK_BODY)
    except ValueError:
        return False


async def test_valid_send_is_accepted_and_recorded(sim: SimClient) -> None:
    response = await sim.send(42)

    assert response.status_code == 200
    assert response.json() == OK_BODY
    records = (await sim.get("/_sim/requests", id=42))["items"]
    assert [(r["id"], r["phone"], r["text"], r["outcome"], r["status"]) for r in records] == [
        (42, PHONE, "hello 42", "ok", 200)
    ]
    assert records[0]["received_at"].endswith("+00:00")
    assert (await sim.get("/_sim/stats"))["accepted"] == 1


async def test_unversioned_path_serves_the_same_contract(sim: SimClient) -> None:
    response = await sim.http.post(
        f"{sim.root}/send/9",
        json={"id": 9, "phone": PHONE, "text": "x"},
        headers={"Authorization": f"Bearer {sim.token}"},
    )

    assert response.status_code == 200
    assert response.json() == OK_BODY


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer not-a-jwt",
        f"Bearer {make_token('some-other-secret-of-a-decent-length-0123')}",
        "Basic dXNlcjpwYXNz",
    ],
)
async def test_missing_or_invalid_token_gets_401_and_is_not_accepted(
    sim: SimClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await sim.http.post(
        f"{sim.base_url}/send/1", json={"id": 1, "phone": PHONE, "text": "x"}, headers=headers
    )

    assert response.status_code == 401
    assert response.json()["code"] == 401
    stats = await sim.get("/_sim/stats")
    assert (stats["requests"], stats["accepted"], stats["rejected"]["401"]) == (0, 0, 1)


async def test_expired_token_gets_401(sim: SimClient) -> None:
    response = await sim.send(1, token=make_token(sim.secret, ttl_s=-60))

    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"id": 2, "phone": PHONE, "text": "id differs from the path"},
        {"id": "1", "phone": PHONE, "text": "id as a string"},
        {"id": 1, "phone": "79001234567", "text": "phone as a string"},
        {"id": 1, "phone": 7900123456, "text": "ten digits"},
        {"id": 1, "phone": 89001234567, "text": "starts with 8"},
        {"id": 1, "phone": PHONE, "text": 5},
        {"id": 1, "phone": PHONE},
        [1, PHONE, "not an object"],
    ],
)
async def test_body_not_matching_the_contract_gets_400(sim: SimClient, body: Any) -> None:
    response = await sim.send(1, body=body)

    assert response.status_code == 400
    assert response.json()["code"] == 400
    assert (await sim.get("/_sim/stats"))["requests"] == 0


async def test_non_json_body_and_non_numeric_path_get_400(sim: SimClient) -> None:
    headers = {"Authorization": f"Bearer {sim.token}"}
    not_json = await sim.http.post(f"{sim.base_url}/send/1", content=b"{oops", headers=headers)
    bad_path = await sim.http.post(
        f"{sim.base_url}/send/abc", json={"id": 1, "phone": PHONE, "text": "x"}, headers=headers
    )

    assert (not_json.status_code, bad_path.status_code) == (400, 400)


async def test_error_ratio_one_gives_5xx_with_json_body(sim: SimClient) -> None:
    await sim.set_faults(error_ratio=1.0)

    responses = [await sim.send(i) for i in range(1, 31)]

    statuses = {r.status_code for r in responses}
    assert statuses <= {500, 502, 503}
    assert 500 in statuses
    assert len(statuses) > 1
    assert all(r.json()["code"] == r.status_code for r in responses)
    stats = await sim.get("/_sim/stats")
    assert (stats["accepted"], stats["by_outcome"]["error"]) == (0, 30)


async def test_hang_makes_the_client_time_out(sim: SimClient) -> None:
    await sim.set_faults(hang_ratio=1.0)

    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await sim.send(5, wait_s=0.5)

    assert time.monotonic() - started < 2
    stats = await sim.get("/_sim/stats")
    assert (stats["by_outcome"]["hang"], stats["accepted"]) == (1, 0)


async def test_hang_is_capped_by_hang_s_with_a_dropped_connection(sim: SimClient) -> None:
    await sim.set_faults(hang_ratio=1.0, hang_s=0.2)

    with pytest.raises(httpx.RemoteProtocolError):
        await sim.send(5, wait_s=3)


async def test_stopping_the_server_ends_hung_requests_promptly() -> None:
    secret = "stop-test-secret-of-a-decent-length-012345"
    async with httpx.AsyncClient(timeout=10) as http:
        async with running_simulator("127.0.0.1", 0, SimConfig(secret=secret)) as url:
            await http.put(url.removesuffix("/v1") + "/_sim/faults", json={"hang_ratio": 1})
            hung = asyncio.create_task(
                http.post(
                    f"{url}/send/1",
                    json={"id": 1, "phone": PHONE, "text": "x"},
                    headers={"Authorization": f"Bearer {make_token(secret)}"},
                )
            )
            await asyncio.sleep(0.2)
            stop_started = time.monotonic()
        stop_took = time.monotonic() - stop_started

        with pytest.raises(httpx.TransportError):
            await hung
    # Well short of the hang (an hour) and of aiohttp's own 60 s shutdown timeout.
    assert stop_took < 5


async def test_malformed_gives_200_with_an_unusable_body(sim: SimClient) -> None:
    await sim.set_faults(malformed_ratio=1.0)

    responses = [await sim.send(i) for i in range(1, 41)]

    assert {r.status_code for r in responses} == {200}
    assert not any(is_success_body(r) for r in responses)
    kinds = set()
    for response in responses:
        try:
            kinds.add(type(json.loads(response.content)).__name__)
        except ValueError:
            kinds.add("empty" if not response.content else "unparseable")
    assert kinds == {"dict", "empty", "unparseable"}
    stats = await sim.get("/_sim/stats")
    assert (stats["accepted"], stats["by_outcome"]["malformed"]) == (0, 40)


async def test_outage_drops_the_connection_and_recovers_when_switched_off(
    sim: SimClient,
) -> None:
    await sim.set_faults(outage=True)

    with pytest.raises(httpx.TransportError):
        await sim.send(3)

    await sim.set_faults(outage=False)
    assert (await sim.send(3)).status_code == 200
    records = (await sim.get("/_sim/requests", id=3))["items"]
    assert [r["outcome"] for r in records] == ["outage", "ok"]


async def test_unauthorized_answers_401_even_to_a_valid_token(sim: SimClient) -> None:
    await sim.set_faults(unauthorized=True)

    response = await sim.send(4)

    assert response.status_code == 401
    assert (await sim.get("/_sim/stats"))["accepted"] == 0


async def test_429_carries_retry_after(sim: SimClient) -> None:
    await sim.set_faults(status_429_ratio=1.0, retry_after_s=3)

    response = await sim.send(6)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert (await sim.get("/_sim/stats"))["by_outcome"]["429"] == 1


async def test_latency_delays_the_answer(sim: SimClient) -> None:
    await sim.set_faults(latency_ms=200, latency_jitter_ms=50)

    started = time.monotonic()
    response = await sim.send(8)

    assert response.status_code == 200
    assert 0.2 <= time.monotonic() - started < 1.5


async def test_ratios_apply_per_request_and_the_seed_reproduces_them(sim: SimClient) -> None:
    async def outcomes() -> list[int]:
        await sim.set_faults(error_ratio=0.5, seed=123)
        return [(await sim.send(i)).status_code for i in range(1, 101)]

    first = await outcomes()
    second = await outcomes()

    assert first == second
    assert 30 <= sum(status == 200 for status in first) <= 70
