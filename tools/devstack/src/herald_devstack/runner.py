"""The supervisor behind `herald-dev run` and `herald-dev services`."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

from herald_devstack.banner import render_banner
from herald_devstack.console import Console
from herald_devstack.errors import DevstackError
from herald_devstack.plan import StackPlan, plan_services
from herald_devstack.postgres import PostgresServer
from herald_devstack.probes import http_client
from herald_devstack.processes import (
    MARKER_ENV,
    ManagedProcess,
    ProcessGroup,
    find_marked_processes,
    stop_pids,
)
from herald_devstack.rabbitmq import RabbitMQServer
from herald_devstack.restarts import RestartPolicy, Watch
from herald_devstack.secrets_store import (
    find_console_script,
    load_or_create_secret,
    make_provider_token,
)
from herald_devstack.smtp_sink import SmtpSink

STOP_TIMEOUT = 10.0
# A second stop signal within this time of the first is the same Ctrl-C arriving twice.
ECHO_WINDOW_S = 1.0
API_START_TIMEOUT = 60.0
MIGRATE_TIMEOUT = 300.0
# Who gets the daily report under `make run` when HERALD_REPORT_RECIPIENTS is not set; the
# sink accepts any address, so this only has to be a valid one.
DEV_REPORT_RECIPIENT = "operator@localhost"
# Who may log in to the admin UI under `make run` with the local identity provider.
DEV_ADMIN_EMAIL = "admin@herald.test"


class StopRequested(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM; a BaseException so that no `except
    Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class SignalGate:
    """Turns the first SIGINT/SIGTERM into StopRequested; later ones, during the shutdown we
    are already doing, only get a message."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._raising = True
        self._first_at = 0.0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def hold(self) -> None:
        self._raising = False

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            # None means a handler installed outside Python; the default is the safe fallback.
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self._raising:
            self._raising = False
            self._first_at = now
            raise StopRequested(signum)
        # Ctrl-C reaches us twice at once: from the terminal, and passed on by `uv run`. Only a
        # later one is somebody pressing again.
        if now - self._first_at >= ECHO_WINDOW_S:
            self.console.say("already stopping, please wait")


@dataclass(frozen=True)
class Supervised:
    """One thing `Runner.supervise` keeps alive."""

    name: str
    alive: Callable[[], bool]
    failure: Callable[[], str]  # what to say when it is found dead
    restart: Callable[[], object]


