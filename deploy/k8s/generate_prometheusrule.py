"""Write base/monitoring/prometheusrule.yaml from deploy/monitoring/alerts.yml (its one source).

Run after changing the alert rules: `uv run python deploy/k8s/generate_prometheusrule.py`;
tests/k8s fail while the two hold different rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ALERTS = HERE.parent / "monitoring" / "alerts.yml"
TARGET = HERE / "base" / "monitoring" / "prometheusrule.yaml"
HEADER = """\
# Generated from deploy/monitoring/alerts.yml by deploy/k8s/generate_prometheusrule.py: do not
# edit here. The rules' runbooks are in docs/operations.md. If your Prometheus selects rules by a
# label (kube-prometheus-stack: `release`), add it in your overlay (docs/deploy.md).
"""


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, so that the expressions read as in alerts.yml."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def render() -> str:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    rule: dict[str, Any] = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "herald",
            "labels": {
                "app.kubernetes.io/name": "herald",
                "app.kubernetes.io/component": "monitoring",
            },
        },
        "spec": {"groups": groups},
    }
    body = yaml.dump(rule, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET.relative_to(HERE.parents[1])}")
