"""promtool on deploy/monitoring: the config, the alert rules and their unit tests, and the
dashboard's queries (as recording rules, so that promtool parses their PromQL too)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
ALERTS = MONITORING / "alerts.yml"
PROMETHEUS_CONFIG = MONITORING / "prometheus.yml"
ALERTS_TEST = Path(__file__).resolve().parent / "alerts_test.yml"

Promtool = Callable[..., str]


def test_alert_rules_pass_promtool_check(run_promtool: Promtool) -> None:
    assert "SUCCESS" in run_promtool("check", "rules", ALERTS)


def test_prometheus_config_passes_promtool_check(run_promtool: Promtool) -> None:
    assert "SUCCESS" in run_promtool("check", "config", PROMETHEUS_CONFIG)


def test_alert_rules_unit_tests_pass(run_promtool: Promtool) -> None:
    assert "SUCCESS" in run_promtool("test", "rules", ALERTS_TEST)


def test_dashboard_queries_are_valid_promql(
    run_promtool: Promtool, panel_queries: list[Any], tmp_path: Path
) -> None:
    """Grafana's variables replaced by plausible values; a syntax error fails promtool."""

    def concrete(expr: str) -> str:
        expr = re.sub(r"\$\{?__(rate_)?interval\}?", "5m", expr)
        return re.sub(r"\$\{?\w+\}?", ".*", expr)  # $vhost and friends sit in regex matchers

    rules = [
        {"record": f"dashboard:query_{index}", "expr": concrete(query.expr)}
        for index, query in enumerate(panel_queries)
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in run_promtool("check", "rules", path)


def test_prometheus_config_scrapes_the_make_run_stack() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    scrapes = {
        scrape["job_name"]: (
            scrape.get("metrics_path", "/metrics"),
            [target for group in scrape["static_configs"] for target in group["targets"]],
        )
        for scrape in config["scrape_configs"]
    }
    assert scrapes == {
        "herald-api": ("/metrics", ["127.0.0.1:8000"]),
        "herald-scheduler": ("/metrics", ["127.0.0.1:9101"]),
        "herald-sender": ("/metrics", ["127.0.0.1:9102", "127.0.0.1:9103"]),
        "herald-reporter": ("/metrics", ["127.0.0.1:9109"]),
        "rabbitmq": ("/metrics", ["127.0.0.1:15693"]),
    }
    assert config["rule_files"] == ["alerts.yml"]
    assert config["global"]["scrape_interval"] == "15s"
