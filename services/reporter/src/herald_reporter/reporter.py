"""The reporter loop: record owed report days, claim one, build and send it, record the outcome.

The database decides: any number of replicas may run; a day is claimed by one of them
(``FOR UPDATE SKIP LOCKED`` and a lease), and the claim commits before the SMTP conversation
starts, so no transaction is held across it. Delivery is at-least-once only in one window: a
reporter that dies after the server accepted the mail and before ``sent`` is committed leaves
a claim that another takes over when the lease ends, and the mail goes again (with the same
Message-ID, so that mail clients can recognise the copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.rules.reports import next_due_at, plan_due_days, retry_delay_s
from herald_reporter import metrics, store
from herald_reporter.mail import compose, render
from herald_reporter.settings import ReporterSettings
from herald_reporter.smtp import deliver
from herald_reporter.statistics import gather_stats

log = structlog.get_logger()

Clock = Callable[[], datetime]
Mailer = Callable[[EmailMessage, ReporterSettings], Awaitable[list[str]]]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Reporter:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: ReporterSettings,
        clock: Clock = utcnow,
        mailer: Mailer = deliver,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._clock = clock
        self._mailer = mailer
        self._stopping = asyncio.Event()
        # Unique per process, so that two replicas on one host never share a claim.
        instance = settings.service_instance or socket.gethostname()
        self.owner = f"{instance}/{os.getpid()}/{uuid.uuid4().hex[:8]}"

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        settings = self._settings
        log.info(
            "reporter_started",
            report_time=settings.report_time.strftime("%H:%M"),
            report_timezone=settings.report_timezone,
            recipients=len(settings.report_recipients),
            smtp_host=settings.smtp_host,
            smtp_port=settings.smtp_port,
            smtp_security=settings.smtp_security.value,
        )
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception as error:  # the database away, a bug: keep the loop, try again
                metrics.TICK_ERRORS.inc()
                log.warning("reporter_tick_failed", error=repr(error))
            await self._sleep(self._idle_delay())
        log.info("reporter_stopped")

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=max(seconds, 0.0))

    def _idle_delay(self) -> float:
        now = self._clock()
        settings = self._settings
        until_due = (next_due_at(now, settings.report_time, settings.zone) - now).total_seconds()
        return min(settings.report_poll_interval_s, until_due)

    async def tick(self) -> int:
        """One round: plan, then send every owed day we can claim. Returns how many went out."""
        await self.plan(self._clock())
        sent = 0
        while not self._stopping.is_set():
            claim = await self._claim(self._clock())
            if claim is None:
                break
            sent += await self._send(claim)
        await self.refresh_gauges()
        return sent

    async def plan(self, now: datetime) -> None:
        """Record the days whose report is due and not yet recorded."""
        settings = self._settings
        async with self._engine.begin() as conn:
            last = await store.last_recorded_day(conn)
            plan = plan_due_days(
                now, settings.report_time, settings.zone, last, settings.report_max_backlog_days
            )
            recorded = await store.record_days(conn, plan.days)
        if plan.skipped:
            log.warning(
                "report_days_skipped",
                report_day=str(plan.days[0].day),
                skipped=plan.skipped,
                last_recorded_day=str(last),
                reason=f"more than {settings.report_max_backlog_days} days were missed",
            )
        for day in recorded:
            log.info("report_due", report_day=str(day))

    async def _claim(self, now: datetime) -> store.Claim | None:
        settings = self._settings
        lease = timedelta(seconds=settings.report_lease_s)
        domain = settings.report_from.rpartition("@")[2]
        async with self._engine.begin() as conn:
            claim = await store.claim_next(conn, now, lease, self.owner, domain)
        if claim is not None and claim.previous_owner is not None:
            log.warning(
                "report_claim_taken_over",
                report_day=str(claim.day),
                previous_owner=claim.previous_owner,
                attempt=claim.attempt,
                reason="the previous claim outlived its lease: its reporter died or hung",
            )
        return claim

    async def _send(self, claim: store.Claim) -> int:
        settings = self._settings
        bound = log.bind(report_day=str(claim.day), attempt=claim.attempt)
        started = time.perf_counter()
        try:
            message, mailing_ids = await self._build(claim)
            for mailing_id in mailing_ids:
                bound.info("report_mailing", mailing_id=mailing_id)
            started = time.perf_counter()
            try:
                refused = await self._mailer(message, settings)
            finally:
                metrics.SEND_SECONDS.observe(time.perf_counter() - started)
        except Exception as error:
            metrics.REPORTS.labels("failed").inc()
            now = self._clock()
            delay = retry_delay_s(
                claim.attempt, settings.report_retry_base_s, settings.report_retry_max_s
            )
            async with self._engine.begin() as conn:
                kept = await store.mark_failed(
                    conn, claim, self.owner, repr(error), now + timedelta(seconds=delay)
                )
            bound.warning(
                "report_send_failed", error=repr(error), retry_in_s=delay, claim_kept=kept
            )
            return 0
        accepted = len(settings.report_recipients) - len(refused)
        async with self._engine.begin() as conn:
            recorded = await store.mark_sent(conn, claim.day, self._clock(), accepted)
        metrics.REPORTS.labels("sent").inc()
        emit = bound.warning if refused or not recorded else bound.info
        emit(
            "report_sent",
            recipients=accepted,
            refused=refused,
            message_id=claim.message_id,
            duration_s=round(time.perf_counter() - started, 3),
            # False: another replica recorded this day first (a takeover's duplicate).
            first=recorded,
        )
        return 1

    async def _build(self, claim: store.Claim) -> tuple[EmailMessage, list[int]]:
        settings = self._settings
        async with self._engine.connect() as conn:
            stats = await gather_stats(
                conn, claim.window_start_at, claim.window_end_at, settings.report_max_mailings
            )
        now = self._clock()
        text, html = render(
            claim.day, settings.zone, claim.window_start_at, claim.window_end_at, stats, now
        )
        message = compose(
            day=claim.day,
            zone=settings.zone,
            stats=stats,
            text=text,
            html=html,
            sender=settings.report_from,
            recipients=settings.report_recipients,
            message_id=claim.message_id,
            now=now,
        )
        return message, [m.id for m in stats.mailings]

    async def refresh_gauges(self) -> None:
        async with self._engine.connect() as conn:
            last_sent_at, owed = await store.summary(conn)
        if last_sent_at is not None:
            metrics.LAST_SENT.set(last_sent_at.timestamp())
        metrics.OWED.set(owed)
