"""Every Herald container runs a real console script with settings its service accepts, probes
real routes on the ports it listens on, and runs hardened, sized and stopped in time."""

from __future__ import annotations

import re
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import start_http_server
from starlette.routing import Match

from herald_api.main import create_app
from herald_api.settings import ApiSettings
from herald_common.settings import (
    BadSettings,
    HeraldSettings,
    RetrySettings,
    load_settings,
    to_sqlalchemy_url,
)
from herald_provider_sim import config as sim_config
from herald_provider_sim.app import create_app as create_sim_app
from herald_reporter.settings import ReporterSettings
from herald_scheduler.settings import SchedulerSettings
from herald_sender import main as sender_main
from herald_sender.settings import SenderSettings

from .conftest import BASE_SECRET_EXAMPLE, PROD_SECRET_EXAMPLE

REPO = Path(__file__).resolve().parents[2]
SETTINGS = {
    "herald-api": ApiSettings,
    "herald-scheduler": SchedulerSettings,
    "herald-sender": SenderSettings,
    "herald-reporter": ReporterSettings,
}
WORKERS = ("herald-scheduler", "herald-sender", "herald-reporter")


def console_scripts() -> set[str]:
    scripts: set[str] = set()
    for pyproject in [*REPO.glob("services/*/pyproject.toml"), *REPO.glob("libs/*/pyproject.toml")]:
        project = tomllib.loads(pyproject.read_text())["project"]
        scripts.update(project.get("scripts", {}))
    return scripts


def setting_names() -> set[str]:
    names = set()
    for cls in (HeraldSettings, RetrySettings, *SETTINGS.values()):
        names.update("HERALD_" + field.upper() for field in cls.model_fields)
    return names


def simulator_names() -> set[str]:
    """HERALD_SIM_* variables herald_provider_sim.config reads (it has no settings class)."""
    source = Path(sim_config.__file__).read_text()
    fields = {*sim_config.FAULT_FIELDS, *re.findall(r'_env_int\(env, "(\w+)"', source)}
    fields.update(name.lower() for name in re.findall(r'ENV_PREFIX \+ "(\w+)"', source))
    return {sim_config.ENV_PREFIX + name.upper() for name in fields}


def command(container: dict[str, Any]) -> str:
    return container["command"][0]


def port(container: dict[str, Any], name: str) -> int:
    return next(p["containerPort"] for p in container["ports"] if p["name"] == name)


