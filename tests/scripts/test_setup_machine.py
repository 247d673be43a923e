"""scripts/setup_machine.py and the Makefile's use of it: what a fresh machine gets before
`make run` / `make test`, and what a user without root is told instead."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "setup_machine.py"
# The machine's own interpreter, as the Makefile's `python3` is on a fresh machine.
SYSTEM_PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or "python3"
# Only coreutils and the like: no uv, no promtool, no faketime.
BARE_PATH = "/nonexistent"


def pinned_uv_version() -> str:
    pinned = re.search(r'^UV_VERSION = "(.+)"$', SCRIPT.read_text(), re.M)
    assert pinned
    return pinned[1]


def run_as_a_user(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The script as a user who is not root: `nobody` when we are root. Fed on stdin, as
    nobody may not be able to read the checkout (under /root, say)."""
    argv = ["env", "-i", *(f"{key}={value}" for key, value in env.items()), SYSTEM_PYTHON]
    if os.geteuid() == 0:
        argv = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "nobody", "--", *argv]
    return subprocess.run(
        [*argv, "-", *args],
        input=SCRIPT.read_text(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_user_without_root_is_told_the_one_sudo_command_and_nothing_is_installed() -> None:
    # Chromium where there is none, and a PATH without promtool, faketime and java: as on a machine
    # that has PostgreSQL and RabbitMQ (`make test` got them) but not the test-only packages.
    env = {"PATH": BARE_PATH, "HERALD_CHROMIUM": "/nonexistent/chromium"}
    result = run_as_a_user("packages", "test", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr == (
        "herald: missing chromium prometheus faketime default-jre-headless — run: "
        "sudo apt-get install -y chromium prometheus faketime default-jre-headless\n"
    )


def test_make_run_needs_none_of_the_test_only_packages() -> None:
    env = {"PATH": BARE_PATH, "HERALD_CHROMIUM": "/nonexistent/chromium"}
    result = run_as_a_user("packages", "run", env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_make_run_sets_up_the_run_packages_and_make_test_the_test_ones() -> None:
    def setup_steps(target: str) -> list[str]:
        dry_run = subprocess.run(
            ["make", "-n", target], cwd=REPO, capture_output=True, text=True, check=True
        )
        return [line for line in dry_run.stdout.splitlines() if "setup_machine.py" in line]

    run, test = setup_steps("run"), setup_steps("test")
    assert [line.split("--tools-dir", 1)[1].split()[1:] for line in run] == [
        ["packages", "run"],
        ["uv"],
    ]
    assert [line.split("--tools-dir", 1)[1].split()[1:] for line in test] == [
        ["packages", "test"],
        ["uv"],
    ]


def test_make_uses_the_uv_on_path_else_the_one_it_installs(tmp_path: Path) -> None:
    def uv_in_make(path: str) -> list[str]:
        dry_run = subprocess.run(
            ["make", "-n", "install", f"HERALD_TOOLS_DIR={tmp_path / 'tools'}"],
            cwd=REPO,
            # Not uv's own UV (uv run sets it): a UV in the environment is the user's choice.
            env={**{k: v for k, v in os.environ.items() if k != "UV"}, "PATH": path},
            capture_output=True,
            text=True,
            check=True,
        )
        return [line for line in dry_run.stdout.splitlines() if line.endswith("sync --frozen")]

    make = Path(shutil.which("make") or "/usr/bin/make").parent
    assert uv_in_make(f"{make}:/usr/bin:/bin") == [f"{tmp_path}/tools/bin/uv sync --frozen"]
    (tmp_path / "bin").mkdir()
    fake_uv = tmp_path / "bin" / "uv"
    fake_uv.write_text("#!/bin/sh\n")
    fake_uv.chmod(0o755)
    assert uv_in_make(f"{tmp_path / 'bin'}:{make}:/usr/bin:/bin") == [f"{fake_uv} sync --frozen"]


def test_a_uv_the_user_named_but_missing_is_an_error_not_an_install(tmp_path: Path) -> None:
    result = subprocess.run(
        [SYSTEM_PYTHON, SCRIPT, "--uv", tmp_path / "uv", "--tools-dir", tmp_path / "t", "uv"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"herald: uv not found at {tmp_path / 'uv'}")
    assert not (tmp_path / "t").exists()


def test_uv_is_installed_pinned_into_the_tools_virtualenv_when_missing(tmp_path: Path) -> None:
    tools = tmp_path / ".tools"
    argv = [SYSTEM_PYTHON, str(SCRIPT), "--uv", str(tools / "bin" / "uv"), "--tools-dir", tools]
    env = {**os.environ, "PATH": f"{Path(SYSTEM_PYTHON).parent}:/usr/bin:/bin"}
    first = subprocess.run(
        [*argv, "uv"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"installing uv {pinned_uv_version()}" in first.stdout
    version = subprocess.run(
        [tools / "bin" / "uv", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.split()[:2] == ["uv", pinned_uv_version()]
    again = subprocess.run(
        [*argv, "uv"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
