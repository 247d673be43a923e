"""Generated secrets kept in the state directory, and provider tokens for the simulator."""

from __future__ import annotations

import importlib
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from herald_devstack.errors import BinaryNotFoundError, DevstackError


def load_or_create_secret(path: Path) -> str:
    """The secret stored in `path`, generated (and stored, mode 0600) the first time."""
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def find_console_script(name: str) -> str:
    """A console script: in $HERALD_DEV_BIN_DIR if set (stand-ins, other builds), then next to
    our interpreter (the workspace venv), then on PATH."""
    for directory in (os.environ.get("HERALD_DEV_BIN_DIR"), Path(sys.executable).parent):
        if directory and (Path(directory) / name).exists():
            return str(Path(directory) / name)
    found = shutil.which(name)
    if found is None:
        raise BinaryNotFoundError(
            f"{name} is not installed in this environment: run `uv sync` in the repository root"
        )
    return found


def make_provider_token(secret: str) -> str:
    """A JWT the provider simulator accepts for `secret`: its own function when importable,
    otherwise its CLI (`herald-provider-sim token --secret S`)."""
    try:
        tokens = importlib.import_module("herald_provider_sim.tokens")
        token = tokens.make_token(secret)
    except (ImportError, AttributeError):
        pass
    else:
        return str(token)
    command = [find_console_script("herald-provider-sim"), "token", "--secret", secret]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise DevstackError(
            f"`herald-provider-sim token` failed (exit {result.returncode}): "
            f"{result.stderr.strip()}"
        )
    return result.stdout.strip().splitlines()[-1]