def effective_security(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    # A container's own securityContext overrides the pod's fields of the same name.
    return {**pod.get("securityContext", {}), **container.get("securityContext", {})}


def test_every_container_command_is_a_declared_console_script(build):
    scripts = console_scripts()
    assert {"herald-api", "herald-migrate", "herald-sender"} <= scripts
    seen = set()
    for workload, container in build.herald_containers():
        where = f"{build.name}: {workload['metadata']['name']}/{container['name']}"
        # The image's command is whatever the pod says: it must say it.
        assert len(container.get("command", [])) == 1, where
        assert "args" not in container, where
        assert command(container) in scripts, where
        seen.add(command(container))
    assert {"herald-migrate", *SETTINGS} <= seen


def test_every_herald_variable_set_is_a_setting(build):
    known = setting_names()
    simulator = simulator_names()
    assert {"HERALD_DATABASE_URL", "HERALD_API_PORT", "HERALD_SENDER_CONCURRENCY"} <= known
    assert {"HERALD_SIM_HOST", "HERALD_SIM_PORT", "HERALD_SIM_JWT_SECRET"} <= simulator
    names: dict[str, str] = {}
    for config_map in build.all("ConfigMap"):
        names.update(
            dict.fromkeys(config_map["data"], f"ConfigMap {config_map['metadata']['name']}")
        )
    for workload, container in build.containers():
        where = f"{workload['metadata']['name']}/{container['name']}"
        names.update({item["name"]: where for item in container.get("env", [])})
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names[ref["key"]] = f"Secret {ref['name']} (from {where})"
    herald = {name: where for name, where in names.items() if name.startswith("HERALD_")}
    unknown = {
        name: where
        for name, where in herald.items()
        if name not in known
        and not (name in simulator and "provider-sim" in where)
        and not (name in simulator and where.startswith("Secret herald-dev-infra"))
    }
    assert not unknown, f"{build.name}: not a field of any settings class: {unknown}"


def test_every_service_accepts_its_environment_and_listens_on_its_ports(build, herald_env):
    for workload, container in build.herald_containers():
        env = build.env(container)
        where = f"{build.name}: {workload['metadata']['name']}"
        herald_env(env)
        if command(container) == "herald-migrate":
            to_sqlalchemy_url(env["HERALD_DATABASE_URL"])
            continue
        if command(container) == "herald-provider-sim":
            sim = sim_config.load_config(env)
            assert (sim.host, sim.port) == ("0.0.0.0", port(container, "http")), where
            continue
        settings = SETTINGS[command(container)]()
        if command(container) == "herald-api":
            assert settings.api_host == "0.0.0.0", where
            assert settings.api_port == port(container, "http"), where
        else:
            assert settings.metrics_host == "0.0.0.0", where
            assert settings.metrics_port == port(container, "metrics"), where


def test_services_target_the_ports_the_processes_listen_on(build):
    for service in build.all("Service"):
        selector = service["spec"]["selector"]
        workload = next(
            w
            for w in build.workloads()
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        )
        ports = {
            (p.get("name"), p["containerPort"])
            for c in workload["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for service_port in service["spec"]["ports"]:
            target = service_port["targetPort"]
            assert any(target in pair for pair in ports), (service["metadata"]["name"], target)
            # Same number on both sides: what the docs and the NetworkPolicies name.
            assert (target, service_port["port"]) in ports or target == service_port["port"]


@pytest.fixture(scope="module")
def api_serves() -> Any:
    """Whether the real API application has a GET route for a path."""
    settings = ApiSettings(
        database_url="postgresql://herald:x@127.0.0.1:5432/herald",
        amqp_url="amqp://guest:guest@127.0.0.1:5672/",
        api_token="x" * 32,
    )
    # Building the app connects nothing (that is the lifespan's job).
    app = create_app(settings)

    def serves(path: str) -> bool:
        scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
        return any(route.matches(scope)[0] == Match.FULL for route in app.routes)

    return serves


@pytest.fixture(scope="module")
def metrics_server_paths() -> Any:
    """Whether the workers' metrics server (prometheus_client's) answers 200 on a path."""
    server, thread = start_http_server(0, addr="127.0.0.1")
    base = f"http://127.0.0.1:{server.server_port}"

    def answers(path: str) -> bool:
        with urllib.request.urlopen(base + path, timeout=5) as response:
            return response.status == 200 and b"# HELP" in response.read()

    yield answers
    server.shutdown()
    thread.join(5)


@pytest.mark.parametrize(
    "example", [PROD_SECRET_EXAMPLE, BASE_SECRET_EXAMPLE], ids=["prod", "base"]
)
def test_a_secret_example_applied_without_filling_it_in_stops_the_api(
    builds: Any, herald_env: Any, example: Path
) -> None:
    prod = builds["prod"]
    api = next(c for _, c in prod.herald_containers() if command(c) == "herald-api")
    env = prod.env(api)  # as the operator fills it in: the API starts
    herald_env(env)
    load_settings(ApiSettings)
    # The copy applied as it is: the API says which placeholder is left.
    as_shipped = yaml.safe_load(example.read_text())["stringData"]
    herald_env({**env, **{k: str(v) for k, v in as_shipped.items() if k in env}})
    with pytest.raises(BadSettings) as refused:
        load_settings(ApiSettings)
    # One line per secret left as it was, each named.
    assert [problem.split(":")[0] for problem in refused.value.problems] == [
        "HERALD_API_TOKEN",
        "HERALD_ADMIN_SESSION_SECRET",
    ]
    assert all("documented placeholder" in problem for problem in refused.value.problems)


def test_probes_hit_real_routes_on_declared_ports(build, api_serves, metrics_server_paths):
    sim_routes = {r.resource.canonical for r in create_sim_app().router.routes() if r.resource}
    assert api_serves("/healthz")
    assert api_serves("/readyz")
    assert not api_serves("/ready")
    for workload, container in build.containers():
        where = f"{build.name}: {workload['metadata']['name']}"
        if workload["kind"] == "Job":
            continue
        assert "readinessProbe" in container, where
        assert "livenessProbe" in container, where
        names = {p["name"] for p in container["ports"]}
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container.get(kind)
            if probe is None:
                continue
            handler = probe.get("httpGet") or probe.get("tcpSocket")
            if handler is None:
                assert "exec" in probe, where
                continue
            assert handler["port"] in names, f"{where} {kind}: port {handler['port']}"
            if "httpGet" not in probe or container["image"].split(":")[0] != (
                "registry.example.com/herald/herald"
            ):
                continue
            path = handler["path"]
            if command(container) == "herald-api":
                assert api_serves(path), f"{where} {kind}: {path}"
            elif command(container) in WORKERS:
                assert handler["port"] == "metrics", where
                assert metrics_server_paths(path), f"{where} {kind}: {path}"
            else:
                assert path in sim_routes, f"{where} {kind}: {path}"
    api = build.get("Deployment", "herald-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_every_pod_is_hardened_and_sized(build):
    for workload in build.workloads():
        pod = workload["spec"]["template"]["spec"]
        name = f"{build.name}: {workload['metadata']['name']}"
        assert pod.get("automountServiceAccountToken") is False, name
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = f"{name}/{container['name']}"
            security = effective_security(pod, container)
            assert security.get("runAsNonRoot") is True, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("capabilities") == {"drop": ["ALL"]}, where
            assert security.get("seccompProfile") == {"type": "RuntimeDefault"}, where
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{where} {bound}"
            if container["image"].split(":")[0] == "registry.example.com/herald/herald":
                # The image's contract: UID 10001, a writable /tmp and nothing else.
                assert security.get("runAsUser") == 10001, where
                tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
                assert "emptyDir" in volumes[tmp["name"]], where


def test_grace_periods_cover_each_shutdown(build):
    def grace(name: str) -> int:
        deployment = build.get("Deployment", name)
        return int(deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])

    sender = next(c for _, c in build.herald_containers() if command(c) == "herald-sender")
    sender_env = build.env(sender)
    provider_timeout = float(sender_env.get("HERALD_PROVIDER_TIMEOUT_S", 10))
    # The drain bounds the shutdown; the provider call in flight ends within it; then the
    # outcomes are flushed and the connections closed.
    assert provider_timeout < sender_main.DRAIN_TIMEOUT_S
    assert grace("herald-sender") >= sender_main.DRAIN_TIMEOUT_S + 10
    reporter = next(c for _, c in build.herald_containers() if command(c) == "herald-reporter")
    smtp_timeout = float(build.env(reporter).get("HERALD_SMTP_TIMEOUT_S", 30))
    assert grace("herald-reporter") >= smtp_timeout + 10
    api = build.get("Deployment", "herald-api")["spec"]["template"]["spec"]["containers"][0]
    assert grace("herald-api") >= api["lifecycle"]["preStop"]["sleep"]["seconds"] + 10
    assert grace("herald-scheduler") >= 10
