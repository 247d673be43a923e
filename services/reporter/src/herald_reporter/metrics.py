"""The reporter's Prometheus metrics (documented in docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REPORTS = Counter(
    "herald_reporter_reports",
    "Daily report send attempts by result: sent, or failed (retried with backoff).",
    ["result"],
)
LAST_SENT = Gauge(
    "herald_reporter_last_sent_timestamp_seconds",
    "When the latest daily report was sent (any replica; read from the database), Unix time.",
)
OWED = Gauge("herald_reporter_owed_reports", "Report days recorded but not sent yet (any replica).")
SEND_SECONDS = Histogram(
    "herald_reporter_send_duration_seconds",
    "One SMTP delivery of a report, successful or not.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
TICK_ERRORS = Counter(
    "herald_reporter_tick_errors", "Reporter rounds that failed (database away, a bug)."
)
