"""The scheduler loop: fan out due mailings, re-queue deferred and orphaned work, end mailings.

The database drives everything; mailing events only wake the loop early. Every step locks
with SKIP LOCKED, so any number of replicas can run without doing the same work twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import timedelta

import structlog
from herald_common.broker import Outgoing, Publisher
from herald_common.db import with_retries
from herald_common.jobs import delivery_jobs, group_by_mailing
from herald_common.outbox import add_to_outbox, publish_written, relay_stale
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_scheduler import planning
from herald_scheduler.settings import SchedulerSettings

log = structlog.get_logger()

# Ending mailings and relaying the outbox need not run at the fan-out's pace.
HOUSEKEEPING_EVERY_S = 1.0


class Scheduler:
    def __init__(self, engine: AsyncEngine, publisher: Publisher, settings: SchedulerSettings):
        self._engine = engine
        self._publisher = publisher
        self._settings = settings
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._last_housekeeping = 0.0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        log.info("scheduler_started")
        while not self._stopping.is_set():
            # Cleared before the work, so a wake-up that arrives during it is not lost.
            self._wake.clear()
            try:
                busy = await self.tick()
            except Exception as error:  # DB or broker away: keep the loop, try again soon
                log.warning("scheduler_tick_failed", error=repr(error))
                busy = False
                await self._sleep(self._settings.scheduler_poll_interval_s * 4)
                continue
            if not busy:
                await self._sleep(await self._idle_delay())
        log.info("scheduler_stopped")

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(seconds, 0.0))

    async def _idle_delay(self) -> float:
        poll = self._settings.scheduler_poll_interval_s
        async with self._engine.connect() as conn:
            until_next = await planning.next_start_in_s(conn)
        return poll if until_next is None else min(poll, until_next)

    async def tick(self) -> bool:
        """One round of work; True when there may be more to do right away."""
        busy = await self.fan_out_once()
        busy = await self.requeue_once() or busy
        now = time.monotonic()
        if now - self._last_housekeeping >= HOUSEKEEPING_EVERY_S:
            self._last_housekeeping = now
            busy = await self.housekeeping() or busy
        return busy

    async def fan_out_once(self) -> bool:
        """Create and enqueue the next chunk of one due mailing's messages."""

        async def step() -> tuple[int, planning.FanOutChunk, list[int], list[Outgoing]] | None:
            async with self._engine.begin() as conn:
                mailing = await planning.lock_due_mailing(conn)
                if mailing is None:
                    return None
                chunk = await planning.fan_out_chunk(
                    conn, mailing, self._settings.fanout_chunk_size
                )
                jobs = delivery_jobs(mailing.id, chunk.message_ids, self._settings.job_size)
                outbox_ids = await add_to_outbox(conn, jobs)
                if not mailing.started:
                    log.info("mailing_started", mailing_id=mailing.id)
                return mailing.id, chunk, outbox_ids, jobs

        result = await with_retries(step)
        if result is None:
            return False
        mailing_id, chunk, outbox_ids, jobs = result
        await self._publish(outbox_ids, jobs)
        log.info(
            "fanout_chunk",
            mailing_id=mailing_id,
            messages=len(chunk.message_ids),
            jobs=len(jobs),
            done=chunk.done,
        )
        if chunk.done:
            log.info("fanout_done", mailing_id=mailing_id)
        return True

    async def requeue_once(self) -> bool:
        """Deferred messages whose window opened, and orphans of dead senders, get new jobs."""
        limit = self._settings.sweep_batch_size

        async def step() -> tuple[list[int], list[Outgoing], int, int]:
            async with self._engine.begin() as conn:
                deferred = await planning.requeue_deferred(conn, limit)
                orphans = await planning.recover_expired_leases(conn, limit)
                jobs: list[Outgoing] = []
                for mailing_id, ids in group_by_mailing(deferred + orphans).items():
                    jobs += delivery_jobs(mailing_id, ids, self._settings.job_size)
                return await add_to_outbox(conn, jobs), jobs, len(deferred), len(orphans)

        outbox_ids, jobs, deferred, orphans = await with_retries(step)
        if not jobs:
            return False
        await self._publish(outbox_ids, jobs)
        if deferred:
            log.info("deferred_requeued", messages=deferred)
        if orphans:
            log.warning("orphans_requeued", messages=orphans)
        return deferred == limit or orphans == limit

    async def housekeeping(self) -> bool:
        async def step() -> tuple[int, list[int]]:
            async with self._engine.begin() as conn:
                expired = await planning.expire_ended(conn, self._settings.sweep_batch_size)
                finished = await planning.finish_settled(conn)
                return expired, finished

        expired, finished = await with_retries(step)
        if expired:
            log.info("messages_expired", messages=expired)
        for mailing_id in finished:
            log.info("mailing_finished", mailing_id=mailing_id)
        relayed = 0
        try:
            relayed = await relay_stale(
                self._engine, self._publisher, timedelta(seconds=self._settings.outbox_grace_s)
            )
        except Exception as error:
            log.warning("outbox_relay_failed", error=repr(error))
        if relayed:
            log.info("outbox_relayed", jobs=relayed)
        return expired == self._settings.sweep_batch_size or relayed > 0

    async def _publish(self, outbox_ids: Sequence[int], jobs: Sequence[Outgoing]) -> None:
        try:
            await publish_written(self._engine, self._publisher, outbox_ids, jobs)
        except Exception as error:
            # The rows stay in the outbox; the relay publishes them once the broker is back.
            log.warning("publish_deferred_to_relay", jobs=len(jobs), error=repr(error))
