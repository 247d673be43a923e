"""The delivery worker: one job in, its messages claimed, sent concurrently, recorded, acked.

Order per job: claim and commit → provider calls (no transaction open) → outcomes committed
(retry jobs through the outbox, published and confirmed) → ack. A crash anywhere before the
ack leaves the job in the broker and the messages either untouched or leased.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage
from aiormq.exceptions import AMQPError, ChannelInvalidStateError
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.broker import Publisher
from herald_common.clock import DatabaseClock
from herald_common.contracts import DeliveryJob
from herald_common.db import with_retries
from herald_common.jobs import redelivery_job, retry_job
from herald_common.metrics import MESSAGE_TRANSITIONS
from herald_common.rules.backoff import pause_after_failures_s, retry_tiers
from herald_common.rules.breaker import CircuitBreaker
from herald_common.rules.delivery import STATUS_OF, Action, Decision, check_handoff
from herald_common.rules.outcomes import (
    Outcome,
    RetryPolicy,
    outcome_of,
    postpone,
    read_reply,
    withhold,
)
from herald_common.rules.replies import cap_retry_after
from herald_common.statuses import MessageStatus
from herald_sender import metrics
from herald_sender.claims import Claimed, Settled, claim
from herald_sender.gate import ProviderGate
from herald_sender.provider import CallResult, ProviderClient
from herald_sender.recorder import Recorder
from herald_sender.settings import SenderSettings
from herald_sender.slots import Slots

log = structlog.get_logger()

_SETTLED_LOG = {
    Action.CANCEL: "message_cancelled",
    Action.EXPIRE: "message_expired",
    Action.FAIL: "message_failed",
    Action.DEFER: "message_deferred",
    Action.SKIP: "message_skipped",
    Action.PAUSE: "message_paused",
}


def _seconds_left(deadline: float | None) -> float | None:
    """Until a monotonic ``deadline``; None (no limit) without one."""
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


def _next_attempt_iso(outcome: Outcome) -> str | None:
    return outcome.next_attempt_at.isoformat() if outcome.next_attempt_at else None


class DeliveryWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        provider: ProviderClient,
        recorder: Recorder,
        settings: SenderSettings,
        gate: ProviderGate | None = None,
        publisher: Publisher | None = None,
        clock: DatabaseClock | None = None,
    ) -> None:
        self._engine = engine
        # The database's time: the end, the window and leases are judged on it.
        self._clock = clock or DatabaseClock()
        # Puts a job the database could not serve back in the queue as a fresh message.
        self._publisher = publisher
        # Failed database tries in a row, and until when (monotonic) jobs leave it alone.
        self._db_failures = 0
        self._db_paused_until = 0.0
        self._gate = gate or ProviderGate(engine, CircuitBreaker(), clock=self._clock)
        self._provider = provider
        self._recorder = recorder
        self._settings = settings
        self._policy = RetryPolicy(
            retry_tiers(settings.retry_base_ms, settings.retry_max_ms),
            settings.max_attempts,
            fail_uncertain=settings.uncertain_outcome == "fail",
        )
        self._max_retry_after_s = settings.retry_max_ms / 1000
        self._slots = Slots(settings.sender_concurrency)
        # Claim at least this many at once under load: fewer, larger transactions.
        self._min_claim = max(1, settings.sender_concurrency // 4)
        self._guard = timedelta(milliseconds=settings.send_guard_ms)
        self._lease = timedelta(seconds=settings.lease_s)
        self._jobs: set[asyncio.Task[None]] = set()
        self._random = random.Random()

    @property
    def jobs_in_progress(self) -> int:
        return len(self._jobs)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        """Consumer callback: hand the job to its own task so jobs proceed concurrently."""
        task = asyncio.create_task(self.handle(message))
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def drain(self, timeout_s: float) -> None:
        if self._jobs:
            await asyncio.wait(set(self._jobs), timeout=timeout_s)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        try:
            job = DeliveryJob.decode(message.body)
        except ValidationError as error:
            log.error(
                "job_dead_lettered",
                reason="unreadable job",
                mailing_id=message.headers.get("x-mailing-id"),
                error=str(error)[:500],
            )
            await self._settle(message.reject(requeue=False), "dead_lettered")
            return
        ids = {"mailing_id": job.mailing_id, "message_ids": job.message_ids}
        log.info("job_received", **ids, redelivered=message.redelivered)
        # Past this the job goes back: held beyond RabbitMQ's consumer timeout, its channel
        # would be closed and every job on it redelivered, to be held again, in a loop.
        hold_until = time.monotonic() + self._settings.job_hold_max_s
        pause_s = self._db_paused_until - time.monotonic()
        if pause_s > 0:
            await asyncio.sleep(pause_s)
        try:
            unclaimed = await self.deliver(job, hold_until)
        except (SQLAlchemyError, OSError) as error:
            # The database is away, slow, out of connections, or refuses a statement: not the
            # job's fault, whatever the error. Give the job back; this replica leaves the
            # database alone for a while (the jobs in hand wait too).
            pause_s = self._database_failed()
            log.warning("job_requeued", **ids, error=repr(error), database_pause_s=pause_s)
            await self._requeue(message, job.mailing_id, job.message_ids, ids)
            return
        except Exception as error:
            # Not a provider problem (those are outcomes): park the job for a human.
            log.exception("job_dead_lettered", **ids, error=repr(error))
            await self._settle(message.reject(requeue=False), "dead_lettered", ids)
            return
        self._db_failures = 0
        if unclaimed:
            # The provider's circuit, its pause or busy slots kept these waiting too long.
            log.warning("job_held_too_long", **ids, given_back=unclaimed)
            await self._requeue(message, job.mailing_id, unclaimed, ids)
            return
        await self._settle(message.ack(), "acked", ids)

    def _database_failed(self) -> float:
        """Count a failure once per pause (the jobs that were waiting it out fail together)
        and return how long the pause now lasts."""
        now = time.monotonic()
        if now >= self._db_paused_until:
            self._db_failures += 1
            self._db_paused_until = now + pause_after_failures_s(self._db_failures)
        return round(self._db_paused_until - now, 3)

    async def _requeue(
        self,
        message: AbstractIncomingMessage,
        mailing_id: int,
        message_ids: list[int],
        ids: dict[str, Any],
    ) -> None:
        """A fresh job for ``message_ids`` goes to the back of the queue, then the original is
        acked: a nack would count towards the queue's delivery limit, and an outage of the
        database must not send jobs to the dead letters. Messages already claimed are skipped
        when the copy comes back."""
        if self._publisher is not None:
            try:
                await self._publisher.publish(redelivery_job(mailing_id, message_ids))
            except Exception as error:
                log.warning("job_republish_failed", **ids, error=repr(error))
            else:
                await self._settle(message.ack(), "requeued", ids)
                return
        await self._settle(message.nack(requeue=True), "requeued", ids)

    async def _settle(
        self, settlement: Awaitable[None], result: str, ids: dict[str, Any] | None = None
    ) -> None:
        """Ack, nack or reject; a channel lost meanwhile (broker restart) is not an error:
        the broker redelivers the job, and its settled messages are skipped."""
        try:
            await settlement
        except (AMQPError, ChannelInvalidStateError, ConnectionError) as error:
            metrics.JOBS.labels("lost_channel").inc()
            log.warning("job_settle_lost", result=result, **(ids or {}), error=repr(error))
            return
        metrics.JOBS.labels(result).inc()

    async def deliver(self, job: DeliveryJob, hold_until: float | None = None) -> list[int]:
        """Claim the job's messages a slot-full at a time and send each as soon as claimed.

        Waiting for the gate or for slots ends at ``hold_until`` (monotonic): the ids not
        claimed by then are returned, for the caller to give back.
        """
        unclaimed = list(job.message_ids)
        sends: list[asyncio.Task[None]] = []
        try:
            while unclaimed:
                try:
                    admission = await asyncio.wait_for(
                        self._gate.admit(len(unclaimed)), _seconds_left(hold_until)
                    )
                except TimeoutError:
                    break
                try:
                    taken = await asyncio.wait_for(
                        self._slots.take(admission.count, min(self._min_claim, admission.count)),
                        _seconds_left(hold_until),
                    )
                except TimeoutError:
                    if admission.probe:
                        self._gate.cancel_probe()
                    break
                batch, unclaimed = unclaimed[:taken], unclaimed[taken:]
                try:
                    claimed, settled = await with_retries(partial(self._claim, batch))
                except BaseException:
                    await self._slots.give(taken)
                    if admission.probe:
                        self._gate.cancel_probe()
                    raise
                if admission.probe and not claimed:
                    self._gate.cancel_probe()
                await self._slots.give(taken - len(claimed))
                MESSAGE_TRANSITIONS.labels(MessageStatus.SENDING).inc(len(claimed))
                self._log_settled(settled)
                sends += [
                    asyncio.create_task(self._send_one(msg, admission.probe)) for msg in claimed
                ]
        finally:
            # Even if a later claim failed, the calls already started are seen through.
            if sends:
                await asyncio.gather(*sends)
        return unclaimed

    async def _claim(self, message_ids: list[int]) -> tuple[list[Claimed], list[Settled]]:
        async with self._engine.begin() as conn:
            return await claim(
                conn,
                message_ids,
                self._clock.now(),
                lease=self._lease,
                guard=self._guard,
                max_attempts=self._settings.max_attempts,
            )

    def _log_settled(self, settled: list[Settled]) -> None:
        for item in settled:
            status = STATUS_OF.get(item.decision.action)
            if status is not None:
                MESSAGE_TRANSITIONS.labels(status).inc()
            log.info(
                _SETTLED_LOG.get(item.decision.action, "message_settled"),
                message_id=item.id,
                mailing_id=item.mailing_id,
                client_id=item.client_id,
                reason=item.decision.reason,
                until=item.decision.until.isoformat() if item.decision.until else None,
            )

    async def _send_one(self, msg: Claimed, probe: bool = False) -> None:
        """Runs holding one slot, taken before the claim and given back once the outcome is
        committed: a slot covers everything a crash could leave unrecorded, so the provider
        sees a message twice at most once per slot of a killed sender."""
        try:
            await self._deliver_one(msg, probe)
        finally:
            await self._slots.give()

    async def _deliver_one(self, msg: Claimed, probe: bool) -> None:
        ids = {"message_id": msg.id, "mailing_id": msg.mailing_id, "client_id": msg.client_id}
        blocked_s = self._gate.blocked_for_s(probe)
        if blocked_s > 0:
            # The gate closed after this message was claimed: give it back untouched.
            outcome = postpone(
                self._gate.blocked_by(),
                blocked_s,
                msg.attempts,
                self._policy.tiers,
                self._clock.now(),
                self._random.random(),
            )
            applied = await self._record(msg, outcome)
            log.info(
                "message_postponed",
                **ids,
                reason=outcome.postponed,
                next_attempt_at=_next_attempt_iso(outcome),
                recorded=applied,
            )
            return
        # Judge the end and the window once more at the very last moment.
        handoff = check_handoff(
            msg.ends_at, msg.window, msg.timezone, self._clock.now(), self._guard
        )
        if handoff.action != Action.SEND:
            await self._withhold(msg, handoff, ids)
            return
        result = self._cap_retry_after(await self._call(msg), ids)
        reply = read_reply(result.judgement, result.http_status)
        await self._gate.after_call(reply, result, probe)
        outcome = outcome_of(
            reply,
            result.judgement,
            msg.attempts,
            self._policy,
            self._clock.now(),
            self._random.random(),
            # Read only when it matters: the gate's hold once it has counted this reply.
            self._gate.blocked_for_s(probe=False) if reply.postpones else 0.0,
        )
        if result.judgement.uncertain:
            followed = "failed" if outcome.status == MessageStatus.FAILED else "resent"
            metrics.UNCERTAIN.labels(followed).inc()
        applied = await self._record(msg, outcome)
        # One line per attempt: the call as the provider answered it, and what follows.
        log.info(
            "provider_call",
            **ids,
            attempt=msg.attempts,
            http_status=result.http_status,
            latency_ms=result.latency_ms,
            body=result.body_excerpt,
            verdict=result.judgement.verdict.value,
            status=outcome.status.value,
            reason=outcome.error,
            postponed=outcome.postponed,
            next_attempt_at=_next_attempt_iso(outcome),
            retry_queue_ttl_ms=outcome.retry.tier_ms if outcome.retry else None,
            uncertain=result.judgement.uncertain or None,
            recorded=applied,
        )

    def _cap_retry_after(self, result: CallResult, ids: dict[str, int]) -> CallResult:
        capped = cap_retry_after(result.judgement, self._max_retry_after_s)
        if capped is result.judgement:
            return result
        metrics.RETRY_AFTER_CAPPED.inc()
        log.warning(
            "provider_retry_after_capped",
            **ids,
            http_status=result.http_status,
            asked_s=result.judgement.retry_after_s,
            capped_s=capped.retry_after_s,
        )
        return replace(result, judgement=capped)

    async def _record(self, msg: Claimed, outcome: Outcome) -> bool:
        """Write the outcome (and publish its retry job) through the recorder; count it."""
        retry = outcome.retry
        job = retry_job(msg.mailing_id, msg.id, retry.tier_ms, retry.delay_ms) if retry else None
        applied = await self._recorder.record(
            outcome, message_id=msg.id, claimed_attempts=msg.attempts, retry=job
        )
        if applied:
            MESSAGE_TRANSITIONS.labels(outcome.status).inc()
            if outcome.postponed is not None:
                metrics.POSTPONED.labels(outcome.postponed).inc()
            elif retry is not None:
                metrics.RETRIES.labels(f"{retry.tier_ms / 1000:g}").inc()
        return applied

    async def _withhold(self, msg: Claimed, handoff: Decision, ids: dict[str, int]) -> None:
        """The last check refused the hand-off: expire or defer the message, no call made."""
        outcome = withhold(handoff, msg.attempts)
        await self._recorder.record(outcome, message_id=msg.id, claimed_attempts=msg.attempts)
        MESSAGE_TRANSITIONS.labels(outcome.status).inc()
        log.info(_SETTLED_LOG[handoff.action], **ids, reason=handoff.reason)

    async def _call(self, msg: Claimed) -> CallResult:
        metrics.IN_FLIGHT.inc()
        try:
            # Connecting must not carry the request past the end.
            until_end_s = (msg.ends_at - self._clock.now()).total_seconds()
            result = await self._provider.send(msg.id, msg.phone, msg.text, until_end_s)
        finally:
            metrics.IN_FLIGHT.dec()
        metrics.PROVIDER_CALLS.labels(result.metric_label).inc()
        metrics.PROVIDER_LATENCY.labels(result.metric_label).observe(result.latency_ms / 1000)
        return result
