"""One clock decides: PostgreSQL's. A worker reads its own clock corrected by the offset it
measures from the database, so a host whose clock runs seconds behind or ahead still judges
a mailing's end, a send window and a lease as the database (and every other replica) does.

The offset is measured with ``clock_timestamp()`` bracketed by two local readings; the error
is at most half the round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client import Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger()

CLOCK_OFFSET = Gauge(
    "herald_clock_offset_seconds",
    "This process's clock offset from PostgreSQL's (database minus local), as last measured.",
)
# Measured this often; a clock drifts by milliseconds a day, a step (NTP, a VM resumed)
# is seen within this.
MEASURE_EVERY_S = 10.0
# An offset this large is worth a warning line (the alert has its own threshold).
NOTABLE_OFFSET_S = 1.0


def local_utcnow() -> datetime:
    return datetime.now(UTC)


class DatabaseClock:
    def __init__(self, local: Callable[[], datetime] = local_utcnow) -> None:
        self._local = local
        self.offset = timedelta(0)

    def now(self) -> datetime:
        """The database's time, as well as this process knows it."""
        return self._local() + self.offset

    def epoch(self) -> float:
        return self.now().timestamp()

    def observe(self, before: datetime, database: datetime, after: datetime) -> None:
        """A database reading taken between two local ones."""
        offset = database - (before + (after - before) / 2)
        # A line when it moves by half a second or more (the first reading included).
        if abs((offset - self.offset).total_seconds()) >= NOTABLE_OFFSET_S / 2:
            emit = log.warning if abs(offset.total_seconds()) >= NOTABLE_OFFSET_S else log.info
            emit("clock_offset_measured", offset_s=round(offset.total_seconds(), 3))
        self.offset = offset
        CLOCK_OFFSET.set(offset.total_seconds())

    async def measure(self, engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            before = self._local()
            database = await conn.scalar(text("SELECT clock_timestamp()"))
            after = self._local()
        self.observe(before, database, after)

    async def keep_measuring(self, engine: AsyncEngine, every_s: float = MEASURE_EVERY_S) -> None:
        """Run until cancelled; a failed measurement keeps the last offset."""
        while True:
            with contextlib.suppress(Exception):
                await self.measure(engine)
            await asyncio.sleep(every_s)
