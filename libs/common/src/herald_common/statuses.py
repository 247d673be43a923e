"""The message status vocabulary and which statuses are final.

pending   → a delivery job for the message exists (in the outbox or the broker)
sending   → a sender claimed it and may be talking to the provider (until ``lease_until``)
retrying  → a transient failure; a job waits in a delayed-retry queue
deferred  → the client's send window is closed; the scheduler re-queues it at ``next_attempt_at``
paused    → its mailing is paused; resuming the mailing re-queues it
sent | failed | expired | cancelled → terminal, never left again
"""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    RETRYING = "retrying"
    DEFERRED = "deferred"
    PAUSED = "paused"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


TERMINAL_STATUSES: frozenset[MessageStatus] = frozenset(
    {MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.EXPIRED, MessageStatus.CANCELLED}
)
# Statuses a message can be stopped in without racing a provider call in flight.
IDLE_STATUSES: frozenset[MessageStatus] = frozenset(
    {MessageStatus.PENDING, MessageStatus.RETRYING, MessageStatus.DEFERRED, MessageStatus.PAUSED}
)
ALL_STATUSES: tuple[MessageStatus, ...] = tuple(MessageStatus)


class MailingState(StrEnum):
    """A mailing's life as the API shows it; derived from timestamps, never stored."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"


class ReportStatus(StrEnum):
    """A day's statistics e-mail (``daily_report.status``): owed until it went out, then final."""

    SENDING = "sending"
    SENT = "sent"