class Runner:
    """Starts what `plan` asks for, in order, and stops all of it in reverse."""

    def __init__(self, plan: StackPlan, environ: Mapping[str, str], console: Console) -> None:
        self.plan = plan
        self.environ = dict(environ)
        self.console = console
        self.settings: dict[str, str] = {}
        self.postgres: PostgresServer | None = None
        self.rabbitmq: RabbitMQServer | None = None
        self.simulator: ManagedProcess | None = None
        self.smtp_sink: SmtpSink | None = None
        self.identity_provider: ManagedProcess | None = None
        self.group = ProcessGroup(
            log_dir=plan.log_dir, env={MARKER_ENV: plan.process_marker}, on_line=console.line
        )

    @property
    def child_env(self) -> dict[str, str]:
        return {**self.environ, **self.settings}

    def start_infrastructure(self) -> None:
        """PostgreSQL, RabbitMQ and the simulator, each only when its URL is not given."""
        plan = self.plan
        plan.log_dir.mkdir(parents=True, exist_ok=True)
        orphans = find_marked_processes(plan.process_marker)
        if orphans:
            self.console.say(f"stopping processes left by an earlier herald-dev: {orphans}")
            stop_pids(orphans, timeout=STOP_TIMEOUT)
        if plan.start_rabbitmq:
            # RabbitMQ boots slowest: launch it first and wait for it last.
            self.rabbitmq = RabbitMQServer(
                plan.rabbitmq_dir,
                amqp_port=plan.port("HERALD_DEV_AMQP_PORT"),
                management_port=plan.port("HERALD_DEV_RABBITMQ_MANAGEMENT_PORT"),
                dist_port=plan.port("HERALD_DEV_RABBITMQ_DIST_PORT"),
                node_name="herald-dev@localhost",
                prometheus_port=plan.port("HERALD_DEV_RABBITMQ_PROMETHEUS_PORT"),
                epmd_port=plan.port("HERALD_DEV_EPMD_PORT"),
            )
            self.console.say(f"starting RabbitMQ in {plan.rabbitmq_dir}")
            self.rabbitmq.launch()
        if plan.start_postgres:
            self.postgres = PostgresServer(plan.postgres_dir, plan.port("HERALD_DEV_PG_PORT"))
            self.console.say(f"starting PostgreSQL in {plan.postgres_dir}")
            self.postgres.start()
            self.postgres.create_database("herald", exist_ok=True)
            self.settings["HERALD_DATABASE_URL"] = self.postgres.url("herald")
        if plan.start_simulator:
            self._start_simulator()
        if plan.start_smtp_sink:
            self._start_smtp_sink()
        if plan.start_identity_provider:
            self._start_identity_provider()
        if self.rabbitmq is not None:
            self.rabbitmq.wait_ready()
            self.settings["HERALD_AMQP_URL"] = self.rabbitmq.url("/")
        if self.simulator is not None:
            self.simulator.wait_http_ok(f"{plan.simulator_url}/_sim/healthz", timeout=30)
        if self.identity_provider is not None:
            self._register_dev_admin()
        if not self.environ.get("HERALD_API_TOKEN"):
            self.settings["HERALD_API_TOKEN"] = load_or_create_secret(plan.api_token_path)
        if self.child_env.get("HERALD_OIDC_ISSUER") and not self.environ.get(
            "HERALD_OIDC_REDIRECT_URL"
        ):
            # The admin UI's callback is configured, never taken from the Host header: here,
            # where this stack's API listens.
            self.settings["HERALD_OIDC_REDIRECT_URL"] = f"{plan.api_url}/admin/auth"
        if self.simulator is None and not self.environ.get("HERALD_PROVIDER_TOKEN"):
            # An outside provider without a token: run anyway, so a provider that checks its
            # token answers 401 and the logs say why, rather than no sender starting at all.
            self.console.say(
                "HERALD_PROVIDER_URL is set but HERALD_PROVIDER_TOKEN is not: "
                "sending a development token the provider will probably refuse"
            )
            self.settings["HERALD_PROVIDER_TOKEN"] = make_provider_token("herald-dev-secret")

    def _start_simulator(self) -> None:
        secret = self.environ.get("HERALD_SIM_JWT_SECRET") or load_or_create_secret(
            self.plan.simulator_secret_path
        )
        port = self.plan.port("HERALD_DEV_SIM_PORT")
        self.console.say(f"starting the provider simulator on port {port}")
        self.simulator = self.group.start(
            "provider-sim",
            [find_console_script("herald-provider-sim"), "--port", str(port)],
            env={**self.child_env, "HERALD_SIM_JWT_SECRET": secret},
        )
        self.settings["HERALD_PROVIDER_URL"] = f"{self.plan.simulator_url}/v1"
        if not self.environ.get("HERALD_PROVIDER_TOKEN"):
            self.settings["HERALD_PROVIDER_TOKEN"] = make_provider_token(secret)

    def _start_identity_provider(self) -> None:
        """oidc-provider-mock: a real OpenID Connect provider whose login form takes any
        user name, so the admin UI can be tried without Keycloak or Google."""
        port = self.plan.port("HERALD_DEV_OIDC_PORT")
        self.console.say(f"starting a local OpenID Connect provider on port {port}")
        self.identity_provider = self.group.start(
            "identity",
            [find_console_script("oidc-provider-mock"), "--port", str(port)],
            # It imports authlib.jose, which warns of its own deprecation on every start: noise
            # in the console about a test tool, nothing a Herald user can act on.
            env={**self.child_env, "PYTHONWARNINGS": "ignore::DeprecationWarning"},
        )
        self.settings["HERALD_OIDC_ISSUER"] = self.plan.identity_provider_url
        self.settings["HERALD_OIDC_CLIENT_ID"] = "herald-admin"
        self.settings["HERALD_OIDC_CLIENT_SECRET"] = "herald-dev"
        # Plain http on 127.0.0.1: a Secure cookie would never come back.
        self.settings["HERALD_ADMIN_COOKIE_SECURE"] = "false"
        if not self.environ.get("HERALD_ADMIN_SESSION_SECRET"):
            self.settings["HERALD_ADMIN_SESSION_SECRET"] = load_or_create_secret(
                self.plan.admin_session_secret_path
            )
        admitted = ("HERALD_ADMIN_EMAILS", "HERALD_ADMIN_DOMAINS", "HERALD_ADMIN_GROUPS")
        if not any(self.environ.get(name) for name in admitted):
            self.settings["HERALD_ADMIN_EMAILS"] = DEV_ADMIN_EMAIL

    def _register_dev_admin(self) -> None:
        """The provider keeps users in memory: give the dev admin an e-mail claim each run."""
        assert self.identity_provider is not None
        url = self.plan.identity_provider_url
        self.identity_provider.wait_http_ok(f"{url}/.well-known/openid-configuration", timeout=30)
        answer = http_client().put(
            f"{url}/users/{DEV_ADMIN_EMAIL}",
            json={"email": DEV_ADMIN_EMAIL, "email_verified": True, "name": "Herald admin"},
            timeout=10,
        )
        if answer.status_code != 204:
            raise DevstackError(f"the identity provider refused the dev user: {answer.status_code}")

    def _start_smtp_sink(self) -> None:
        """aiosmtpd in this process (a thread): every mail becomes a .eml file in mail_dir."""
        port = self.plan.port("HERALD_DEV_SMTP_PORT")
        self.console.say(f"starting the SMTP sink on port {port}, writing to {self.plan.mail_dir}")
        sink = SmtpSink(port, directory=self.plan.mail_dir)
        try:
            sink.start()
        except (OSError, RuntimeError) as error:
            raise DevstackError(
                f"cannot start the SMTP sink on 127.0.0.1:{port} ({error}); "
                "choose another HERALD_DEV_SMTP_PORT or set HERALD_SMTP_HOST"
            ) from None
        self.smtp_sink = sink
        self.settings["HERALD_SMTP_HOST"] = sink.host
        self.settings["HERALD_SMTP_PORT"] = str(port)
        self.settings["HERALD_SMTP_SECURITY"] = "none"
        if not self.environ.get("HERALD_REPORT_RECIPIENTS"):
            self.settings["HERALD_REPORT_RECIPIENTS"] = DEV_REPORT_RECIPIENT

    def migrate(self) -> None:
        """Run `herald-migrate` (the schema), then `herald-migrate-queues` (RabbitMQ's queues:
        a `.herald/` kept from an older version still has its classic queues, which the
        services refuse), each to completion; both do nothing when there is nothing to do."""
        for command, name in (("herald-migrate", "migrate"), ("herald-migrate-queues", "queues")):
            process = ManagedProcess(
                name,
                [find_console_script(command)],
                env={**self.child_env, MARKER_ENV: self.plan.process_marker},
                log_path=self.plan.log_dir / f"{name}.log",
                on_line=self.console.line,
            ).start()
            try:
                code = process.wait(timeout=MIGRATE_TIMEOUT)
            except TimeoutError:
                process.terminate(timeout=5)
                raise DevstackError(
                    f"{command} did not finish within {MIGRATE_TIMEOUT} s"
                ) from None
            if code != 0:
                raise DevstackError(f"{command} failed with exit code {code}")

    def start_services(self) -> None:
        """The Herald services; returns once each answers its health URL or says it started."""
        specs = plan_services(self.plan)
        for spec in specs:
            self.group.start(
                spec.name,
                [find_console_script(spec.command), *spec.args],
                env={**self.child_env, **dict(spec.env), "HERALD_SERVICE_INSTANCE": spec.name},
            )
        for spec in specs:
            if spec.wait_http is not None:
                self.group[spec.name].wait_http_ok(spec.wait_http, timeout=API_START_TIMEOUT)
            if spec.wait_line is not None:
                self.group[spec.name].wait_for_line(spec.wait_line, timeout=API_START_TIMEOUT)

    def exports(self) -> dict[str, str]:
        """The HERALD_* settings we chose, for services started by hand."""
        return dict(self.settings)

    def banner(self) -> str:
        env = self.child_env
        return render_banner(
            api_url=self.plan.api_url,
            api_token=env.get("HERALD_API_TOKEN", ""),
            provider_url=env.get("HERALD_PROVIDER_URL", ""),
            simulator_url=self.plan.simulator_url if self.simulator is not None else None,
            management_url=self.rabbitmq.management_url if self.rabbitmq is not None else None,
            log_dir=self.plan.log_dir,
            database_url=self.postgres.url("herald") if self.postgres is not None else None,
            mail_dir=self.plan.mail_dir if self.smtp_sink is not None else None,
            admin_login=(
                f"log in as {DEV_ADMIN_EMAIL} at the local identity provider"
                if self.identity_provider is not None
                else f"log in through {env['HERALD_OIDC_ISSUER']}"
                if env.get("HERALD_OIDC_ISSUER")
                else None
            ),
        )

    def supervised(self) -> list[Supervised]:
        """Everything herald-dev started that keeps running: its processes, RabbitMQ and
        PostgreSQL, each with how to tell it died and how to bring it back."""
        targets = [self._supervised_process(process.name) for process in self.group]
        rabbitmq, postgres = self.rabbitmq, self.postgres
        if rabbitmq is not None:
            targets.append(
                Supervised(
                    "RabbitMQ",
                    alive=rabbitmq.is_running,
                    failure=lambda: f"RabbitMQ exited unexpectedly (logs: {rabbitmq.log_dir})",
                    restart=rabbitmq.start,
                )
            )
        if postgres is not None:
            targets.append(
                Supervised(
                    "PostgreSQL",
                    alive=lambda: postgres.postmaster_pid() is not None,
                    failure=lambda: f"PostgreSQL exited unexpectedly (log: {postgres.log_path})",
                    restart=postgres.start,
                )
            )
        return targets

    def _supervised_process(self, name: str) -> Supervised:
        def failure() -> str:
            process = self.group[name]
            return (
                f"{name} exited unexpectedly with code {process.returncode} "
                f"(log: {process.log_path})"
            )

        return Supervised(
            name,
            alive=lambda: self.group[name].is_running(),
            failure=failure,
            restart=lambda: self.group.restart(name),
        )

    def supervise(self, poll_interval: float = 0.2) -> int:
        """Restart what dies on its own, as Kubernetes would, until a signal interrupts with
        StopRequested; returns 1 when a process keeps crashing past the restart limit."""
        policy = RestartPolicy(limit=self.plan.restart_limit)
        targets = self.supervised()
        watches = {target.name: Watch(started_at=time.monotonic()) for target in targets}
        while True:
            for target in targets:
                watch = watches[target.name]
                problem = self._check(target, watch)
                if problem is None:
                    continue
                delay = watch.crashed(time.monotonic(), policy)
                if delay is None:
                    self.console.say(
                        f"{problem}; {self._giving_up(policy, watch)}, stopping everything"
                    )
                    return 1
                self.console.say(f"{problem}; restarting it in {delay:g} s")
            time.sleep(poll_interval)

    def _check(self, target: Supervised, watch: Watch) -> str | None:
        """Restart `target` if its time has come; what went wrong with it, if anything."""
        if watch.restart_at is None:
            return None if target.alive() else target.failure()
        if not watch.restart_due(time.monotonic()):
            return None
        try:
            target.restart()
        except (DevstackError, OSError) as error:
            return f"{target.name} did not restart: {error}"
        watch.restarted(time.monotonic())
        self.console.say(f"{target.name} restarted")
        return None

    @staticmethod
    def _giving_up(policy: RestartPolicy, watch: Watch) -> str:
        if policy.limit == 0:
            return "restarts are off (HERALD_DEV_RESTARTS=0)"
        return f"it failed {watch.crashes_in_a_row} times in a row"

    def shutdown(self) -> None:
        """Stop the processes (reverse order, SIGKILL after 10 s), then RabbitMQ and PostgreSQL."""
        if len(self.group):
            self.console.say("stopping processes")
            for name, code in self.group.terminate_all(timeout=STOP_TIMEOUT).items():
                if code not in (0, -signal.SIGTERM):
                    self.console.say(f"{name} ended with code {code}")
        if self.smtp_sink is not None:
            self._quietly(self.smtp_sink.stop)
            self.smtp_sink = None
        if self.rabbitmq is not None:
            self.console.say("stopping RabbitMQ")
            self._quietly(self.rabbitmq.stop)
            self.rabbitmq = None
        if self.postgres is not None:
            self.console.say("stopping PostgreSQL")
            self._quietly(self.postgres.stop)
            self.postgres = None

    def _quietly(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as error:
            self.console.say(f"error while stopping: {error}")
