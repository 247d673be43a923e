"""Writes delivery outcomes in batches: many messages, one transaction, one round trip.

``record`` returns once the outcome is committed, which is when the job may be acked. A write
that fails (the database is away) is retried until it succeeds: outcomes are only ever lost
with the process, and then the lease makes the scheduler re-queue the message.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from sqlalchemy import BigInteger, Integer, String, Text, func, null, update
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.broker import Outgoing, Publisher
from herald_common.db import array_rows
from herald_common.models import TZ, Message
from herald_common.outbox import add_to_outbox, publish_written
from herald_common.rules.outcomes import Outcome
from herald_common.tables import message
from herald_sender import metrics

log = structlog.get_logger()


@dataclass(slots=True)
class _Queued:
    """An outcome waiting for its batch, with what writing it needs besides the rule's answer."""

    message_id: int
    claimed_attempts: int  # fences the write: a newer claim has counted one more
    outcome: Outcome
    retry: Outgoing | None  # published once the outcome is committed
    done: asyncio.Future[bool]


# A batch of outcomes in one UPDATE: the columns come in as arrays, one element a message.
_OUTCOMES = array_rows(
    "v",
    id=("ids", BigInteger()),
    fence=("fences", Integer()),
    status=("statuses", String()),
    attempts=("attempt_counts", Integer()),
    error=("errors", Text()),
    sent_at=("sent", TZ),
    next_attempt_at=("nexts", TZ),
)
_UPDATE = (
    update(Message)
    .where(
        Message.id == _OUTCOMES.c.id,
        Message.attempts == _OUTCOMES.c.fence,
        message.awaits_outcome(),
    )
    .values(
        status=_OUTCOMES.c.status,
        attempts=_OUTCOMES.c.attempts,
        last_error=_OUTCOMES.c.error,
        sent_at=_OUTCOMES.c.sent_at,
        next_attempt_at=_OUTCOMES.c.next_attempt_at,
        lease_until=null(),
        updated_at=func.now(),
    )
    .returning(Message.id)
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
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def record(
        self,
        outcome: Outcome,
        *,
        message_id: int,
        claimed_attempts: int,
        retry: Outgoing | None = None,
    ) -> bool:
        """Queue the outcome of the claim that counted ``claimed_attempts``; True once written,
        False if a newer claim had superseded it. ``retry`` is published after the commit."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Queued(message_id, claimed_attempts, outcome, retry, done))
        return await done

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._interval_s:
                await asyncio.sleep(self._interval_s)
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write_until_done(batch)

    async def _write_until_done(self, batch: list[_Queued]) -> None:
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
        for queued in batch:
            if not queued.done.done():
                queued.done.set_result(queued.message_id in applied)

    async def _write(self, batch: list[_Queued]) -> tuple[set[int], list[int], list[Outgoing]]:
        metrics.OUTCOME_BATCH.observe(len(batch))
        with metrics.OUTCOME_WRITE_SECONDS.time():
            return await self._write_batch(batch)

    async def _write_batch(
        self, batch: list[_Queued]
    ) -> tuple[set[int], list[int], list[Outgoing]]:
        async with self._engine.begin() as conn:
            rows = await conn.execute(
                _UPDATE,
                {
                    "ids": [q.message_id for q in batch],
                    "fences": [q.claimed_attempts for q in batch],
                    "statuses": [q.outcome.status.value for q in batch],
                    "attempt_counts": [q.outcome.attempts for q in batch],
                    "errors": [q.outcome.error for q in batch],
                    "sent": [q.outcome.sent_at for q in batch],
                    "nexts": [q.outcome.next_attempt_at for q in batch],
                },
            )
            applied = set(rows.scalars())
            retries = [q.retry for q in batch if q.retry is not None and q.message_id in applied]
            outbox_ids = await add_to_outbox(conn, retries)
        return applied, outbox_ids, retries
