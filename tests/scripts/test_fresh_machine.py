"""`make test-fresh-machine`: the README's two commands on a Debian 12 new to Herald."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


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
