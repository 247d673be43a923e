"""prometheus-operator gets the same rules as deploy/monitoring/alerts.yml, and scrapes every
Herald process under the job names those rules and the dashboard select on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from .selectors import selects

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "monitoring" / "alerts.yml"
REGENERATE = "uv run python deploy/k8s/generate_prometheusrule.py"


def scraped_jobs(build) -> dict[str, list[str]]:
    """job name -> Services scraped under it (as prometheus-operator names jobs)."""
    jobs: dict[str, list[str]] = {}
    for monitor in build.all("ServiceMonitor"):
        spec = monitor["spec"]
        for service in build.all("Service"):
            labels = service["metadata"]["labels"]
            if not selects(spec["selector"], labels):
                continue
            ports = {p["name"] for p in service["spec"]["ports"]}
            if not any(endpoint["port"] in ports for endpoint in spec["endpoints"]):
                continue
            job = labels.get(spec.get("jobLabel", ""), service["metadata"]["name"])
            jobs.setdefault(job, []).append(service["metadata"]["name"])
    return jobs


def test_prometheus_rule_holds_the_rules_of_alerts_yml(build):
    (rule,) = build.all("PrometheusRule")
    expected = yaml.safe_load(ALERTS.read_text())["groups"]
    assert rule["spec"]["groups"] == expected, f"out of date: run `{REGENERATE}`"


def test_every_job_the_rules_name_is_scraped(build):
    named = set(re.findall(r'job=~?"([^"]+)"', ALERTS.read_text()))
    literal = {job for job in named if re.fullmatch(r"[\w-]+", job)}
    assert {"herald-scheduler", "herald-sender"} <= literal
    jobs = scraped_jobs(build)
    herald_jobs = {"herald-api", "herald-scheduler", "herald-sender", "herald-reporter"}
    assert herald_jobs | literal <= set(jobs), jobs
    for job in herald_jobs:
        assert jobs[job] == [job], f"one Service per job: {jobs[job]}"
    if build.name == "dev":
        # The queue alerts read the in-cluster broker's metrics.
        assert "rabbitmq" in jobs


@pytest.mark.parametrize(
    "job", ["herald-api", "herald-scheduler", "herald-sender", "herald-reporter"]
)
def test_scraped_ports_are_where_the_processes_serve_metrics(build, job):
    service = build.get("Service", job)
    monitor = next(
        m
        for m in build.all("ServiceMonitor")
        if selects(m["spec"]["selector"], service["metadata"]["labels"])
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint.get("path", "/metrics") == "/metrics"
    (service_port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    deployment = build.get("Deployment", job)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = build.env(container)
    served = int(env["HERALD_API_PORT"] if job == "herald-api" else env["HERALD_METRICS_PORT"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[service_port["targetPort"]] == served
