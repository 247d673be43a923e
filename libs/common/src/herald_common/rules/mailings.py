"""A mailing's state and whether it is due, from its times and an explicit ``now``."""

from __future__ import annotations

from datetime import datetime

from herald_common.statuses import MailingState


def mailing_state(
    now: datetime,
    starts_at: datetime,
    ends_at: datetime,
    finished_at: datetime | None,
    paused_at: datetime | None = None,
) -> MailingState:
    if finished_at is not None or now >= ends_at:
        return MailingState.FINISHED
    if paused_at is not None:
        return MailingState.PAUSED
    if now < starts_at:
        return MailingState.SCHEDULED
    return MailingState.RUNNING


def has_started(now: datetime, starts_at: datetime, started_at: datetime | None) -> bool:
    """Started for the user: its start has come, even if the scheduler has not yet picked it up."""
    return started_at is not None or now >= starts_at
