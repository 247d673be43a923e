import io
import os
import re
import shutil
import signal
import smtplib
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
import pytest

from herald_common.safety import secret_problem
from herald_devstack import runner as runner_module
from herald_devstack.cli import main
from herald_devstack.console import Console
from herald_devstack.errors import DevstackError
from herald_devstack.plan import plan_stack
from herald_devstack.probes import free_port, is_port_free
from herald_devstack.processes import MARKER_ENV, ProcessGroup, find_marked_processes, pid_alive
from herald_devstack.runner import DEV_ADMIN_EMAIL, Runner, SignalGate, StopRequested
from herald_devstack.secrets_store import load_or_create_secret
from herald_devstack.state import StateLock

FAKE = Path(__file__).with_name("fake_service.py")
SCRIPTS = (
    "herald-provider-sim",
    "herald-migrate",
    "herald-migrate-queues",
    "herald-api",
    "herald-scheduler",
    "herald-sender",
    "herald-reporter",
)


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-ins for the Herald console scripts, found first through HERALD_DEV_BIN_DIR."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in SCRIPTS:
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE} {name} "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("HERALD_DEV_BIN_DIR", str(bin_dir))
    return bin_dir


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # PostgreSQL runs as `postgres` under it, so it must be traversable (unlike tmp_path).
    path = Path(tempfile.mkdtemp(prefix="herald-run-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def stack_env(state_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "HERALD_DEV_STATE_DIR": str(state_dir),
        "HERALD_DEV_PG_PORT": str(free_port()),
        "HERALD_DEV_SIM_PORT": str(free_port()),
        "HERALD_API_PORT": str(free_port()),
        "HERALD_DEV_SMTP_PORT": str(free_port()),
        "HERALD_DEV_OIDC_PORT": str(free_port()),
        **extra,
    }


def test_runner_starts_postgres_and_services_and_gives_up_on_a_crash_loop(
    fake_bin: Path, state_dir: Path, fresh_vhost: str, tmp_path: Path
) -> None:
    env = stack_env(
        state_dir,
        HERALD_AMQP_URL=fresh_vhost,
        FAKE_CRASH_INSTANCE="sender-2",
        HERALD_DEV_RESTARTS="1",
    )
    plan = plan_stack(env, tmp_path)
    out = io.StringIO()
    runner = Runner(plan, {**os.environ, **env}, Console(out, color=False))
    try:
        runner.start_infrastructure()
        runner.migrate()
        runner.start_services()

        settings = runner.exports()
        assert settings.keys() == {
            "HERALD_DATABASE_URL",
            "HERALD_PROVIDER_URL",
            "HERALD_PROVIDER_TOKEN",
            "HERALD_API_TOKEN",
            "HERALD_SMTP_HOST",
            "HERALD_SMTP_PORT",
            "HERALD_SMTP_SECURITY",
            "HERALD_REPORT_RECIPIENTS",
            "HERALD_OIDC_ISSUER",
            "HERALD_OIDC_CLIENT_ID",
            "HERALD_OIDC_CLIENT_SECRET",
            "HERALD_OIDC_REDIRECT_URL",
            "HERALD_ADMIN_COOKIE_SECURE",
            "HERALD_ADMIN_SESSION_SECRET",
            "HERALD_ADMIN_EMAILS",
        }
        with psycopg.connect(settings["HERALD_DATABASE_URL"]) as conn:
            assert conn.execute("SELECT to_regclass('migrated')::text").fetchone() == ("migrated",)
        # The queues are brought to this version's arguments too, on the broker in use.
        assert f'"queues_migrated", "amqp": "{fresh_vhost}"' in out.getvalue()
        assert settings["HERALD_PROVIDER_URL"] == f"{plan.simulator_url}/v1"
        assert settings["HERALD_API_TOKEN"] == load_or_create_secret(plan.api_token_path)
        assert [p.name for p in runner.group] == [
            "provider-sim",
            "identity",
            "api-1",
            "scheduler-1",
            "sender-1",
            "sender-2",
            "reporter-1",
        ]
        banner = runner.banner()
        assert settings["HERALD_API_TOKEN"] in banner
        assert f"{plan.api_url}/docs/" in banner
        assert f"{plan.mail_dir}/" in banner
        assert f"psql {settings['HERALD_DATABASE_URL']}" in banner
        assert f"{plan.api_url}/admin/  (log in as {DEV_ADMIN_EMAIL}" in banner

        # A real OpenID Connect provider, which knows the dev admin's e-mail.
        issuer = settings["HERALD_OIDC_ISSUER"]
        assert issuer == f"http://127.0.0.1:{env['HERALD_DEV_OIDC_PORT']}"
        metadata = httpx.get(f"{issuer}/.well-known/openid-configuration").json()
        assert metadata["issuer"] == issuer
        assert settings["HERALD_ADMIN_EMAILS"] == DEV_ADMIN_EMAIL
        assert len(settings["HERALD_ADMIN_SESSION_SECRET"]) >= 32
        assert settings["HERALD_OIDC_REDIRECT_URL"] == f"{plan.api_url}/admin/auth"
        # Tokens the API accepts: 32 or more characters, no placeholder.
        assert secret_problem(settings["HERALD_API_TOKEN"]) is None
        assert secret_problem(settings["HERALD_ADMIN_SESSION_SECRET"]) is None

        # What the reporter would do: the sink keeps the mail as a file in the state dir.
        assert settings["HERALD_SMTP_PORT"] == env["HERALD_DEV_SMTP_PORT"]
        with smtplib.SMTP("127.0.0.1", int(settings["HERALD_SMTP_PORT"]), timeout=10) as smtp:
            smtp.sendmail(
                "herald@localhost",
                [settings["HERALD_REPORT_RECIPIENTS"]],
                b"Subject: Herald daily report\r\n\r\nhello\r\n",
            )
        [eml] = plan.mail_dir.glob("*.eml")
        assert b"Subject: Herald daily report" in eml.read_bytes()

        assert runner.supervise(poll_interval=0.05) == 1
    finally:
        runner.shutdown()

    output = out.getvalue()
    log_path = plan.log_dir / "sender-2.log"
    assert f"sender-2 exited unexpectedly with code 3 (log: {log_path}); restarting it in 1 s" in (
        output
    )
    assert re.search(r"^herald-dev   \| \d\d:\d\d:\d\d sender-2 restarted$", output, re.M)
    assert (
        f"sender-2 exited unexpectedly with code 3 (log: {log_path}); "
        "it failed 2 times in a row, stopping everything"
    ) in output
    assert output.count('"event": "crashing", "instance": "sender-2"') == 2
    assert '"instance": "sender-1"' in output
    assert all(not p.is_running() for p in runner.group)
    assert (plan.log_dir / "sender-1.log").exists()
    assert is_port_free(plan.port("HERALD_DEV_PG_PORT"))
    assert is_port_free(plan.port("HERALD_DEV_SMTP_PORT"))


def herald_dev() -> str:
    return str(Path(sys.executable).with_name("herald-dev"))


def test_herald_dev_run_serves_until_sigterm(
    fake_bin: Path,
    state_dir: Path,
    fresh_database: str,
    fresh_vhost: str,
    process_group: ProcessGroup,
) -> None:
    env = stack_env(state_dir, HERALD_DATABASE_URL=fresh_database, HERALD_AMQP_URL=fresh_vhost)
    run = process_group.start("herald-dev", [herald_dev(), "run"], env=env)

    run.wait_for_line("Herald is running.", timeout=60)
    run.wait_http_ok(f"http://127.0.0.1:{env['HERALD_API_PORT']}/healthz", timeout=5)
    token = (state_dir / "api-token").read_text().strip()
    assert any(token in line for line in run.lines)

    assert run.terminate(timeout=20) == 0
    output = run.output()
    assert "SIGTERM received, stopping" in output
    assert output.count('"event": "stopped"') == 6  # every service and the simulator
    assert re.search(r"^herald-dev   \| \d\d:\d\d:\d\d stopped$", output, re.M)


def test_herald_dev_run_exits_1_when_a_service_crashes(
    fake_bin: Path,
    state_dir: Path,
    fresh_database: str,
    fresh_vhost: str,
    process_group: ProcessGroup,
) -> None:
    env = stack_env(
        state_dir,
        HERALD_DATABASE_URL=fresh_database,
        HERALD_AMQP_URL=fresh_vhost,
        HERALD_PROVIDER_URL="http://127.0.0.1:9/v1",
        HERALD_SENDER_REPLICAS="1",
        FAKE_CRASH_INSTANCE="scheduler-1",
        HERALD_DEV_RESTARTS="0",
    )
    run = process_group.start("herald-dev", [herald_dev(), "run"], env=env)

    assert run.wait(timeout=60) == 1
    assert (
        "scheduler-1 exited unexpectedly with code 3 (log: "
        f"{state_dir / 'logs' / 'scheduler-1.log'}); restarts are off (HERALD_DEV_RESTARTS=0), "
        "stopping everything"
    ) in run.output()
    assert "provider-sim" not in run.output()


def test_herald_dev_run_restarts_a_service_that_crashed_and_goes_on(
    fake_bin: Path,
    state_dir: Path,
    fresh_database: str,
    fresh_vhost: str,
    process_group: ProcessGroup,
    tmp_path: Path,
) -> None:
    env = stack_env(
        state_dir,
        HERALD_DATABASE_URL=fresh_database,
        HERALD_AMQP_URL=fresh_vhost,
        FAKE_CRASH_ONCE_INSTANCE="sender-1",
        FAKE_CRASH_ONCE_MARKER=str(tmp_path / "crashed-once"),
    )
    run = process_group.start("herald-dev", [herald_dev(), "run"], env=env)

    run.wait_for_line("sender-1 restarted", timeout=60)
    restarted_at = next(i for i, line in enumerate(run.lines) if "sender-1 restarted" in line)
    run.wait_for_line(
        '"event": "sender_started", "instance": "sender-1"', timeout=10, since=restarted_at
    )
    run.wait_http_ok(f"http://127.0.0.1:{env['HERALD_API_PORT']}/healthz", timeout=5)
    assert run.is_running()

    assert run.terminate(timeout=20) == 0
    output = run.output()
    assert "sender-1 exited unexpectedly with code 3" in output
    assert "restarting it in 1 s" in output
    assert output.count('"event": "sender_started", "instance": "sender-1"') == 2
    assert output.count('"event": "stopped"') == 6  # the restarted sender stopped too


def test_herald_dev_run_brings_back_its_postgresql_and_rabbitmq_after_a_kill_9(
    fake_bin: Path, state_dir: Path, process_group: ProcessGroup
) -> None:
    env = stack_env(
        state_dir,
        HERALD_DEV_AMQP_PORT=str(free_port()),
        HERALD_DEV_RABBITMQ_MANAGEMENT_PORT=str(free_port()),
        HERALD_DEV_RABBITMQ_PROMETHEUS_PORT=str(free_port()),
        HERALD_DEV_RABBITMQ_DIST_PORT=str(free_port()),
        HERALD_DEV_EPMD_PORT=str(free_port()),
        HERALD_SENDER_REPLICAS="1",
    )
    run = process_group.start("herald-dev", [herald_dev(), "run"], env=env)
    run.wait_for_line("Herald is running.", timeout=120)
    postmaster = state_dir / "postgres" / "data" / "postmaster.pid"
    database_url = f"postgresql://herald:herald@127.0.0.1:{env['HERALD_DEV_PG_PORT']}/herald"

    killed_pg = int(postmaster.read_text().split()[0])
    os.kill(killed_pg, signal.SIGKILL)
    run.wait_for_line("PostgreSQL restarted", timeout=90)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('migrated')::text").fetchone() == ("migrated",)
    assert int(postmaster.read_text().split()[0]) != killed_pg

    [beam] = [
        pid
        for pid in find_marked_processes(str(state_dir / "rabbitmq"))
        if Path(f"/proc/{pid}/comm").read_text().strip() == "beam.smp"
    ]
    os.kill(beam, signal.SIGKILL)
    run.wait_for_line("RabbitMQ restarted", timeout=120)
    management = f"http://127.0.0.1:{env['HERALD_DEV_RABBITMQ_MANAGEMENT_PORT']}"
    overview = httpx.get(f"{management}/api/overview", auth=("guest", "guest"), timeout=10)
    assert overview.status_code == 200

    assert run.terminate(timeout=60) == 0
    output = run.output()
    assert "PostgreSQL exited unexpectedly" in output
    assert "RabbitMQ exited unexpectedly" in output
    assert not find_marked_processes(str(state_dir), prefix=True)


def test_clean_stops_orphans_and_removes_the_state(
    state_dir: Path, process_group: ProcessGroup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_DEV_STATE_DIR", str(state_dir))
    (state_dir / "api-token").write_text("x")
    orphan = process_group.start(
        "orphan",
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
        env={MARKER_ENV: str(state_dir / "processes")},
    )
    orphan.wait_for_line("up")

    assert main(["clean"]) == 0

    assert not state_dir.exists()
    orphan.wait(timeout=5)
    assert not pid_alive(orphan.pid)


def test_clean_refuses_while_herald_dev_runs(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_DEV_STATE_DIR", str(state_dir))
    with StateLock(state_dir / "herald-dev.lock"):
        assert main(["clean"]) == 1
    assert state_dir.exists()


def test_state_lock_is_exclusive(tmp_path: Path) -> None:
    with StateLock(tmp_path / "lock"), pytest.raises(DevstackError, match=str(os.getpid())):
        StateLock(tmp_path / "lock").acquire()
    StateLock(tmp_path / "lock").acquire()


def test_generated_secret_is_stable_and_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "api-token"

    first = load_or_create_secret(path)

    assert len(first) >= 32
    assert load_or_create_secret(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_doubled_ctrl_c_stops_quietly_and_a_later_one_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(runner_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    out = io.StringIO()
    gate = SignalGate(Console(out, color=False))
    gate.install()
    try:
        with pytest.raises(StopRequested):
            signal.raise_signal(signal.SIGINT)
        gate.hold()
        # The same Ctrl-C again, passed on by `uv run` a moment later: nothing to say.
        clock[0] += 0.05
        signal.raise_signal(signal.SIGINT)
        assert "already stopping" not in out.getvalue()
        # Somebody pressing Ctrl-C again while the shutdown goes on: told to wait.
        clock[0] += 2.0
        signal.raise_signal(signal.SIGTERM)
        assert "already stopping, please wait" in out.getvalue()
    finally:
        gate.restore()


def test_a_later_stop_signal_while_herald_dev_prints_a_line_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(runner_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    class SignalledWhileWriting(io.StringIO):
        """Somebody presses Ctrl-C again just as herald-dev writes one of its own lines."""

        def write(self, text: str) -> int:
            written = super().write(text)
            if "stopping processes" in text:
                clock[0] += 2.0
                signal.raise_signal(signal.SIGINT)
            return written

    out = SignalledWhileWriting()
    console = Console(out, color=False)
    gate = SignalGate(console)
    gate.install()
    try:
        with pytest.raises(StopRequested):
            signal.raise_signal(signal.SIGTERM)
        gate.hold()

        console.say("stopping processes")

        assert "already stopping, please wait" in out.getvalue()
    finally:
        gate.restore()
