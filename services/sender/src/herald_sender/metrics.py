"""The sender's Prometheus metrics (documented in docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PROVIDER_CALLS = Counter(
    "herald_provider_calls",
    "Provider calls by outcome: sent, transient, permanent, timeout, connection_error.",
    ["outcome"],
)
PROVIDER_LATENCY = Histogram(
    "herald_provider_call_duration_seconds",
    "Duration of provider calls by outcome.",
    ["outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_FLIGHT = Gauge("herald_provider_calls_in_flight", "Provider calls under way right now.")
RETRIES = Counter(
    "herald_retries_scheduled", "Retries sent to a delayed-retry queue, by its TTL.", ["tier"]
)
JOBS = Counter(
    "herald_sender_jobs",
    "Delivery jobs handled: acked, requeued (database away) or dead_lettered.",
    ["result"],
)
OUTCOME_WRITE_SECONDS = Histogram(
    "herald_sender_outcome_write_seconds",
    "Time to commit one batch of outcomes.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
OUTCOME_BATCH = Histogram(
    "herald_sender_outcome_batch_size",
    "Outcomes written per transaction.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
CIRCUIT_STATE = Gauge(
    "herald_provider_circuit_state",
    "1 for the state this replica's provider circuit is in: closed, open or half_open.",
    ["state"],
)
CIRCUIT_OPENED = Counter(
    "herald_provider_circuit_opened",
    "Times the circuit opened: auth (401/403) or failures (too many failed calls in a row).",
    ["reason"],
)
UNCERTAIN = Counter(
    "herald_uncertain_outcomes",
    "Calls whose outcome is unknown (the provider may have taken the message), by what "
    "followed: resent or failed (HERALD_UNCERTAIN_OUTCOME).",
    ["action"],
)
RETRY_AFTER_CAPPED = Counter(
    "herald_provider_retry_after_capped",
    "Retry-After answers longer than HERALD_RETRY_MAX_MS, cut down to it.",
)
THROTTLED = Counter(
    "herald_provider_throttled", "429 replies: every replica paused for their Retry-After."
)
POSTPONED = Counter(
    "herald_messages_postponed",
    "Messages sent back to wait without spending an attempt: auth, throttled, circuit_open.",
    ["reason"],
)
