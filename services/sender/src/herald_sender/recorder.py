"""Writes delivery outcomes in batches: many messages, one transaction, one round trip.

``record`` returns once the outcome is committed, which is when the job may be acked. A write
that fails (the database is away) is retried until it succeeds: outcomes are only ever lost
with the process, and then the lease makes the scheduler re-queue the message.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.broker import Outgoing, Publisher
from herald_common.outbox import add_to_outbox, publish_written
from herald_common.statuses import MessageStatus
from herald_sender import metrics

log = structlog.get_logger()


@dataclass(slots=True)
class Outcome:
    message_id: int
    fence_attempts: int  # the attempts value this sender claimed with
    status: MessageStatus
    attempts: int
    error: str | None = None
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None
    retry: Outgoing | None = None
    retry_tier_ms: int = 0
    done: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


_UPDATE = text(
    """
    UPDATE message m SET
        status = v.status, attempts = v.attempts, last_error = v.error, sent_at = v.sent_at,
        next_attempt_at = v.next_attempt_at, lease_until = NULL, updated_at = now()
    FROM unnest(
        CAST(:ids AS bigint[]), CAST(:fences AS int[]), CAST(:statuses AS varchar[]),
        CAST(:attempts AS int[]), CAST(:errors AS text[]), CAST(:sent AS timestamptz[]),
        CAST(:nexts AS timestamptz[])
    ) AS v(id, fence, status, attempts, error, sent_at, next_attempt_at)
    WHERE m.id = v.id AND m.attempts = v.fence AND m.status IN ('sending', 'pending')
    RETURNING m.id
    """
)


class Recorder:
    def __init__(
        self,
        engine: AsyncEngine,
        publisher: Publisher,
        batch_size: int,
        interval_s: float,
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._queue: asyncio.Queue[Outcome] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def record(self, outcome: Outcome) -> bool:
        """Queue the outcome; True once written, False if a newer claim had superseded ours."""
        await self._queue.put(outcome)
        return await outcome.done

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._interval_s:
                await asyncio.sleep(self._interval_s)
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write_until_done(batch)

    async def _write_until_done(self, batch: list[Outcome]) -> None:
        delay = 0.1
        while True:
            try:
                applied, outbox_ids, retries = await self._write(batch)
                break
            except Exception as error:
                log.warning("outcome_write_failed", messages=len(batch), error=repr(error))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        if retries:
            try:
                await publish_written(self._engine, self._publisher, outbox_ids, retries)
            except Exception as error:
                log.warning("publish_deferred_to_relay", jobs=len(retries), error=repr(error))
        for outcome in batch:
            if not outcome.done.done():
                outcome.done.set_result(outcome.message_id in applied)

    async def _write(self, batch: list[Outcome]) -> tuple[set[int], list[int], list[Outgoing]]:
        metrics.OUTCOME_BATCH.observe(len(batch))
        with metrics.OUTCOME_WRITE_SECONDS.time():
            return await self._write_batch(batch)

    async def _write_batch(
        self, batch: list[Outcome]
    ) -> tuple[set[int], list[int], list[Outgoing]]:
        async with self._engine.begin() as conn:
            rows = await conn.execute(
                _UPDATE,
                {
                    "ids": [o.message_id for o in batch],
                    "fences": [o.fence_attempts for o in batch],
                    "statuses": [o.status.value for o in batch],
                    "attempts": [o.attempts for o in batch],
                    "errors": [o.error for o in batch],
                    "sent": [o.sent_at for o in batch],
                    "nexts": [o.next_attempt_at for o in batch],
                },
            )
            applied = {row[0] for row in rows}
            retries = [o.retry for o in batch if o.retry is not None and o.message_id in applied]
            outbox_ids = await add_to_outbox(conn, retries)
        return applied, outbox_ids, retries
