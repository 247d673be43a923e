"""A circuit breaker for the provider: a dead or refusing provider gets a trickle of probes.

closed ──N failures in a row──▶ open ──cooldown over──▶ half-open (one probe call)
  ▲                              ▲ ◀──probe fails (cooldown doubles)──┘
  └────────────probe succeeds───────────────────────────────────────────┘

The doubling starts over when a probe comes long after the cooldown ended (nothing was due
meanwhile, so nothing probed): what the last outage taught is stale by then, and a provider
that failed again after an idle hour should not wait out the cap before each probe.

An authentication refusal (401/403) opens it at once: every call would fail the same way, and
messages must not spend their attempts on it. Pure state: the caller passes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CallKind(StrEnum):
    SUCCESS = "success"  # the provider answered properly (sent, or refused this message)
    FAILURE = "failure"  # 5xx, garbage, timeout, connection error
    AUTH = "auth"  # 401/403: our token is refused


@dataclass(frozen=True, slots=True)
class Permit:
    allowed: bool
    probe: bool = False
    wait_s: float = 0.0


@dataclass
class CircuitBreaker:
    failure_threshold: int = 20
    base_cooldown_s: float = 1.0
    max_cooldown_s: float = 60.0
    state: CircuitState = CircuitState.CLOSED
    reason: str = ""
    open_until: float = 0.0
    cooldown_s: float = 0.0
    consecutive_failures: int = 0
    probe_in_flight: bool = False
    probe_granted_at: float = 0.0

    def permit(self, now: float) -> Permit:
        """May a new call start? In half-open state exactly one probe may."""
        if self.state == CircuitState.CLOSED:
            return Permit(True)
        if self.state == CircuitState.OPEN and now < self.open_until:
            return Permit(False, wait_s=self.open_until - now)
        if self.probe_in_flight:
            return Permit(False, wait_s=min(self.cooldown_s, 1.0))
        self.state = CircuitState.HALF_OPEN
        self.probe_in_flight = True
        self.probe_granted_at = now
        return Permit(True, probe=True)

    def cancel_probe(self) -> None:
        """The probe permit went unused (nothing to send): let the next caller probe."""
        self.probe_in_flight = False

    def record(self, now: float, kind: CallKind, probe: bool = False) -> bool:
        """Account for a finished call; True when this call opened the circuit."""
        if probe:
            self.probe_in_flight = False
        if kind == CallKind.SUCCESS:
            self.consecutive_failures = 0
            if self.state != CircuitState.CLOSED and (probe or self.state == CircuitState.OPEN):
                self._close()
            return False
        self.consecutive_failures += 1
        if kind == CallKind.AUTH:
            return self._open(now, "the provider refuses our token (401/403)", probe)
        if self.state == CircuitState.HALF_OPEN and probe:
            return self._open(now, self.reason or "the provider keeps failing", probe)
        if (
            self.state == CircuitState.CLOSED
            and self.consecutive_failures >= self.failure_threshold
        ):
            return self._open(now, f"{self.consecutive_failures} failed calls in a row", probe)
        return False

    def _open(self, now: float, reason: str, probe: bool) -> bool:
        was_closed = self.state == CircuitState.CLOSED
        if self.state == CircuitState.OPEN and now < self.open_until and not probe:
            return False  # already open: late failures of calls started before do not extend it
        idle = probe and self.probe_granted_at - self.open_until > self.max_cooldown_s
        self.cooldown_s = (
            self.base_cooldown_s
            if was_closed or idle
            else min(self.cooldown_s * 2, self.max_cooldown_s)
        )
        self.state = CircuitState.OPEN
        self.reason = reason
        self.open_until = now + self.cooldown_s
        return was_closed

    def _close(self) -> None:
        self.state = CircuitState.CLOSED
        self.reason = ""
        self.cooldown_s = 0.0
        self.consecutive_failures = 0
        self.probe_in_flight = False
