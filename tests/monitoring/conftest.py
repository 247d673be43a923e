"""Fixtures for the checks of deploy/monitoring: the files, their queries, and promtool."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
PROMETHEUS_CONFIG = MONITORING / "prometheus.yml"
ALERTS = MONITORING / "alerts.yml"
DASHBOARD = MONITORING / "grafana" / "herald-dashboard.json"
PROVISIONING = MONITORING / "grafana" / "provisioning"
ALERTS_TEST = Path(__file__).resolve().parent / "alerts_test.yml"

# Grafana's label_values(<series selector>, <label>) variable query; the one-argument form
# label_values(<label>) names no metric.
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.+),\s*(?P<label>\w+)\s*\)\s*$")


@dataclass(frozen=True)
class Query:
    """One PromQL expression of the monitoring files and where it comes from (for messages)."""

    where: str
    expr: str


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool, from the Debian package `prometheus`; `make test` installs it as root
    (scripts/setup_machine.py)."""
    path = shutil.which("promtool")
    if path is None:
        message = "promtool not found: apt-get install -y prometheus (Debian package)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must have it (make test installs it)", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def run_promtool(promtool: str) -> Callable[..., str]:
    """Run `promtool *args` from the repository root; fail the test with its output if it fails."""

    def run(*args: str | Path) -> str:
        result = subprocess.run(
            [promtool, *map(str, args)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        output = result.stdout + result.stderr
        if result.returncode != 0:
            pytest.fail(f"promtool {' '.join(map(str, args))} failed:\n{output}", pytrace=False)
        return output

    return run


@pytest.fixture(scope="session")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


@pytest.fixture(scope="session")
def alert_rules() -> list[dict[str, Any]]:
    """The rules of alerts.yml, every group flattened."""
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def _panels_of(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def _panel_queries(dashboard: dict[str, Any]) -> list[Query]:
    return [
        Query(f"panel {panel['id']} {panel['title']!r} target {target['refId']}", target["expr"])
        for panel in _panels_of(dashboard)
        for target in panel.get("targets", [])
    ]


def _variable_queries(dashboard: dict[str, Any]) -> list[Query]:
    """The series selectors of the dashboard's label_values(...) variables."""
    queries = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        raw = variable["query"]
        text = raw["query"] if isinstance(raw, dict) else raw
        match = _LABEL_VALUES.match(text)
        assert match, f"variable {variable['name']}: unsupported query {text!r}"
        queries.append(Query(f"variable {variable['name']}", match["selector"]))
    return queries


def _alert_queries(rules: list[dict[str, Any]]) -> list[Query]:
    return [
        Query(f"alert {rule.get('alert') or rule.get('record')}", rule["expr"]) for rule in rules
    ]


@pytest.fixture(scope="session")
def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel of the dashboard, rows included."""
    return _panels_of(dashboard)


@pytest.fixture(scope="session")
def panel_queries(dashboard: dict[str, Any]) -> list[Query]:
    """The PromQL expressions of the dashboard's panels."""
    return _panel_queries(dashboard)


@pytest.fixture(scope="session")
def all_queries(dashboard: dict[str, Any], alert_rules: list[dict[str, Any]]) -> list[Query]:
    """Every PromQL expression: dashboard panels and variables, and alert rules."""
    return _panel_queries(dashboard) + _variable_queries(dashboard) + _alert_queries(alert_rules)
