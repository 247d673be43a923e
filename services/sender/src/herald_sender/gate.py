"""What stands between the senders and the provider.

- A circuit breaker per replica (``rules/breaker.py``): a failing or token-refusing provider
  gets one probe call per cooldown from each replica, not a flood.
- A throttle shared by every replica, in PostgreSQL: a 429's ``Retry-After`` pauses them all,
  and an optional global rate limit (``HERALD_RATE_LIMIT_PER_S``) is enforced as a GCRA over
  one row, so replicas together never exceed it.

What each reply means (which one counts as what, which one pauses) is ``rules/outcomes.py``'s
to say; the gate carries it out.

Waiting happens before messages are claimed, so nothing claimed waits here; messages claimed
just before the gate closed are postponed without spending an attempt.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.clock import DatabaseClock
from herald_common.models import ProviderThrottle
from herald_common.rules.breaker import CallKind, CircuitBreaker, CircuitState
from herald_common.rules.outcomes import BREAKER_KINDS, Postponement, Reply
from herald_sender import metrics
from herald_sender.provider import CallResult

log = structlog.get_logger()

THROTTLE_ROW = "provider"  # provider_throttle.name
_THE_ROW = ProviderThrottle.name == THROTTLE_ROW
REFRESH_S = 1.0
DEFAULT_RETRY_AFTER_S = 1.0
MAX_NAP_S = 1.0
# A 429 asking for a pause within this of the one already held is not written again.
PAUSE_SLACK_S = 1.0


@dataclass(frozen=True, slots=True)
class Admission:
    count: int
    probe: bool


class ProviderGate:
    def __init__(
        self,
        engine: AsyncEngine,
        breaker: CircuitBreaker,
        rate_per_s: float = 0.0,
        burst: int = 50,
        clock: DatabaseClock | None = None,
    ) -> None:
        self._engine = engine
        # paused_until is the database's time: compare it with the database's time.
        self._clock = clock or DatabaseClock()
        self._breaker = breaker
        self._rate = rate_per_s
        self._burst = burst
        self._burst_s = burst / rate_per_s if rate_per_s else 0.0
        self._paused_until = 0.0  # epoch seconds, from the shared row
        self._refreshed_at = 0.0
        self._published: CircuitState | None = None
        # One pause write at a time: the calls in flight that all got a 429 share it.
        self._pause_lock = asyncio.Lock()
        self._publish_state()

    @property
    def state(self) -> CircuitState:
        return self._breaker.state

    async def admit(self, wanted: int) -> Admission:
        """Wait until calls may start; then how many (one while probing a half-open circuit)."""
        while True:
            now = self._clock.epoch()
            await self._refresh(now)
            if self._paused_until > now:
                await asyncio.sleep(min(self._paused_until - now, MAX_NAP_S))
                continue
            permit = self._breaker.permit(time.monotonic())
            self._publish_state()
            if not permit.allowed:
                await asyncio.sleep(min(permit.wait_s, MAX_NAP_S))
                continue
            count = 1 if permit.probe else wanted
            if self._rate:
                # A grant never exceeds the burst, so no replica runs ahead of the rate.
                count = min(count, self._burst)
                wait = await self._take_tokens(count)
                if wait > 0:
                    await asyncio.sleep(wait)
            return Admission(count, permit.probe)

    def cancel_probe(self) -> None:
        self._breaker.cancel_probe()

    def blocked_for_s(self, probe: bool) -> float:
        """At hand-off: how long this call must wait (0: go). Probes pass an open circuit."""
        now = self._clock.epoch()
        if self._paused_until > now:
            return self._paused_until - now
        if probe or self._breaker.state == CircuitState.CLOSED:
            return 0.0
        return max(self._breaker.open_until - time.monotonic(), self._breaker.base_cooldown_s)

    def blocked_by(self) -> Postponement:
        """What ``blocked_for_s`` holds calls back for: the open circuit, or the shared pause."""
        if self._breaker.state != CircuitState.CLOSED:
            return Postponement.CIRCUIT_OPEN
        return Postponement.THROTTLED

    async def after_call(self, reply: Reply, result: CallResult, probe: bool) -> None:
        """Pause every replica when the provider asks to be left alone, else count the call."""
        if reply is Reply.THROTTLED:
            await self.pause_all(result.judgement.retry_after_s or DEFAULT_RETRY_AFTER_S)
            if probe:
                self._breaker.cancel_probe()
            return
        kind = BREAKER_KINDS[reply]
        opened = self._breaker.record(time.monotonic(), kind, probe)
        self._publish_state()
        if opened:
            reason = "auth" if kind == CallKind.AUTH else "failures"
            metrics.CIRCUIT_OPENED.labels(reason).inc()
            log.error(
                "provider_circuit_opened",
                reason=self._breaker.reason,
                cooldown_s=self._breaker.cooldown_s,
                http_status=result.http_status,
            )
        elif probe and self._breaker.state == CircuitState.CLOSED:
            log.info("provider_circuit_closed", http_status=result.http_status)

    async def pause_all(self, seconds: float) -> None:
        """Every replica holds its calls for ``seconds`` (a provider's Retry-After).

        Written once per replica, not once per call: the calls in flight when the provider
        starts answering 429 all come back at once, and a pause this replica already holds
        (within ``PAUSE_SLACK_S``) is not written again. The outcome of the call that asked
        does not depend on the write: if the database cannot take it, this replica pauses
        alone and the others learn of the 429 from their own calls.
        """
        metrics.THROTTLED.inc()
        async with self._pause_lock:
            wanted = self._clock.epoch() + seconds
            if self._paused_until >= wanted - PAUSE_SLACK_S:
                return
            try:
                async with self._engine.begin() as conn:
                    until = await conn.scalar(
                        update(ProviderThrottle)
                        .where(_THE_ROW)
                        .values(
                            paused_until=func.greatest(
                                func.coalesce(ProviderThrottle.paused_until, func.now()),
                                func.now() + timedelta(seconds=seconds),
                            )
                        )
                        .returning(func.extract("epoch", ProviderThrottle.paused_until))
                    )
            except SQLAlchemyError as error:
                until = wanted
                log.warning("provider_pause_not_shared", pause_s=seconds, error=repr(error))
            self._paused_until = max(self._paused_until, float(until or wanted))
            log.warning("provider_asked_to_slow_down", pause_s=seconds)

    async def _refresh(self, now: float) -> None:
        if now - self._refreshed_at < REFRESH_S:
            return
        self._refreshed_at = now
        async with self._engine.connect() as conn:
            until = await conn.scalar(
                select(func.extract("epoch", ProviderThrottle.paused_until)).where(_THE_ROW)
            )
        self._paused_until = float(until or 0)

    async def _take_tokens(self, count: int) -> float:
        """GCRA over the shared row: seconds to wait before ``count`` calls may start."""
        async with self._engine.begin() as conn:
            ahead = await conn.scalar(
                update(ProviderThrottle)
                .where(_THE_ROW)
                .values(
                    tat=func.greatest(ProviderThrottle.tat, func.now())
                    + timedelta(seconds=count / self._rate)
                )
                .returning(func.extract("epoch", ProviderThrottle.tat - func.now()))
            )
        # Conforming while the theoretical arrival time stays within one burst of now.
        return max(float(ahead or 0) - self._burst_s, 0.0)

    def _publish_state(self) -> None:
        # Called around every provider call: touch the gauges only when the state changed.
        if self._published == self._breaker.state:
            return
        self._published = self._breaker.state
        for state in CircuitState:
            metrics.CIRCUIT_STATE.labels(state.value).set(1 if self._breaker.state == state else 0)
