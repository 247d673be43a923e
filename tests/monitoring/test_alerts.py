"""The alert rules: the issue's alerts exist, each with a severity, annotations and a runbook
anchor in docs/operations.md, and each is unit-tested both firing and not firing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
ALERTS_TEST = Path(__file__).resolve().parent / "alerts_test.yml"
OPERATIONS_DOC = REPO / "docs" / "operations.md"

REQUIRED_ALERTS = {
    "HeraldProviderErrorRatioHigh",
    "HeraldDeadLetterQueueNotEmpty",
    "HeraldMailingStartOverdue",
    "HeraldSchedulerDown",
    "HeraldRetryBacklogGrowing",
    "HeraldSenderDown",
    "HeraldOutboxBacklog",
}
SEVERITIES = {"critical", "warning"}


def test_the_issue_alerts_exist_once(alert_rules: list[dict[str, Any]]) -> None:
    names = [rule["alert"] for rule in alert_rules if "alert" in rule]
    assert len(names) == len(set(names))
    assert REQUIRED_ALERTS - set(names) == set()


def test_alerts_have_severity_annotations_and_runbook(alert_rules: list[dict[str, Any]]) -> None:
    for rule in alert_rules:
        name = rule["alert"]
        assert name.startswith("Herald"), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert "for" in rule, f"{name}: no `for`, one bad scrape would page"
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        assert annotations["description"].strip(), name
        assert annotations["runbook"] == f"docs/operations.md#{name.lower()}"


def test_every_alert_is_unit_tested_firing_and_not(alert_rules: list[dict[str, Any]]) -> None:
    cases = [
        check
        for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"]
        for check in test.get("alert_rule_test", [])
    ]
    firing = {check["alertname"] for check in cases if check.get("exp_alerts")}
    silent = {check["alertname"] for check in cases if not check.get("exp_alerts")}
    names = {rule["alert"] for rule in alert_rules}
    assert (names - firing, names - silent) == (set(), set())


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors, plus explicit <a id/name="..."> ones."""
    anchors = set(re.findall(r"""<a\s+(?:id|name)=["']([^"']+)["']""", markdown))
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_anchor_slugs() -> None:
    text = "# Ops\n## `HeraldSenderDown`\n### Queue depth & lag ##\n<a id='custom'></a>\n"
    assert _anchors(text) == {"ops", "heraldsenderdown", "queue-depth--lag", "custom"}


def test_runbooks_exist_in_operations_doc(alert_rules: list[dict[str, Any]]) -> None:
    anchors = _anchors(OPERATIONS_DOC.read_text())
    missing = [
        rule["annotations"]["runbook"]
        for rule in alert_rules
        if rule["annotations"]["runbook"].split("#", 1)[1] not in anchors
    ]
    assert missing == []
