"""The scheduler loop: fan out due mailings, re-queue deferred and orphaned work, end mailings.

The database drives everything; mailing events only wake the loop early. Every step locks
with SKIP LOCKED, so any number of replicas can run without doing the same work twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from herald_common.broker import Outgoing, Publisher
from herald_common.db import with_retries
from herald_common.jobs import delivery_jobs
from herald_common.metrics import MESSAGE_TRANSITIONS
from herald_common.outbox import add_to_outbox, publish_written, relay_stale
from herald_common.rules.backoff import pause_after_failures_s
from herald_common.statuses import MessageStatus
from herald_common.tables import message_count
from herald_scheduler import metrics, queries
from herald_scheduler.settings import SchedulerSettings

log = structlog.get_logger()

# Ending mailings and relaying the outbox need not run at the fan-out's pace.
HOUSEKEEPING_EVERY_S = 1.0
GAUGES_EVERY_S = 5.0
PROGRESS_EVERY_S = 10.0
# The longest a mailing whose fan-out keeps failing waits between tries.
FANOUT_HOLD_MAX_S = 60.0

Requeue = Callable[[AsyncConnection, int], Awaitable[list[queries.Requeued]]]
ReadyJobs = Callable[[], Awaitable[int | None]]


@dataclass(frozen=True, slots=True)
class JobsWritten:
    """Messages created, committed with their delivery jobs in the outbox."""

    message_ids: list[int]
    outbox_ids: list[int]
    jobs: list[Outgoing]

    @staticmethod
    def joined(parts: Sequence[JobsWritten]) -> JobsWritten:
        return JobsWritten(
            [i for part in parts for i in part.message_ids],
            [i for part in parts for i in part.outbox_ids],
            [job for part in parts for job in part.jobs],
        )


@dataclass(frozen=True, slots=True)
class FannedOut:
    """One fan-out step of a mailing, committed."""

    mailing: queries.DueMailing
    done: bool  # every matching client has its message
    written: JobsWritten


@dataclass(frozen=True, slots=True)
class Requeueing:
    """Messages given back to ``pending`` by a sweep, committed with their new jobs."""

    by_mailing: dict[int, list[int]]  # mailing id → message ids
    outbox_ids: list[int]
    jobs: list[Outgoing]


@dataclass(frozen=True, slots=True)
class Ending:
    expired: int  # messages expired because their mailing ended
    finished: list[int]  # mailings marked finished


async def _unknown_backlog() -> int | None:
    return None


class Scheduler:
    def __init__(
        self,
        engine: AsyncEngine,
        publisher: Publisher,
        settings: SchedulerSettings,
        ready_jobs: ReadyJobs = _unknown_backlog,
    ):
        self._engine = engine
        self._publisher = publisher
        self._settings = settings
        # Jobs ready in the delivery queue (None: unknown); gates the lost-job sweep.
        self._ready_jobs = ready_jobs
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._last_housekeeping = 0.0
        self._last_gauges = 0.0
        self._last_progress = 0.0
        # The last chunk's jobs, being published while the next chunk is written.
        self._fanout_publish: asyncio.Task[None] | None = None
        # Mailings whose fan-out failed: (failures in a row, monotonic time of the next try).
        self._held_back: dict[int, tuple[int, float]] = {}
        # This round's steps, and the first error of those that failed.
        self._steps_run = 0
        self._steps_failed: list[BaseException] = []

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
            busy = await self.tick()
            if self._steps_failed:
                # The database or the broker is away, or a step is broken: try again soon,
                # but not at once.
                if len(self._steps_failed) == self._steps_run:
                    log.warning("scheduler_tick_failed", error=repr(self._steps_failed[0]))
                await self._sleep(self._settings.scheduler_poll_interval_s * 4)
            elif not busy:
                await self._sleep(await self._idle_delay())
        await self.finish_publishing()
        log.info("scheduler_stopped")

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(seconds, 0.0))

    async def _idle_delay(self) -> float:
        poll = self._settings.scheduler_poll_interval_s
        try:
            async with self._engine.connect() as conn:
                until_next = await queries.next_start_in_s(conn)
        except Exception:  # the next round's steps will say what is wrong
            return poll
        return poll if until_next is None else min(poll, until_next)

    async def tick(self) -> bool:
        """One round of work; True when there may be more to do right away.

        Every step fails on its own (logged, counted by step): a fan-out that keeps failing
        does not keep lease recovery, expiry or the relay from running. A round with a failed
        step never raises; the loop then waits a little longer before the next.
        """
        self._steps_run, self._steps_failed = 0, []
        busy = await self._guarded("fan_out", self.fan_out_once)
        busy = await self.requeue_once() or busy
        now = time.monotonic()
        if now - self._last_housekeeping >= HOUSEKEEPING_EVERY_S:
            self._last_housekeeping = now
            busy = await self.housekeeping() or busy
        if now - self._last_gauges >= GAUGES_EVERY_S:
            self._last_gauges = now
            await self._guarded("gauges", self.refresh_gauges)
        if now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            await self._guarded("progress", self._sample_progress)
        return busy

    async def _guarded(self, step: str, work: Callable[[], Awaitable[object]]) -> bool:
        """Run one step; a failure is logged and counted, and the round goes on."""
        self._steps_run += 1
        try:
            return bool(await work())
        except Exception as error:
            self._steps_failed.append(error)
            metrics.TICK_ERRORS.labels(step).inc()
            log.warning("scheduler_step_failed", step=step, error=repr(error))
            return False

    async def _sample_progress(self) -> None:
        async with self._engine.begin() as conn:
            await queries.sample_progress(conn)

    async def fan_out_once(self) -> bool:
        """Create and enqueue the next chunks of one due mailing's messages.

        The mailing stays locked (other replicas skip it) while its next chunks are inserted
        side by side, each in its own transaction with its jobs in the outbox: one INSERT keeps
        one PostgreSQL backend busy, and the machine has more cores than that. The cursor
        moves past the chunks only once all of them are committed; a crash in between redoes
        them, and ``ON CONFLICT DO NOTHING`` makes the redo create only what is missing.
        """

        async def step() -> FannedOut | None:
            async with self._engine.begin() as conn:
                due = await queries.lock_due_mailing(conn, self._held_back_now())
                if due is None:
                    return None
                locked.append(due.id)
                plan = await queries.plan_fan_out_step(
                    conn,
                    due,
                    self._settings.fanout_chunk_size,
                    self._settings.fanout_parallelism,
                )
                chunks = await asyncio.gather(
                    *(self._create_chunk(due, clients) for clients in plan.ranges)
                )
                await queries.advance_fan_out(conn, due, plan)
            return FannedOut(due, plan.done, JobsWritten.joined(chunks))

        started = time.perf_counter()
        locked: list[int] = []  # the mailing a failed step was working on, if any
        try:
            result = await with_retries(step)
        except Exception as error:
            if locked:
                self._hold_back(locked[-1], error)
            raise
        if result is None:
            await self.finish_publishing()
            return False
        metrics.FANOUT_CHUNK_SECONDS.observe(time.perf_counter() - started)
        due, written = result.mailing, result.written
        self._held_back.pop(due.id, None)
        created = len(written.message_ids)
        metrics.FANOUT_MESSAGES.inc(created)
        MESSAGE_TRANSITIONS.labels(MessageStatus.PENDING).inc(created)
        if not due.started:
            lag = (datetime.now(UTC) - due.starts_at).total_seconds()
            metrics.START_LAG.observe(max(lag, 0.0))
            log.info("mailing_started", mailing_id=due.id, start_lag_s=round(lag, 3))
        log.info(
            "fanout_chunk",
            mailing_id=due.id,
            messages=created,
            jobs=len(written.jobs),
            done=result.done,
        )
        # The chunk is committed (its jobs are in the outbox): publish them while the next
        # chunk is inserted, one chunk at a time, so PostgreSQL and the broker work side by
        # side instead of in turn and at most two chunks of jobs are ever in memory.
        await self.finish_publishing()
        self._fanout_publish = asyncio.create_task(
            self._publish_chunk(due.id, written.outbox_ids, written.jobs, result.done)
        )
        return True

    def _held_back_now(self) -> list[int]:
        now = time.monotonic()
        return [mid for mid, (_, retry_at) in self._held_back.items() if retry_at > now]

    def _hold_back(self, mailing_id: int, error: Exception) -> None:
        """A mailing whose fan-out failed waits 1 s, doubling to a minute, before its next
        try, and the other due mailings go first meanwhile."""
        failures = self._held_back.get(mailing_id, (0, 0.0))[0] + 1
        pause_s = pause_after_failures_s(failures, base_s=1.0, max_s=FANOUT_HOLD_MAX_S)
        self._held_back[mailing_id] = (failures, time.monotonic() + pause_s)
        metrics.FANOUT_FAILURES.inc()
        log.error(
            "fanout_failed",
            mailing_id=mailing_id,
            failures=failures,
            retry_in_s=pause_s,
            error=repr(error),
        )

    async def _create_chunk(
        self, due: queries.DueMailing, clients: queries.ClientRange
    ) -> JobsWritten:
        async with self._engine.begin() as conn:
            message_ids = await queries.create_messages(conn, due, clients)
            jobs = delivery_jobs(due.id, message_ids, self._settings.job_size)
            return JobsWritten(message_ids, await add_to_outbox(conn, jobs), jobs)

    async def finish_publishing(self) -> None:
        """Wait for the fan-out's jobs still being published (a crash meanwhile leaves them in
        the outbox for the relay)."""
        task, self._fanout_publish = self._fanout_publish, None
        if task is not None:
            await task

    async def _publish_chunk(
        self, mailing_id: int, outbox_ids: Sequence[int], jobs: Sequence[Outgoing], done: bool
    ) -> None:
        await self._publish(outbox_ids, jobs)
        if done:
            log.info("fanout_done", mailing_id=mailing_id)

    async def requeue_once(self) -> bool:
        """Deferred messages whose window opened, and orphans of dead senders, get new jobs."""
        limit = self._settings.sweep_batch_size

        async def opened() -> bool:
            return await self._requeue(queries.requeue_deferred, "window_opened") == limit

        async def orphans() -> bool:
            return await self._requeue(queries.recover_expired_leases, "lease_expired") == limit

        busy = await self._guarded("window_opened", opened)
        return await self._guarded("lease_expired", orphans) or busy

    async def requeue_lost_jobs(self) -> int:
        """Messages whose job the broker no longer holds get a new one, but only while the
        delivery queue is empty: a backlog means they may just be waiting their turn."""
        if await self._ready_jobs() != 0:
            return 0
        stale = timedelta(seconds=self._settings.stale_job_s)

        async def sweep(conn: AsyncConnection, limit: int) -> list[queries.Requeued]:
            return await queries.requeue_lost_jobs(conn, limit, stale)

        return await self._requeue(sweep, "job_lost")

    async def _requeue(self, sweep: Requeue, reason: str) -> int:
        async def step() -> Requeueing:
            async with self._engine.begin() as conn:
                moved = queries.by_mailing(await sweep(conn, self._settings.sweep_batch_size))
                jobs: list[Outgoing] = []
                for mailing_id, ids in moved.items():
                    jobs += delivery_jobs(mailing_id, ids, self._settings.job_size)
                return Requeueing(moved, await add_to_outbox(conn, jobs), jobs)

        result = await with_retries(step)
        count = sum(len(ids) for ids in result.by_mailing.values())
        if not count:
            return 0
        metrics.REQUEUED.labels(reason).inc(count)
        MESSAGE_TRANSITIONS.labels(MessageStatus.PENDING).inc(count)
        emit = log.info if reason == "window_opened" else log.warning
        for mailing_id, ids in result.by_mailing.items():
            emit("messages_requeued", reason=reason, mailing_id=mailing_id, message_ids=ids)
        await self._publish(result.outbox_ids, result.jobs)
        return count

    async def housekeeping(self) -> bool:
        """End what is over, find lost jobs, relay the outbox: each on its own."""
        busy = await self._guarded("expiry", self.expire_and_finish)
        limit = self._settings.sweep_batch_size

        async def lost() -> bool:
            return await self.requeue_lost_jobs() == limit

        busy = await self._guarded("lost_jobs", lost) or busy
        if self._settings.retention_days:
            await self._guarded("retention", self.prune_old_messages)
        return await self._guarded("relay", self.relay_outbox) or busy

    async def prune_old_messages(self) -> None:
        """One batch of retention (HERALD_RETENTION_DAYS) a round, so it never holds up the
        rest; a mailing of ten million messages is gone within a quarter of an hour."""
        async with self._engine.begin() as conn:
            pruned = await queries.prune_finished_messages(
                conn, self._settings.retention_days, self._settings.retention_batch_size
            )
        if pruned is None:
            return
        metrics.PRUNED_MESSAGES.inc(pruned.messages)
        if pruned.done:
            log.info("mailing_messages_pruned", mailing_id=pruned.mailing_id)

    async def expire_and_finish(self) -> bool:
        async def step() -> Ending:
            async with self._engine.begin() as conn:
                expired = await queries.expire_ended(conn, self._settings.sweep_batch_size)
                finished = await queries.finish_settled(conn)
                await message_count.fold_shards(conn, finished)
                await queries.prune_idempotency_keys(conn)
                return Ending(expired, finished)

        ending = await with_retries(step)
        if ending.expired:
            MESSAGE_TRANSITIONS.labels(MessageStatus.EXPIRED).inc(ending.expired)
            log.info("messages_expired", messages=ending.expired)
        for mailing_id in ending.finished:
            log.info("mailing_finished", mailing_id=mailing_id)
        return ending.expired == self._settings.sweep_batch_size

    async def relay_outbox(self) -> bool:
        """Publish what writers left in the outbox; True when some got through."""
        # Rows of a chunk this scheduler is still publishing are not stale: let it finish.
        await self.finish_publishing()
        relayed = await relay_stale(
            self._engine, self._publisher, timedelta(seconds=self._settings.outbox_grace_s)
        )
        if relayed.published:
            metrics.OUTBOX_RELAYED.inc(relayed.published)
            log.info("outbox_relayed", jobs=relayed.published)
        if relayed.failed:
            log.warning("outbox_relay_failed", jobs=relayed.failed, error=relayed.error)
        for row in relayed.quarantined:
            metrics.OUTBOX_QUARANTINED_ROWS.inc()
            log.error(
                "outbox_row_quarantined",
                outbox_id=row.id,
                exchange=row.exchange,
                routing_key=row.routing_key,
                error=row.error,
            )
        return relayed.published > 0

    async def refresh_gauges(self) -> None:
        async with self._engine.connect() as conn:
            view = await queries.overview(conn)
        for state, count in view.mailings.items():
            metrics.MAILINGS.labels(state).set(count)
        metrics.START_OVERDUE.set(view.overdue)
        for status in MessageStatus:
            metrics.ACTIVE_MESSAGES.labels(status.value).set(view.active_messages.get(status, 0))
        metrics.OUTBOX_BACKLOG.set(view.outbox.waiting)
        metrics.OUTBOX_QUARANTINED.set(view.outbox.quarantined)

    async def _publish(self, outbox_ids: Sequence[int], jobs: Sequence[Outgoing]) -> None:
        try:
            await publish_written(self._engine, self._publisher, outbox_ids, jobs)
        except Exception as error:
            # The rows stay in the outbox; the relay publishes them once the broker is back.
            log.warning("publish_deferred_to_relay", jobs=len(jobs), error=repr(error))
            return
        for job in jobs:
            log.info(
                "job_published",
                mailing_id=job.headers.get("x-mailing-id"),
                message_ids=job.headers.get("x-message-ids"),
            )
