"""Deciding, from the environment alone, what `herald-dev run` starts and on which ports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from herald_common.safety import secret_problem
from herald_devstack.errors import DevstackError

# Environment variables of herald-dev itself, with their defaults. The HERALD_* service settings
# (HERALD_DATABASE_URL, ...) are read by the services; we only fill in the missing ones.
PORT_DEFAULTS = {
    "HERALD_DEV_PG_PORT": 5433,
    "HERALD_DEV_AMQP_PORT": 5673,
    "HERALD_DEV_RABBITMQ_MANAGEMENT_PORT": 15673,
    "HERALD_DEV_RABBITMQ_PROMETHEUS_PORT": 15693,
    "HERALD_DEV_RABBITMQ_DIST_PORT": 25673,
    "HERALD_DEV_EPMD_PORT": 4370,
    "HERALD_DEV_SIM_PORT": 8001,
    "HERALD_DEV_SMTP_PORT": 8025,
    "HERALD_DEV_OIDC_PORT": 9400,
    # The workers' /metrics: the scheduler on it, senders on the next ones, the reporter on +8.
    "HERALD_DEV_METRICS_PORT": 9101,
    "HERALD_API_PORT": 8000,
}


@dataclass(frozen=True)
class StackPlan:
    state_dir: Path
    start_postgres: bool
    start_rabbitmq: bool
    start_simulator: bool
    start_smtp_sink: bool = True
    start_identity_provider: bool = True
    ports: Mapping[str, int] = field(default_factory=lambda: dict(PORT_DEFAULTS))
    api_host: str = "127.0.0.1"
    sender_replicas: int = 2
    # Crashes in a row of one process that herald-dev restarts before it stops everything.
    restart_limit: int = 5

    def port(self, name: str) -> int:
        return self.ports[name]

    @property
    def postgres_dir(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def rabbitmq_dir(self) -> Path:
        return self.state_dir / "rabbitmq"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def api_token_path(self) -> Path:
        return self.state_dir / "api-token"

    @property
    def simulator_secret_path(self) -> Path:
        return self.state_dir / "sim-jwt-secret"

    @property
    def admin_session_secret_path(self) -> Path:
        return self.state_dir / "admin-session-secret"

    @property
    def identity_provider_url(self) -> str:
        return f"http://127.0.0.1:{self.port('HERALD_DEV_OIDC_PORT')}"

    @property
    def mail_dir(self) -> Path:
        """Where the SMTP sink writes each mail it receives (the daily report) as a .eml file."""
        return self.state_dir / "mail"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "herald-dev.lock"

    @property
    def process_marker(self) -> str:
        """Value of MARKER_ENV given to every process we start, to find orphans later."""
        return str(self.state_dir / "processes")

    @property
    def api_url(self) -> str:
        # A wildcard bind address is reachable on loopback; print and probe that.
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::", "") else self.api_host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port('HERALD_API_PORT')}"

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.port('HERALD_DEV_SIM_PORT')}"


@dataclass(frozen=True)
class ServiceSpec:
    """One long-running service process: `name` doubles as HERALD_SERVICE_INSTANCE."""

    name: str
    command: str
    args: tuple[str, ...] = ()
    wait_http: str | None = None
    # A log line the service prints once it is ready (it has its signal handlers by then).
    wait_line: str | None = None
    env: tuple[tuple[str, str], ...] = ()


def plan_stack(env: Mapping[str, str], cwd: Path) -> StackPlan:
    """What to start: only what the environment does not already point at."""
    state_dir = Path(env.get("HERALD_DEV_STATE_DIR") or cwd / ".herald")
    if not state_dir.is_absolute():
        state_dir = cwd / state_dir
    ports = {
        name: _int_env(env, name, default, 1, 65535) for name, default in PORT_DEFAULTS.items()
    }
    _check_given_secrets(env)
    return StackPlan(
        state_dir=state_dir,
        start_postgres=not env.get("HERALD_DATABASE_URL"),
        start_rabbitmq=not env.get("HERALD_AMQP_URL"),
        start_simulator=not env.get("HERALD_PROVIDER_URL"),
        start_smtp_sink=not env.get("HERALD_SMTP_HOST"),
        start_identity_provider=not env.get("HERALD_OIDC_ISSUER"),
        ports=ports,
        api_host=env.get("HERALD_API_HOST") or "127.0.0.1",
        sender_replicas=_int_env(env, "HERALD_SENDER_REPLICAS", 2, 0, 64),
        restart_limit=_int_env(env, "HERALD_DEV_RESTARTS", 5, 0, 100),
    )


# With the default base, where deploy/monitoring/prometheus.yml expects them: scheduler 9101,
# senders 9102, 9103, …, reporter 9109.
REPORTER_METRICS_OFFSET = 8


def plan_services(plan: StackPlan) -> list[ServiceSpec]:
    """The Herald services in start order (stopped in reverse)."""
    base = plan.port("HERALD_DEV_METRICS_PORT")
    services = [
        ServiceSpec("api-1", "herald-api", wait_http=f"{plan.api_url}/healthz"),
        ServiceSpec(
            "scheduler-1",
            "herald-scheduler",
            wait_line="scheduler_started",
            env=(("HERALD_METRICS_PORT", str(base)),),
        ),
    ]
    services += [
        ServiceSpec(
            f"sender-{index}",
            "herald-sender",
            wait_line="sender_started",
            env=(("HERALD_METRICS_PORT", str(base + index)),),
        )
        for index in range(1, plan.sender_replicas + 1)
    ]
    services.append(
        ServiceSpec(
            "reporter-1",
            "herald-reporter",
            wait_line="reporter_started",
            env=(("HERALD_METRICS_PORT", str(base + REPORTER_METRICS_OFFSET)),),
        )
    )
    return services


# The secrets the API checks callers against and refuses at start-up when weak: refused here
# too, before PostgreSQL and RabbitMQ have been started for nothing.
GIVEN_SECRETS = ("HERALD_API_TOKEN", "HERALD_ADMIN_SESSION_SECRET")


def _check_given_secrets(env: Mapping[str, str]) -> None:
    for name in GIVEN_SECRETS:
        value = env.get(name)
        problem = secret_problem(value) if value else None
        if problem:
            raise DevstackError(f"{name}: {problem}")


def _int_env(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DevstackError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise DevstackError(f"{name} must be between {low} and {high}, got {value}")
    return value
