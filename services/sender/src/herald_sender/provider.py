"""HTTP client of the provider's ``POST /send/{id}``; every failure mode becomes a judgement.

aiohttp rather than httpx: on these machines httpx's pool bookkeeping caps out near 250
requests/s at 50 in flight, aiohttp sustains thousands (see docs/performance.md).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import orjson

from herald_common.rules.replies import ReplyJudgement, Verdict, excerpt, judge_reply

MAX_BODY_BYTES = 64 * 1024
# Serialised once with orjson: aiohttp's json= path costs several percent of a sender's CPU.
JSON_HEADERS = {"Content-Type": "application/json"}
# A connect limit below this fails at once even on loopback; the guard keeps us above it.
MIN_CONNECT_S = 0.001


@dataclass(frozen=True, slots=True)
class CallResult:
    judgement: ReplyJudgement
    http_status: int | None
    latency_ms: float
    body_excerpt: str
    # How the call ended at the transport level: "http" (a reply), "timeout", "connection".
    ended_by: str = "http"

    @property
    def metric_label(self) -> str:
        """How the call went, as herald_provider_calls_total's bounded ``outcome`` label."""
        if self.ended_by == "timeout":
            return "timeout"
        if self.ended_by == "connection":
            return "connection_error"
        return self.judgement.verdict.value


class ProviderClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        concurrency: int,
        connect_timeout_s: float,
        timeout_s: float,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._limit = concurrency
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ProviderClient:
        connector = aiohttp.TCPConnector(
            limit=self._limit, limit_per_host=self._limit, keepalive_timeout=30
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers={"Authorization": f"Bearer {self._token}"},
            raise_for_status=False,
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(
        self, message_id: int, phone: str, text: str, connect_within_s: float | None = None
    ) -> CallResult:
        """One call. ``connect_within_s``: the time left before the mailing's end; getting a
        connection (from the pool or a new one) must not take longer, so that a slow connect
        cannot carry the request past the end."""
        assert self._session is not None, "use ProviderClient as an async context manager"
        payload = orjson.dumps({"id": message_id, "phone": int(phone), "text": text})
        timeout = self._timeout
        if connect_within_s is not None and connect_within_s < (timeout.sock_connect or 0):
            timeout = aiohttp.ClientTimeout(
                total=timeout.total,
                connect=max(connect_within_s, MIN_CONNECT_S),
                sock_connect=max(connect_within_s, MIN_CONNECT_S),
            )
        started = time.perf_counter()
        uncertain = True  # until we know the request never left
        try:
            async with self._session.post(
                f"{self._base}/send/{message_id}",
                data=payload,
                headers=JSON_HEADERS,
                timeout=timeout,
            ) as resp:
                body = await resp.content.read(MAX_BODY_BYTES)
                judgement = judge_reply(resp.status, body, resp.headers.get("Retry-After"))
                return CallResult(judgement, resp.status, _ms(started), excerpt(body))
        except aiohttp.ConnectionTimeoutError:
            # No connection in time: the request never left.
            reason, ended_by, uncertain = (
                "timeout: no connection within the limit",
                "timeout",
                False,
            )
        except TimeoutError:
            # The request may have been written: the provider may have taken it.
            reason, ended_by = "timeout: no answer within the limit", "timeout"
        except aiohttp.ClientConnectorError as error:
            reason = f"connection error: {type(error).__name__}: {error}"
            ended_by, uncertain = "connection", False
        except aiohttp.ClientConnectionError as error:
            # Dropped after connecting (ServerDisconnectedError, a reset mid-reply).
            reason = f"connection error: {type(error).__name__}: {error}"
            ended_by = "connection"
        except aiohttp.ClientError as error:
            reason, ended_by = f"HTTP client error: {type(error).__name__}: {error}", "connection"
        except asyncio.CancelledError:
            raise
        judgement = ReplyJudgement(Verdict.TRANSIENT, reason, uncertain=uncertain)
        return CallResult(judgement, None, _ms(started), "", ended_by)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
