"""docker-compose.yml: valid against the compose specification, and every claim it makes about
Herald true of the code: the commands exist, each HERALD_* variable is read by the process it is
set on (and loads), ports, URLs and health checks point where the processes really listen."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings
from starlette.routing import Match

from herald_api.settings import ApiSettings
from herald_common.settings import RetrySettings
from herald_provider_sim.app import create_app as create_simulator_app
from herald_provider_sim.config import SimConfig, load_config
from herald_provider_sim.tokens import TokenVerifier
from herald_reporter.settings import ReporterSettings
from herald_scheduler.settings import SchedulerSettings
from herald_sender.settings import SenderSettings

from .conftest import (
    COMPOSE,
    OPERATOR_SHELL,
    REPO,
    Member,
    MissingVariable,
    bind_mounts,
    environment_of,
    healthcheck_command,
    published_ports,
    raw_environment_of,
    run_tool,
    venv_tool,
)

# The settings classes each console script reads (herald_*/main.py); the first one is the
# service's own. herald-migrate and herald-provider-sim read os.environ themselves.
SETTINGS: dict[str, tuple[type[BaseSettings], ...]] = {
    "herald-api": (ApiSettings, RetrySettings),
    "herald-scheduler": (SchedulerSettings,),
    "herald-sender": (SenderSettings,),
    "herald-reporter": (ReporterSettings,),
}
ENVIRON_READERS = ("herald-migrate", "herald-provider-sim")
# Ports the third-party images listen on by default.
POSTGRES_PORT = 5432
AMQP_PORT = 5672
RABBITMQ_MANAGEMENT_PORT = 15672
RABBITMQ_PROMETHEUS_PORT = 15692  # rabbitmq_prometheus
PROMETHEUS_PORT = 9090
PROMETHEUS_CONFIG_IN_IMAGE = "/etc/prometheus/prometheus.yml"
GRAFANA_PROVISIONING_IN_IMAGE = "/etc/grafana/provisioning"
MONITORING_CONFIG = REPO / "deploy" / "monitoring" / "prometheus.yml"
_URL = re.compile(r"https?://[^\s'\"]+")


class RecordingEnviron(dict[str, str]):
    """An environment that remembers which names were looked up."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)


def names_read_by_migrate(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    from herald_common import migrate

    environ = RecordingEnviron()
    with monkeypatch.context() as patch:
        patch.setattr(os, "environ", environ)
        patch.setattr("sys.argv", ["herald-migrate"])
        with pytest.raises(SystemExit):  # no HERALD_DATABASE_URL in an empty environment
            migrate.run()
    return environ.read


def names_read_by_simulator() -> set[str]:
    environ = RecordingEnviron()
    load_config(environ)
    return environ.read


def settings_names(classes: tuple[type[BaseSettings], ...]) -> set[str]:
    return {
        f"{cls.model_config.get('env_prefix', '')}{name}".upper()
        for cls in classes
        for name in cls.model_fields
    }


@pytest.fixture
def names_read(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], set[str]]:
    """The environment variables a console script reads."""

    def read(script: str) -> set[str]:
        if script in SETTINGS:
            return settings_names(SETTINGS[script])
        if script == "herald-migrate":
            return names_read_by_migrate(monkeypatch)
        if script == "herald-provider-sim":
            return names_read_by_simulator()
        raise AssertionError(f"{script}: unknown to tests/shipping; add it to SETTINGS")

    return read


@pytest.fixture
def settings_of(
    monkeypatch: pytest.MonkeyPatch,
    no_herald_env: object,
    command_of: Callable[[str], list[str]],
    env_in_container: Callable[[str], dict[str, str]],
) -> Callable[[str], Any]:
    """A Herald service's own settings, loaded from the environment its container gets."""

    def load(name: str) -> BaseSettings:
        script = command_of(name)[0]
        with monkeypatch.context() as patch:
            for key, value in env_in_container(name).items():
                patch.setenv(key, value)
            return SETTINGS[script][0]()

    return load


@pytest.fixture(scope="session")
def service_of_script(
    herald_services: dict[str, dict[str, Any]], command_of: Callable[[str], list[str]]
) -> dict[str, str]:
    found = {command_of(name)[0]: name for name in herald_services}
    for script in (*SETTINGS, *ENVIRON_READERS):
        assert script in found, f"no compose service runs {script}"
    return found


def simulator_config(env: dict[str, str]) -> SimConfig:
    return load_config(env)


