"""The API's Prometheus metrics (documented in docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "herald_api_requests",
    "HTTP requests by route template, method and status code.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "herald_api_request_duration_seconds",
    "HTTP request latency by route template and method.",
    ["method", "route"],
    buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS = Counter(
    "herald_api_mailing_events",
    "Mailing events for the scheduler: published, skipped (no broker) or failed.",
    ["result"],
)
