"""Interleaving the output of many processes on one terminal, each line prefixed by its name."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from typing import TextIO

_COLORS = ("36", "33", "32", "35", "34", "91", "96", "93")


class Console:
    """Thread-safe line writer; colours the prefixes when writing to a terminal."""

    def __init__(self, out: TextIO, *, width: int = 13, color: bool | None = None) -> None:
        self.out = out
        self.width = width
        if color is None:
            color = out.isatty() and "NO_COLOR" not in os.environ
        self.color = color
        # Reentrant: SignalGate writes "already stopping" from a signal handler, which runs in
        # the main thread, possibly while that thread is inside line() holding this lock.
        self._lock = threading.RLock()
        self._colors: dict[str, str] = {}

    def line(self, name: str, text: str) -> None:
        prefix = f"{name:<{self.width}}|"
        if self.color:
            code = self._colors.setdefault(name, _COLORS[len(self._colors) % len(_COLORS)])
            prefix = f"\033[{code}m{prefix}\033[0m"
        with self._lock:
            self.out.write(f"{prefix} {text}\n")
            self.out.flush()

    def say(self, text: str) -> None:
        # The services' JSON lines carry their own `ts` (UTC); ours get the time of day in UTC,
        # so that "sender-1 restarted" can be lined up with them.
        now = datetime.now(UTC).strftime("%H:%M:%S")
        for part in text.splitlines() or [""]:
            self.line("herald-dev", f"{now} {part}")

    def block(self, text: str) -> None:
        """Unprefixed text (the banner), written in one piece."""
        with self._lock:
            self.out.write(text if text.endswith("\n") else text + "\n")
            self.out.flush()
