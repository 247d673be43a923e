"""Prometheus metrics shared by several services, and the workers' metrics endpoint.

Labels stay bounded: statuses, outcomes, tiers, routes — never an id.
"""

from __future__ import annotations

import structlog
from prometheus_client import Counter, start_http_server

MESSAGE_TRANSITIONS = Counter(
    "herald_message_transitions",
    "Messages that entered a status, counted by the process that moved them.",
    ["status"],
)


def serve_metrics(host: str, port: int) -> None:
    """Expose /metrics on ``host:port`` from a background thread; port 0 turns it off.

    A port already taken is logged, not fatal: delivery matters more than its metrics.
    """
    if not port:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as error:
        structlog.get_logger().error("metrics_unavailable", port=port, error=str(error))
        return
    structlog.get_logger().info("metrics_serving", host=host, port=port)
