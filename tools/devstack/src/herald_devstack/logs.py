"""Reading the end of log files for error messages."""

from __future__ import annotations

from collections import deque
from pathlib import Path


def tail_file(path: Path, lines: int = 30) -> str:
    """Return the last `lines` lines of a text file, or "" when it does not exist."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines)).rstrip("\n")
    except FileNotFoundError:
        return ""


def tail_files(paths: list[Path], lines: int = 30) -> str:
    """Tails of several logs, each under a header naming it; empty logs are left out."""
    parts = []
    for path in paths:
        text = tail_file(path, lines)
        if text:
            parts.append(f"==> {path} <==\n{text}")
    return "\n".join(parts)
