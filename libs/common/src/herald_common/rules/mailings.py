"""Rules about changing a mailing: whether it has started, and how its end may move.

Its state (scheduled, running, paused, finished) is ``herald_common.tables.mailing.state``."""

from __future__ import annotations

from datetime import datetime, timedelta

# A sender checks the end it read when it claimed a message; an end moved earlier, to within
# this of now, could be passed by a message claimed under the old one.
MIN_END_NOTICE = timedelta(seconds=10)


def has_started(now: datetime, starts_at: datetime, started_at: datetime | None) -> bool:
    """Started for the user: its start has come, even if the scheduler has not yet picked it up."""
    return started_at is not None or now >= starts_at


def end_move_refusal(now: datetime, ends_at: datetime, new_ends_at: datetime) -> str | None:
    """Why ``ends_at`` may not move to ``new_ends_at`` (None: it may). A later end is always
    fine; an earlier one must leave ``MIN_END_NOTICE``, so that no message claimed under the
    old end reaches the provider after the new one."""
    if new_ends_at >= ends_at or new_ends_at >= now + MIN_END_NOTICE:
        return None
    seconds = int(MIN_END_NOTICE.total_seconds())
    return (
        f"an earlier end must be at least {seconds} s from now: messages already handed to "
        "senders were checked against the old end (to stop a mailing now, pause or delete it)"
    )
