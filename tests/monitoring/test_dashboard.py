"""The Grafana dashboard and its provisioning files are well formed and cover the issue's list.

Which metrics the queries name, and that they exist, is test_queries.py's job; that the PromQL
parses is test_promtool.py's.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PROVISIONING = REPO / "deploy" / "monitoring" / "grafana" / "provisioning"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
GRID_WIDTH = 24

# What the issue asks the dashboard to show, by the metric that shows it.
REQUIRED_METRICS = {
    "throughput by outcome": "herald_message_transitions_total",
    "provider calls by outcome": "herald_provider_calls_total",
    "provider latency": "herald_provider_call_duration_seconds_bucket",
    "queue depths": "rabbitmq_queue_messages_ready",
    "consumers": "rabbitmq_queue_consumers",
    "retries by tier": "herald_retries_scheduled_total",
    "messages by status": "herald_active_messages",
    "mailings by state": "herald_mailings",
    "start lag": "herald_scheduler_start_lag_seconds_bucket",
    "outbox backlog": "herald_outbox_backlog",
    "API requests by status": "herald_api_requests_total",
    "API latency": "herald_api_request_duration_seconds_bucket",
    "provider calls in flight": "herald_provider_calls_in_flight",
}


def _content_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [panel for panel in panels if panel["type"] != "row"]


def test_dashboard_is_a_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"] == "Herald"
    assert dashboard["uid"]
    assert dashboard["schemaVersion"] >= 36
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    datasource = variables["DS_PROMETHEUS"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    assert variables["vhost"]["datasource"] == DATASOURCE


def test_panel_ids_are_unique(panels: list[dict[str, Any]]) -> None:
    ids = Counter(panel["id"] for panel in panels)
    assert [panel_id for panel_id, count in ids.items() if count > 1] == []
    assert all(isinstance(panel_id, int) for panel_id in ids)


def test_every_panel_has_queries_on_the_datasource_variable(panels: list[dict[str, Any]]) -> None:
    for panel in _content_panels(panels):
        where = f"panel {panel['id']} {panel['title']!r}"
        targets = panel.get("targets", [])
        assert targets, f"{where} has no target"
        assert panel["datasource"] == DATASOURCE, where
        ref_ids = [target["refId"] for target in targets]
        assert len(set(ref_ids)) == len(ref_ids), f"{where}: duplicate refId"
        for target in targets:
            assert target["expr"].strip(), f"{where} {target['refId']}: empty query"
            assert target["datasource"] == DATASOURCE, where
        assert panel["title"], where
        assert panel.get("description"), f"{where}: no description"


def test_panels_fit_the_grid_without_overlapping(panels: list[dict[str, Any]]) -> None:
    taken: dict[tuple[int, int], int] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] < grid["x"] + grid["w"] <= GRID_WIDTH, panel["id"]
        assert grid["h"] > 0, panel["id"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"panels {taken[(x, y)]} and {panel['id']} overlap"
                taken[(x, y)] = panel["id"]


def test_dashboard_shows_what_the_issue_lists(panels: list[dict[str, Any]]) -> None:
    queries = "\n".join(
        target["expr"] for panel in _content_panels(panels) for target in panel["targets"]
    )
    missing = {
        what: metric
        for what, metric in REQUIRED_METRICS.items()
        if not re.search(rf"\b{metric}\b", queries)
    }
    assert missing == {}
    # Per-queue depths of the delivery, retry and dead-letter queues, and p50/p99 latencies.
    for needle in ("deliver", "retry", "dead", "quantile(0.5,", "quantile(0.99,"):
        assert needle in queries


def test_provisioning_files() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert datasources["apiVersion"] == 1
    [datasource] = datasources["datasources"]
    assert (datasource["type"], datasource["isDefault"]) == ("prometheus", True)
    assert datasource["url"].startswith("http")

    providers = yaml.safe_load((PROVISIONING / "dashboards" / "herald.yml").read_text())
    assert providers["apiVersion"] == 1
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
