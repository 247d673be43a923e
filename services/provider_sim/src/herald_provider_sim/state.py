"""The simulator's mutable state: current faults, the seeded random source and the recorder."""

from __future__ import annotations

import asyncio
import random

from herald_provider_sim.config import Faults, SimConfig
from herald_provider_sim.recorder import ERROR, HANG, MALFORMED, OK, OUTAGE, TOO_MANY, Recorder
from herald_provider_sim.tokens import TokenVerifier

_ERROR_STATUSES = (500, 502, 503)


class Simulator:
    """One simulated provider; a single event loop owns it, so no locking is needed."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.faults = config.faults
        self.rng = random.Random(config.faults.seed)
        self.recorder = Recorder(config.max_records)
        self.verifier = TokenVerifier(config.secret)
        # Set when the server stops so that hung requests end instead of delaying shutdown.
        self.stopping = asyncio.Event()

    def set_faults(self, faults: Faults, *, reseed: bool) -> None:
        self.faults = faults
        if reseed:
            self.rng.seed(faults.seed)

    def reset(self) -> None:
        self.recorder.clear()
        self.set_faults(self.config.faults, reseed=True)

    def decide(self) -> tuple[str, int | None]:
        """Draw this request's outcome and the HTTP status it will get (None: no response)."""
        faults = self.faults
        if faults.outage:
            return OUTAGE, None
        # One draw split into bands keeps each ratio exact and the sequence reproducible.
        draw = self.rng.random()
        edge = faults.hang_ratio
        if draw < edge:
            return HANG, None
        edge += faults.error_ratio
        if draw < edge:
            return ERROR, self.rng.choice(_ERROR_STATUSES)
        edge += faults.status_429_ratio
        if draw < edge:
            return TOO_MANY, 429
        edge += faults.malformed_ratio
        if draw < edge:
            return MALFORMED, 200
        return OK, 200

    def delay_s(self) -> float:
        faults = self.faults
        delay_ms = faults.latency_ms
        if faults.latency_jitter_ms:
            delay_ms += self.rng.uniform(0, faults.latency_jitter_ms)
        return delay_ms / 1000
