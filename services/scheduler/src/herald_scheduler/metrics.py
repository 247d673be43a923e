"""The scheduler's Prometheus metrics (documented in docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MAILINGS = Gauge("herald_mailings", "Live mailings by state.", ["state"])
START_OVERDUE = Gauge(
    "herald_scheduler_start_overdue_mailings",
    "Mailings due for over a minute whose fan-out has not begun.",
)
START_LAG = Histogram(
    "herald_scheduler_start_lag_seconds",
    "How late a mailing's fan-out began after its starts_at.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
)
FANOUT_MESSAGES = Counter("herald_scheduler_fanout_messages", "Messages created by fan-out.")
FANOUT_CHUNK_SECONDS = Histogram(
    "herald_scheduler_fanout_chunk_seconds",
    "Time of one fan-out step: its chunks created side by side, committed with their jobs.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REQUEUED = Counter(
    "herald_scheduler_requeued_messages",
    "Messages given a new delivery job: window_opened (deferred), lease_expired (dead sender) "
    "or job_lost (no job for them in the broker any more).",
    ["reason"],
)
ACTIVE_MESSAGES = Gauge(
    "herald_active_messages", "Messages of unfinished mailings by status.", ["status"]
)
OUTBOX_BACKLOG = Gauge(
    "herald_outbox_backlog", "Outbox rows not yet published (quarantined ones not counted)."
)
OUTBOX_QUARANTINED = Gauge(
    "herald_outbox_quarantined",
    "Outbox rows the broker kept refusing (unroutable), set aside for a human.",
)
OUTBOX_QUARANTINED_ROWS = Counter(
    "herald_outbox_quarantined_rows", "Outbox rows quarantined by the relay."
)
OUTBOX_RELAYED = Counter(
    "herald_outbox_relayed_jobs", "Jobs the relay published because their writer did not."
)
TICK_ERRORS = Counter(
    "herald_scheduler_tick_errors",
    "Scheduler steps that failed (database or broker away, a mailing whose fan-out fails).",
    ["step"],
)
PRUNED_MESSAGES = Counter(
    "herald_scheduler_pruned_messages",
    "Message rows deleted by retention (HERALD_RETENTION_DAYS); their counts stay.",
)
FANOUT_FAILURES = Counter(
    "herald_scheduler_fanout_failures",
    "Fan-out steps that failed; the mailing is held back, 1 s doubling to a minute.",
)
