"""Installs what `make` needs and a fresh Debian 12 machine lacks: uv and Debian packages.

Run by the Makefile before anything else, with only the interpreter it comes with (the standard
library, no uv yet):

    setup_machine.py --uv PATH --tools-dir DIR uv   uv at PATH; when PATH is DIR/bin/uv, missing
                                                    or not UV_VERSION, uv from PyPI into the
                                                    virtualenv DIR (Debian's own Python refuses
                                                    `pip install`, PEP 668)
    setup_machine.py packages run|test              the Debian packages `make run` (PostgreSQL,
                                                    RabbitMQ) or `make test` (those, Chromium,
                                                    promtool, faketime, libatomic1,
                                                    Java) need, when
                                                    missing

As root, what is missing is installed with apt-get (`apt-get update` only then). Otherwise one
line names the sudo command to run, and the exit status is 2. Nothing present is touched.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# The uv of CI and of the Dockerfile's build stage (tests/shipping checks they agree).
UV_VERSION = "0.13.9"
EXIT_MISSING = 2


class SetupError(Exception):
    """What this script reports in one line before it exits."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Need:
    """A Debian package, and how to tell that what we use from it is already here."""

    package: str
    present: Callable[[], bool]


def _on_path(name: str) -> Callable[[], bool]:
    return lambda: shutil.which(name) is not None


def _executable(path: str) -> Callable[[], bool]:
    return lambda: os.access(path, os.X_OK)


def _library(soname: str) -> Callable[[], bool]:
    dirs = ("/lib", "/usr/lib", "/lib/*-linux-gnu", "/usr/lib/*-linux-gnu", "/usr/lib64")
    return lambda: any(glob.glob(f"{directory}/{soname}") for directory in dirs)


def _postgres_present() -> bool:
    """As herald_devstack.postgres.find_pg_bindir looks: pg_ctl (with initdb beside it) on
    PATH, else /usr/lib/postgresql/*/bin."""
    found = shutil.which("pg_ctl")
    if found and (Path(os.path.realpath(found)).parent / "initdb").exists():
        return True
    return any(
        (Path(pg_ctl).parent / "initdb").exists()
        for pg_ctl in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    )


def _rabbitmq_present() -> bool:
    """As herald_devstack.rabbitmq looks: Debian's real start script (the /usr/sbin one is a
    wrapper it skips) or another rabbitmq-server on PATH, and Erlang's epmd."""
    servers = ["/usr/lib/rabbitmq/bin/rabbitmq-server", shutil.which("rabbitmq-server")]
    server = any(
        path and os.path.exists(path) and not os.path.realpath(path).endswith("script-wrapper")
        for path in servers
    )
    epmd = shutil.which("epmd") or glob.glob("/usr/lib/erlang/erts-*/bin/epmd")
    return server and bool(epmd)


RUN = (
    Need("postgresql", _postgres_present),
    Need("rabbitmq-server", _rabbitmq_present),
)
TEST = (
    *RUN,
    # The admin UI's browser tests: Playwright drives Debian's Chromium (HERALD_CHROMIUM).
    Need("chromium", _executable(os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium"))),
    # tests/monitoring and tests/shipping check the alert rules and the Prometheus config.
    Need("prometheus", _on_path("promtool")),
    # tests/e2e/test_clock_skew.py: a sender with a skewed clock.
    Need("faketime", _on_path("faketime")),
    # Playwright's own Node.js (its driver) links libatomic, which minbase Debian lacks.
    Need("libatomic1", _library("libatomic.so.1")),
    # tests/e2e/test_generated_clients.py: openapi-generator (a jar) must take the API too.
    Need("default-jre-headless", _on_path("java")),
)
VENV = Need("python3-venv", lambda: importlib.util.find_spec("ensurepip") is not None)
NEEDS = {"run": RUN, "test": TEST}


def missing(needs: Sequence[Need]) -> list[str]:
    return [need.package for need in needs if not need.present()]


def install_packages(packages: Sequence[str]) -> None:
    """apt-get install `packages` as root; otherwise SetupError naming the sudo command."""
    if not packages:
        return
    command = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if os.geteuid() != 0:
        sudo = " ".join(["sudo", *command[:3], *packages])
        raise SetupError(f"missing {' '.join(packages)} — run: {sudo}", EXIT_MISSING)
    if shutil.which("apt-get") is None:
        raise SetupError(
            f"missing {' '.join(packages)} (Debian's names) and there is no apt-get here: "
            "install them with this system's package manager",
            EXIT_MISSING,
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"herald: installing {' '.join(packages)} (apt-get)", flush=True)
    # No policy-rc.d needed: without a running init (a container, a chroot) Debian's
    # invoke-rc.d already declines to start the services; with systemd they start as usual, on
    # ports the tests and `make run` do not use (each starts its own servers).
    _run(["apt-get", "update", "-qq"], env)
    _run([*command[:3], "-qq", *command[3:]], env)
    still = [package for package in packages if package in missing((*TEST, VENV))]
    if still:
        raise SetupError(f"apt-get installed {' '.join(still)} but it is still not found")


def install_uv(uv: Path, tools_dir: Path) -> None:
    """uv at `uv`; if it is `tools_dir`/bin/uv, missing or not UV_VERSION, pip-installs it there.

    Another uv (on PATH, or UV=...) is the user's choice and is used as it is."""
    ours = uv.absolute() == (tools_dir / "bin" / "uv").absolute()
    if os.access(uv, os.X_OK) and (not ours or _version(uv) == UV_VERSION):
        return
    if not ours:
        raise SetupError(f"uv not found at {uv} (UV={uv}); leave UV unset to get uv installed")
    python = tools_dir / "bin" / "python"
    if not python.exists():
        install_packages(missing([VENV]))
        print(f"herald: creating {tools_dir} for the project's tools", flush=True)
        _run([sys.executable, "-m", "venv", str(tools_dir)])
    print(f"herald: installing uv {UV_VERSION} into {tools_dir} (from PyPI)", flush=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, f"uv=={UV_VERSION}"])
    if not os.access(uv, os.X_OK):
        raise SetupError(f"pip installed uv {UV_VERSION} but {uv} is not there")


def _version(uv: Path) -> str | None:
    """`uv --version` says "uv 0.13.9 (<commit> <date>)"."""
    try:
        out = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    words = out.split()
    return words[1] if len(words) > 1 else None


def _run(argv: Sequence[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, env=env, check=False)
    if result.returncode != 0:
        raise SetupError(f"`{' '.join(argv)}` failed (exit {result.returncode})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", type=Path, default=Path(".tools/bin/uv"))
    parser.add_argument("--tools-dir", type=Path, default=Path(".tools"))
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("uv", help="uv, pinned, into --tools-dir unless --uv exists")
    packages = sub.add_parser("packages", help="the Debian packages a make target needs")
    packages.add_argument("target", choices=sorted(NEEDS))
    args = parser.parse_args(argv)
    try:
        if args.what == "uv":
            install_uv(args.uv, args.tools_dir)
        else:
            install_packages(missing(NEEDS[args.target]))
    except SetupError as error:
        print(f"herald: {error}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