def healthcheck_urls(service: dict[str, Any]) -> list[SplitResult]:
    return [urlsplit(url) for url in _URL.findall(" ".join(healthcheck_command(service)))]


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency -> condition (service_started for the list form)."""
    value = service.get("depends_on") or {}
    if isinstance(value, list):
        return dict.fromkeys(value, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in value.items()}


def all_dependencies(services: dict[str, dict[str, Any]], name: str) -> set[str]:
    seen: set[str] = set()
    todo = list(depends_on(services[name]))
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(depends_on(services[current]))
    return seen


def prometheus_config(services: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], Path]:
    mounts = bind_mounts(services["prometheus"])
    command = " ".join(services["prometheus"].get("command", []))
    match = re.search(r"--config\.file=(\S+)", command)
    in_container = match[1] if match else PROMETHEUS_CONFIG_IN_IMAGE
    assert in_container in mounts, f"nothing of the repository is mounted at {in_container}"
    path = mounts[in_container]
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data, Path(in_container)


# --- the file itself --------------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    result = run_tool(
        venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", COMPOSE
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_repository_file_mounted_exists(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"


def test_published_ports_listen_on_localhost_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for entry in service.get("ports", []):
            assert str(entry).startswith("127.0.0.1:"), f"{name}: {entry} is open to the network"


def test_secrets_are_development_values_or_come_from_the_operator(
    services: dict[str, dict[str, Any]],
) -> None:
    secret = re.compile(r"PASSWORD|_PASS$|SECRET|API_TOKEN")
    required = re.compile(r"^\$\{(\w+):\?[^}]+\}$")
    for name, service in services.items():
        for key, value in raw_environment_of(service).items():
            if key == "HERALD_API_TOKEN":
                # Herald checks callers against it: no value anyone can read here will do.
                match = required.match(value)
                assert match is not None, f"{name}: {key} must be ${{{key}:?…}}, not {value!r}"
                assert match[1] == key
            elif secret.search(key):
                assert "dev" in value, f"{name}: {key} does not look like a placeholder"
            for url in _URL.findall(value) + re.findall(r"\w+://\S+", value):
                password = urlsplit(url).password
                assert password is None or "dev" in password, f"{name}: {key} has a password"


# --- commands and variables -------------------------------------------------------------------


def test_compose_refuses_to_start_without_the_api_token_and_names_it(
    services: dict[str, dict[str, Any]], service_of_script: dict[str, str]
) -> None:
    api = services[service_of_script["herald-api"]]
    with pytest.raises(MissingVariable, match=r"^HERALD_API_TOKEN: set HERALD_API_TOKEN to 32"):
        environment_of(api, shell={})
    assert environment_of(api)["HERALD_API_TOKEN"] == OPERATOR_SHELL["HERALD_API_TOKEN"]


def test_every_command_is_a_declared_console_script_in_the_image(
    herald_services: dict[str, dict[str, Any]],
    command_of: Callable[[str], list[str]],
    members: dict[str, Member],
    image_scripts: set[str],
) -> None:
    declared = {
        script
        for member in members.values()
        if member.path.parts[-2] in ("services", "tools", "libs")
        for script in member.scripts
    }
    for name in herald_services:
        script = command_of(name)[0]
        assert script in declared, f"{name}: {script} is no console script of the workspace"
        assert script in image_scripts, f"{name}: {script} is not installed in the image"


def test_every_herald_variable_is_read_by_the_process_it_is_set_on(
    herald_services: dict[str, dict[str, Any]],
    command_of: Callable[[str], list[str]],
    names_read: Callable[[str], set[str]],
) -> None:
    for name, service in herald_services.items():
        script = command_of(name)[0]
        unread = {key for key in environment_of(service) if key.startswith("HERALD_")}
        unread -= names_read(script)
        assert not unread, f"{name} ({script}) reads no {sorted(unread)}"


def test_every_herald_variable_of_the_image_is_read_by_one_of_its_processes(
    image_env: dict[str, str], image_scripts: set[str], names_read: Callable[[str], set[str]]
) -> None:
    read = set().union(
        *(names_read(s) for s in image_scripts if s in SETTINGS or s in ENVIRON_READERS)
    )
    unread = {key for key in image_env if key.startswith("HERALD_")} - read
    assert not unread


def test_each_service_loads_its_settings_from_its_environment(
    service_of_script: dict[str, str], settings_of: Callable[[str], Any]
) -> None:
    """Required variables present, every value valid (the reporter's recipients, the URLs…)."""
    for script in SETTINGS:
        settings_of(service_of_script[script])


def test_the_simulator_loads_its_environment(
    service_of_script: dict[str, str], env_in_container: Callable[[str], dict[str, str]]
) -> None:
    load_config(env_in_container(service_of_script["herald-provider-sim"]))


# --- where things listen ----------------------------------------------------------------------


def test_the_api_is_published_on_the_port_it_listens_on(
    services: dict[str, dict[str, Any]],
    service_of_script: dict[str, str],
    settings_of: Callable[[str], Any],
) -> None:
    name = service_of_script["herald-api"]
    settings = settings_of(name)
    assert isinstance(settings, ApiSettings)
    assert settings.api_host == "0.0.0.0"
    assert (8000, settings.api_port) in published_ports(services[name])  # the README's URL


def test_workers_serve_metrics(
    service_of_script: dict[str, str], settings_of: Callable[[str], Any]
) -> None:
    for script in ("herald-scheduler", "herald-sender", "herald-reporter"):
        settings = settings_of(service_of_script[script])
        assert settings.metrics_port != 0, f"{script}: /metrics is off"
        assert settings.metrics_host == "0.0.0.0", script


def test_the_senders_reach_the_simulator_with_a_token_it_accepts(
    services: dict[str, dict[str, Any]],
    service_of_script: dict[str, str],
    settings_of: Callable[[str], Any],
    env_in_container: Callable[[str], dict[str, str]],
) -> None:
    sender = settings_of(service_of_script["herald-sender"])
    assert isinstance(sender, SenderSettings)
    simulator = service_of_script["herald-provider-sim"]
    config = simulator_config(env_in_container(simulator))
    url = urlsplit(sender.provider_url)
    assert (url.hostname, url.port) == (simulator, config.port)
    assert config.host == "0.0.0.0"
    token = sender.provider_token.get_secret_value()
    assert TokenVerifier(config.secret).verify(f"Bearer {token}")
    assert any(port == config.port for _, port in published_ports(services[simulator]))


def test_there_are_two_senders(
    services: dict[str, dict[str, Any]], service_of_script: dict[str, str]
) -> None:
    sender = services[service_of_script["herald-sender"]]
    assert sender.get("deploy", {}).get("replicas", 1) >= 2


def test_database_and_broker_urls_match_their_servers(
    services: dict[str, dict[str, Any]], herald_services: dict[str, dict[str, Any]]
) -> None:
    postgres = environment_of(services["postgres"])
    rabbitmq = environment_of(services["rabbitmq"])
    checked = 0
    for name, service in herald_services.items():
        env = environment_of(service)
        if "HERALD_DATABASE_URL" in env:
            url = urlsplit(env["HERALD_DATABASE_URL"])
            assert (url.hostname, url.port or POSTGRES_PORT) == ("postgres", POSTGRES_PORT), name
            assert url.username == postgres["POSTGRES_USER"], name
            assert url.password == postgres["POSTGRES_PASSWORD"], name
            assert url.path.lstrip("/") == postgres["POSTGRES_DB"], name
            checked += 1
        if env.get("HERALD_AMQP_URL"):
            url = urlsplit(env["HERALD_AMQP_URL"])
            assert (url.hostname, url.port or AMQP_PORT) == ("rabbitmq", AMQP_PORT), name
            assert url.username == rabbitmq["RABBITMQ_DEFAULT_USER"], name
            assert url.password == rabbitmq["RABBITMQ_DEFAULT_PASS"], name
    assert checked >= 5


def test_the_reporter_mails_to_mailpit(
    services: dict[str, dict[str, Any]],
    service_of_script: dict[str, str],
    settings_of: Callable[[str], Any],
) -> None:
    reporter = settings_of(service_of_script["herald-reporter"])
    assert isinstance(reporter, ReporterSettings)
    mailpit = environment_of(services["mailpit"])
    assert reporter.smtp_host == "mailpit"
    assert reporter.smtp_port == int(mailpit["MP_SMTP_BIND_ADDR"].rsplit(":", 1)[1])
    web_port = int(mailpit["MP_UI_BIND_ADDR"].rsplit(":", 1)[1])
    assert (8025, web_port) in published_ports(services["mailpit"])


def test_the_rabbitmq_management_ui_is_published(services: dict[str, dict[str, Any]]) -> None:
    assert (15672, RABBITMQ_MANAGEMENT_PORT) in published_ports(services["rabbitmq"])


# --- health checks and start order ------------------------------------------------------------


def test_every_long_running_herald_service_has_a_health_check(
    herald_services: dict[str, dict[str, Any]], command_of: Callable[[str], list[str]]
) -> None:
    for name, service in herald_services.items():
        if command_of(name)[0] != "herald-migrate":
            assert healthcheck_command(service)[:1] == ["CMD"], f"{name}: no exec-form check"


def test_the_api_health_check_asks_a_real_route_on_its_port(
    herald_services: dict[str, dict[str, Any]],
    service_of_script: dict[str, str],
    settings_of: Callable[[str], Any],
) -> None:
    from herald_api.main import create_app

    name = service_of_script["herald-api"]
    settings = settings_of(name)
    assert isinstance(settings, ApiSettings)
    app = create_app(settings)

    def routed(path: str) -> bool:
        """Whether a GET of `path` reaches a route, as Starlette's router decides it."""
        scope = {"type": "http", "path": path, "method": "GET", "root_path": "", "app": app}
        return any(route.matches(scope)[0] is Match.FULL for route in app.routes)

    assert not routed("/no-such-route")
    urls = healthcheck_urls(herald_services[name])
    assert urls, f"{name}: the health check asks no URL"
    for url in urls:
        assert url.hostname in ("127.0.0.1", "localhost")
        assert url.port == settings.api_port
        assert routed(url.path), f"{url.path} is no route of the API"
    assert "/readyz" in {url.path for url in urls}  # ready means database and broker answer


def test_worker_health_checks_ask_their_metrics_port(
    herald_services: dict[str, dict[str, Any]],
    service_of_script: dict[str, str],
    settings_of: Callable[[str], Any],
) -> None:
    for script in ("herald-scheduler", "herald-sender", "herald-reporter"):
        name = service_of_script[script]
        port = settings_of(name).metrics_port
        urls = healthcheck_urls(herald_services[name])
        assert [(u.hostname, u.port, u.path) for u in urls] == [("127.0.0.1", port, "/metrics")]


def test_the_simulator_health_check_asks_a_real_route(
    herald_services: dict[str, dict[str, Any]],
    service_of_script: dict[str, str],
    env_in_container: Callable[[str], dict[str, str]],
) -> None:
    name = service_of_script["herald-provider-sim"]
    config = simulator_config(env_in_container(name))
    routes = {resource.canonical for resource in create_simulator_app(config).router.resources()}
    urls = healthcheck_urls(herald_services[name])
    assert urls
    for url in urls:
        assert url.port == config.port
        assert url.path in routes, f"{url.path} is no route of the simulator"


def test_the_servers_have_their_health_checks(services: dict[str, dict[str, Any]]) -> None:
    assert healthcheck_command(services["postgres"])[1] == "pg_isready"
    assert healthcheck_command(services["rabbitmq"])[1:3] == ["rabbitmq-diagnostics", "-q"]


def test_herald_services_start_after_the_migration(
    services: dict[str, dict[str, Any]],
    herald_services: dict[str, dict[str, Any]],
    service_of_script: dict[str, str],
) -> None:
    migrate = service_of_script["herald-migrate"]
    assert services[migrate].get("restart") == "no"
    assert depends_on(services[migrate]) == {"postgres": "service_healthy"}
    for name, service in herald_services.items():
        if "HERALD_DATABASE_URL" in environment_of(service) and name != migrate:
            assert depends_on(service).get(migrate) == "service_completed_successfully", name


def test_each_service_starts_after_what_its_urls_name(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for value in environment_of(service).values():
            for url in re.findall(r"\w+://[^\s'\"]+", value):
                host = urlsplit(url).hostname
                if host in services and host != name:
                    assert host in all_dependencies(services, name), f"{name} needs {host}"


def test_health_conditions_name_services_with_a_health_check(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for dependency, condition in depends_on(service).items():
            assert dependency in services, f"{name} depends on an unknown {dependency}"
            if condition == "service_healthy":
                assert healthcheck_command(services[dependency]), f"{dependency} has no check"


# --- Prometheus and Grafana -------------------------------------------------------------------


def _targets(job: dict[str, Any]) -> Iterator[tuple[str, int]]:
    for static in job.get("static_configs", []):
        for target in static["targets"]:
            host, _, port = target.rpartition(":")
            yield host, int(port)
    for dns in job.get("dns_sd_configs", []):
        for host in dns["names"]:
            yield host, int(dns["port"])


def test_prometheus_scrapes_every_process_where_it_serves_metrics(
    services: dict[str, dict[str, Any]],
    herald_services: dict[str, dict[str, Any]],
    service_of_script: dict[str, str],
    settings_of: Callable[[str], Any],
) -> None:
    config, _ = prometheus_config(services)
    served = {
        service_of_script["herald-api"]: settings_of(service_of_script["herald-api"]).api_port,
        "rabbitmq": RABBITMQ_PROMETHEUS_PORT,
    }
    for script in ("herald-scheduler", "herald-sender", "herald-reporter"):
        served[service_of_script[script]] = settings_of(service_of_script[script]).metrics_port
    scraped = {target for job in config["scrape_configs"] for target in _targets(job)}
    assert scraped == set(served.items())
    # Replicas share a name: only DNS discovery finds each of them.
    sender = service_of_script["herald-sender"]
    sender_jobs = [job for job in config["scrape_configs"] if job["job_name"] == "herald-sender"]
    assert [dns["names"] for dns in sender_jobs[0].get("dns_sd_configs", [])] == [[sender]]


def test_prometheus_jobs_are_named_as_the_alerts_and_dashboard_expect(
    services: dict[str, dict[str, Any]],
) -> None:
    config, _ = prometheus_config(services)
    reference = yaml.safe_load(MONITORING_CONFIG.read_text())
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert sorted(jobs) == sorted(job["job_name"] for job in reference["scrape_configs"])
    api = next(job for job in config["scrape_configs"] if job["job_name"] == "herald-api")
    assert api.get("metrics_path", "/metrics") == "/metrics"


def test_prometheus_loads_the_alert_rules_of_deploy_monitoring(
    services: dict[str, dict[str, Any]],
) -> None:
    config, in_container = prometheus_config(services)
    mounts = bind_mounts(services["prometheus"])
    reference = yaml.safe_load(MONITORING_CONFIG.read_text())
    assert config["rule_files"] == reference["rule_files"]
    for rule_file in config["rule_files"]:
        target = str(in_container.parent / rule_file)
        assert mounts.get(target) == (MONITORING_CONFIG.parent / rule_file).resolve(), target


def test_rabbitmq_serves_per_queue_metrics(services: dict[str, dict[str, Any]]) -> None:
    mounts = bind_mounts(services["rabbitmq"])
    assert "rabbitmq_prometheus" in mounts["/etc/rabbitmq/enabled_plugins"].read_text()
    confs = [p for target, p in mounts.items() if target.startswith("/etc/rabbitmq/conf.d/")]
    text = "".join(p.read_text() for p in confs)
    assert re.search(r"^prometheus\.return_per_object_metrics\s*=\s*true", text, re.M)


def test_prometheus_config_passes_promtool(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    import shutil

    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool not found; CI must install it (apt-get install prometheus)")
        pytest.skip("promtool not found: apt-get install -y prometheus (Debian package)")
    # The files as the container sees them, side by side.
    for target, source in bind_mounts(services["prometheus"]).items():
        if target.startswith("/etc/prometheus/"):
            (tmp_path / Path(target).name).write_text(source.read_text())
    result = run_tool(promtool, "check", "config", tmp_path / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_gets_the_datasource_and_the_dashboard(
    services: dict[str, dict[str, Any]],
) -> None:
    mounts = bind_mounts(services["grafana"])
    provisioning = mounts[GRAFANA_PROVISIONING_IN_IMAGE]
    datasources = [
        source
        for path in sorted((provisioning / "datasources").glob("*.yml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
    ]
    url = urlsplit(datasources[0]["url"])
    assert (url.hostname, url.port) == ("prometheus", PROMETHEUS_PORT)
    assert (9090, PROMETHEUS_PORT) in published_ports(services["prometheus"])
    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.yml"))
        for provider in yaml.safe_load(path.read_text())["providers"]
    ]
    folder = providers[0]["options"]["path"]
    dashboards = [p for target, p in mounts.items() if target.startswith(folder + "/")]
    assert dashboards
    assert all(p.suffix == ".json" for p in dashboards)
    assert (3000, 3000) in published_ports(services["grafana"])


def test_the_readme_names_every_published_port_and_the_credentials(
    services: dict[str, dict[str, Any]], service_of_script: dict[str, str]
) -> None:
    section = (REPO / "README.md").read_text().split("## In containers", 1)[1].split("\n## ")[0]
    documented = {int(port) for port in re.findall(r"http://127\.0\.0\.1:(\d+)", section)}
    published = {host for service in services.values() for host, _ in published_ports(service)}
    assert documented == published
    for value in (
        environment_of(services["rabbitmq"])["RABBITMQ_DEFAULT_PASS"],
        environment_of(services["grafana"])["GF_SECURITY_ADMIN_PASSWORD"],
    ):
        assert f"`{value}`" in section
    # The API token is the operator's own: the README says to export one before starting.
    assert "export HERALD_API_TOKEN=$(openssl rand -hex 32)" in section
