"""`herald-dev`: run the whole system (`run`), only its infrastructure (`services`), or `clean`."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from herald_devstack.banner import render_exports
from herald_devstack.console import Console
from herald_devstack.errors import DevstackError
from herald_devstack.plan import StackPlan, plan_stack
from herald_devstack.postgres import PostgresServer
from herald_devstack.processes import find_marked_processes, stop_pids
from herald_devstack.runner import Runner, SignalGate, StopRequested
from herald_devstack.state import StateLock

DESCRIPTION = """\
Local Herald stack. Starts PostgreSQL, RabbitMQ, the provider simulator and an SMTP sink
(mail as .eml files in ./.herald/mail) only when HERALD_DATABASE_URL, HERALD_AMQP_URL,
HERALD_PROVIDER_URL and HERALD_SMTP_HOST are not set. State (data, logs, mail, generated
tokens) lives in ./.herald or $HERALD_DEV_STATE_DIR. Ports: HERALD_DEV_PG_PORT (5433),
HERALD_DEV_AMQP_PORT (5673), HERALD_DEV_RABBITMQ_MANAGEMENT_PORT (15673),
HERALD_DEV_RABBITMQ_PROMETHEUS_PORT (15693), HERALD_DEV_RABBITMQ_DIST_PORT (25673),
HERALD_DEV_EPMD_PORT (4370), HERALD_DEV_SIM_PORT (8001), HERALD_DEV_SMTP_PORT (8025),
HERALD_DEV_OIDC_PORT (9400, the local OpenID Connect provider), HERALD_DEV_METRICS_PORT
(9101: the scheduler's /metrics, the senders' on the next ports, the reporter's on +8),
HERALD_API_PORT (8000);
HERALD_SENDER_REPLICAS (2). HERALD_DEV_BIN_DIR: a directory searched first for the console
scripts (herald-api, ...).
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="herald-dev",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the whole system in the foreground (make run)")
    commands.add_parser(
        "services",
        help="start only PostgreSQL, RabbitMQ, the simulator and the SMTP sink; print the env vars",
    )
    commands.add_parser("clean", help="delete the state directory (./.herald) when idle")
    args = parser.parse_args(argv)
    try:
        plan = plan_stack(os.environ, Path.cwd())
    except DevstackError as error:
        print(f"herald-dev: {error}", file=sys.stderr)
        return 2
    if args.command == "clean":
        return clean(plan, Console(sys.stdout))
    if args.command == "services":
        return supervise(plan, start_infrastructure_only)
    return supervise(plan, start_everything)


def start_everything(runner: Runner) -> None:
    runner.start_infrastructure()
    runner.migrate()
    runner.start_services()
    runner.console.block(runner.banner())


def start_infrastructure_only(runner: Runner) -> None:
    runner.start_infrastructure()
    exports = runner.exports()
    runner.console.block(
        "\nInfrastructure is running. In another shell:\n\n"
        + (render_exports(exports) if exports else "# (nothing started: all URLs were given)")
        + "\n\nCtrl-C stops it.\n"
    )


def supervise(
    plan: StackPlan, start: Callable[[Runner], None], console: Console | None = None
) -> int:
    """Start with `start`, then watch until a signal (exit 0) or a crash (exit 1)."""
    console = console or Console(sys.stdout)
    gate = SignalGate(console)
    try:
        with StateLock(plan.lock_path):
            runner = Runner(plan, os.environ, console)
            try:
                gate.install()
                start(runner)
                return runner.supervise()
            except StopRequested as stop:
                console.say(f"{stop} received, stopping")
                return 0
            except DevstackError as error:
                console.say(f"error: {error}")
                return 1
            finally:
                gate.hold()
                runner.shutdown()
                console.say("stopped")
    except DevstackError as error:
        console.say(f"error: {error}")
        return 1
    finally:
        gate.restore()


def clean(plan: StackPlan, console: Console) -> int:
    """Remove the state directory once sure no herald-dev uses it; stop orphans it left."""
    state_dir = plan.state_dir
    if not state_dir.exists():
        console.say(f"nothing to clean: {state_dir} does not exist")
        return 0
    try:
        with StateLock(plan.lock_path):
            orphans = find_marked_processes(str(state_dir), prefix=True)
            if orphans:
                console.say(f"stopping processes left running from {state_dir}: {orphans}")
                stop_pids(orphans)
            postgres = PostgresServer(plan.postgres_dir, plan.port("HERALD_DEV_PG_PORT"))
            if postgres.postmaster_pid() is not None:
                console.say("stopping the PostgreSQL left running there")
                postgres.stop()
            shutil.rmtree(state_dir)
    except DevstackError as error:
        console.say(f"error: {error}")
        return 1
    console.say(f"removed {state_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
