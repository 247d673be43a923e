"""When a watched mailing is settled, and how its progress reads: pure functions of the API's
``GET /mailings/{id}/stats`` answer and ``now``.

Settled means both of the API's signals: its ``state`` is ``finished`` (the scheduler marks a
mailing finished once its fan-out is done and every message is settled, or the mailing's end
has passed) and every message counted in ``total`` is in a terminal status. After the end,
the state is ``finished`` at once while the last messages still wait to be marked
``expired``: the counts must have caught up too. A paused mailing is not settled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The contract's terminal statuses, exactly (BRIEF: sent, failed, expired, cancelled).
TERMINAL_STATUSES = ("sent", "failed", "expired", "cancelled")


@dataclass(frozen=True, slots=True)
class Reading:
    """One poll of the stats, as the progress bar shows it."""

    done: int
    total: int
    percent: float
    settled: bool
    rate: str
    eta: str
    state: str


def done_of(stats: Mapping[str, Any]) -> int:
    by_status: Mapping[str, int] = stats.get("by_status") or {}
    return sum(int(by_status.get(status, 0)) for status in TERMINAL_STATUSES)


def is_settled(stats: Mapping[str, Any]) -> bool:
    return stats.get("state") == "finished" and done_of(stats) >= int(stats.get("total", 0))


def read_progress(stats: Mapping[str, Any], now: datetime) -> Reading:
    done, total = done_of(stats), int(stats.get("total", 0))
    settled = is_settled(stats)
    # A mailing without messages is 0 % done until it settles, then 100 %.
    percent = 100.0 * done / total if total else (100.0 if settled else 0.0)
    progress: Mapping[str, Any] = stats.get("progress") or {}
    rate_per_s = progress.get("rate_per_s")
    rate = f"{rate_per_s:,.1f} msg/s" if isinstance(rate_per_s, int | float) else "– msg/s"
    return Reading(
        done=done,
        total=total,
        percent=percent,
        settled=settled,
        rate=rate,
        eta=describe_eta(stats, now, settled),
        state=str(stats.get("state", "?")),
    )


def describe_eta(stats: Mapping[str, Any], now: datetime, settled: bool) -> str:
    """The API's estimated finish as time left, or why there is none."""
    if settled:
        return "done"
    state = stats.get("state")
    by_status: Mapping[str, int] = stats.get("by_status") or {}
    if state == "scheduled":
        return "starts at " + str(stats.get("starts_at", "?"))
    if state == "paused":
        return "paused"
    if state == "finished":
        return "ended: the rest expire"
    if by_status.get("deferred"):
        return "waiting for send windows"
    finish = (stats.get("progress") or {}).get("estimated_finish_at")
    if not isinstance(finish, str):
        return "ETA –"
    try:
        left = (datetime.fromisoformat(finish) - now).total_seconds()
    except ValueError:
        return "ETA –"
    return "ETA " + format_duration(max(left, 0.0))


def format_duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def final_counts(stats: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Every terminal status, then any other status that still has messages, then ``total``."""
    by_status: Mapping[str, int] = stats.get("by_status") or {}
    others = [s for s in by_status if s not in TERMINAL_STATUSES and by_status[s]]
    rows = [(status, int(by_status.get(status, 0))) for status in (*TERMINAL_STATUSES, *others)]
    return [*rows, ("total", int(stats.get("total", 0)))]
