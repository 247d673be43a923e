"""`make test-fresh-machine`: the README's two commands on a Debian 12 new to Herald."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from herald_devstack.plan import PORT_DEFAULTS

REPO = Path(__file__).resolve().parents[2]


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "fresh_machine", REPO / "scripts/fresh_machine.py"
    )
    assert spec is not None
    assert spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_fresh_machine_moves_every_port_make_run_uses() -> None:
    # The script keeps its own copy (it runs before any virtualenv exists): it must not drift.
    assert load_script().RUN_PORTS == PORT_DEFAULTS


def test_a_second_sigterm_during_teardown_still_unmounts_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: mount")
    script = load_script()
    rootfs, workdir = tmp_path / "rootfs", tmp_path / "work"
    for name in ("proc", "sys", "dev/pts"):
        (rootfs / name).mkdir(parents=True)
    workdir.mkdir()
    kill_processes_in = script.kill_processes_in

    def impatient(root: Path) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # the second TERM, as teardown begins
        kill_processes_in(root)

    monkeypatch.setattr(script, "kill_processes_in", impatient)
    previous = signal.signal(signal.SIGTERM, script._raise_interrupted)
    try:
        with pytest.raises(script.Interrupted), script.throwaway_machine(rootfs, workdir):
            os.kill(os.getpid(), signal.SIGTERM)  # the first: the run is being stopped
    finally:
        signal.signal(signal.SIGTERM, previous)
        left = script.mounted_under(workdir)
        for point in sorted(left, key=len, reverse=True):
            subprocess.run(["umount", "--lazy", point], check=False)

    assert left == []
    assert list(workdir.iterdir()) == []


@pytest.mark.slow  # debootstrap, the packages, uv sync and the whole `make test`: ~20 min
@pytest.mark.timeout(3 * 3600)
def test_make_run_and_make_test_succeed_on_a_fresh_debian_12() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: debootstrap, mount and chroot")
    result = subprocess.run(
        ["make", "test-fresh-machine"],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "UV"},
        capture_output=True,
        text=True,
        check=False,
    )
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
    assert result.returncode == 0, tail
    assert "/readyz answered 200" in result.stdout, tail
    assert "make test exited 0" in result.stdout, tail
