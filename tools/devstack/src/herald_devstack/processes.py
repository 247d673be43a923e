"""Child processes in their own process groups, with captured output and reliable cleanup.

Every child is started with `start_new_session=True`, so a signal sent to its group reaches the
grandchildren it spawned too, and a Ctrl-C in the terminal reaches only us, who then stop the
children in order. Anything still alive when the interpreter exits is killed by an atexit hook.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from herald_devstack.errors import ProcessExitedError
from herald_devstack.probes import http_status

LinePredicate = Callable[[str], bool]
LineSink = Callable[[str, str], None]
"""Called with (process name, line) for every output line, from the reader thread."""

# Children carry this variable so that orphans of a killed supervisor can be found again
# (see find_marked_processes): the environment is inherited by grandchildren, a pid file is not.
MARKER_ENV = "HERALD_DEVSTACK_OWNER"
# Output lines kept in memory per process, for wait_for_line and the tail in error messages.
KEPT_LINES = 20_000

_live: set[ManagedProcess] = set()
_live_lock = threading.Lock()


class ManagedProcess:
    """One command running in its own process group; output goes to a file and to memory."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        cwd: Path | None = None,
        log_path: Path | None = None,
        on_line: LineSink | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.log_path = log_path
        self._env = {**(os.environ if inherit_env else {}), **(env or {})}
        # Python children would otherwise buffer their logs and we would see them late.
        self._env.setdefault("PYTHONUNBUFFERED", "1")
        self._cwd = cwd
        self._on_line = on_line
        self._lines: deque[str] = deque(maxlen=KEPT_LINES)
        self._seen = 0
        self._eof = False
        self._cond = threading.Condition()
        self._popen: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._stop_requested = False

    def __repr__(self) -> str:
        state = "not started" if self._popen is None else f"pid={self._popen.pid}"
        return f"<ManagedProcess {self.name} {state} rc={self.returncode}>"

    def start(self) -> ManagedProcess:
        if self._popen is not None:
            raise RuntimeError(f"{self.name} was already started")
        log: IO[str] | None = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = self.log_path.open("a", encoding="utf-8")
        try:
            self._popen = subprocess.Popen(
                self.argv,
                env=self._env,
                cwd=self._cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            if log is not None:
                log.close()
            raise
        with _live_lock:
            _live.add(self)
        self._reader = threading.Thread(
            target=self._read_output, args=(log,), name=f"output-{self.name}", daemon=True
        )
        self._reader.start()
        return self

    def successor(self) -> ManagedProcess:
        """A new, unstarted process with this one's command, environment and output (its log
        file is appended to): what a restart starts."""
        return ManagedProcess(
            self.name,
            self.argv,
            env=self._env,
            inherit_env=False,
            cwd=self._cwd,
            log_path=self.log_path,
            on_line=self._on_line,
        )

    @property
    def pid(self) -> int:
        return self._process().pid

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def line_count(self) -> int:
        """How many lines were read so far; pass it as `since` to wait only for newer lines."""
        with self._cond:
            return self._seen

    @property
    def lines(self) -> list[str]:
        with self._cond:
            return list(self._lines)

    def output(self) -> str:
        return "\n".join(self.lines)

    def tail(self, count: int = 30) -> str:
        return "\n".join(self.lines[-count:])

    def wait(self, timeout: float | None = None) -> int:
        """Wait for exit and return the code; raises TimeoutError."""
        try:
            code = self._process().wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.name} still running after {timeout} s") from None
        self._finish()
        return code

    def wait_for_line(
        self, predicate: LinePredicate | str, timeout: float = 30.0, since: int = 0
    ) -> str:
        """Return the first output line (from line number `since`) matching `predicate`.

        A string predicate matches lines containing it. Raises ProcessExitedError when the
        process ends first, TimeoutError when `timeout` passes.
        """
        matches: LinePredicate = (
            (lambda line: predicate in line) if isinstance(predicate, str) else predicate
        )
        deadline = time.monotonic() + timeout
        with self._cond:
            index = since
            while True:
                first_kept = self._seen - len(self._lines)
                for offset in range(max(index, first_kept) - first_kept, len(self._lines)):
                    if matches(self._lines[offset]):
                        return self._lines[offset]
                index = self._seen
                remaining = deadline - time.monotonic()
                if self._eof and self._process().poll() is not None:
                    raise ProcessExitedError(self.name, self._process().poll(), self._tail_locked())
                if remaining <= 0:
                    raise TimeoutError(
                        f"no matching line from {self.name} within {timeout} s\n"
                        f"--- last output lines ---\n{self._tail_locked()}"
                    )
                # After EOF no notification comes any more, so poll for the exit.
                self._cond.wait(min(remaining, 0.1) if self._eof else remaining)

    def wait_http_ok(self, url: str, timeout: float = 30.0) -> None:
        """Poll GET `url` until it answers 2xx; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        last: int | None = None
        while True:
            last = http_status(url, timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            if last is not None and 200 <= last < 300:
                return
            if not self.is_running():
                self._finish()
                raise ProcessExitedError(self.name, self.returncode, self.tail())
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{url} did not answer 2xx within {timeout} s (last status: {last})\n"
                    f"--- last output lines of {self.name} ---\n{self.tail()}"
                )
            time.sleep(0.1)

    def send_signal(self, sig: int) -> None:
        """Signal the whole process group (the child and everything it spawned)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process().pid, sig)

    def request_stop(self) -> None:
        """Send SIGTERM once; a second SIGTERM makes some servers skip their graceful shutdown."""
        if not self._stop_requested and self.is_running():
            self._stop_requested = True
            self.send_signal(signal.SIGTERM)

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM the group, wait up to `timeout`, then SIGKILL; returns the exit code."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        self.request_stop()
        try:
            self._popen.wait(max(timeout, 0))
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            self._popen.wait()
        # Grandchildren that outlived the leader would keep ports and pipes open.
        self.send_signal(signal.SIGKILL)
        self._finish()
        return self._popen.returncode

    def kill(self) -> int:
        """SIGKILL the group at once (what a crash looks like); returns the exit code."""
        process = self._process()
        self.send_signal(signal.SIGKILL)
        process.wait()
        self._finish()
        return process.returncode

    def _process(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._popen

    def _tail_locked(self, count: int = 30) -> str:
        return "\n".join(list(self._lines)[-count:])

    def _finish(self) -> None:
        with _live_lock:
            _live.discard(self)
        if self._reader is not None:
            # A grandchild may still hold the pipe open; do not hang on it.
            self._reader.join(timeout=2.0)

    def _read_output(self, log: IO[str] | None) -> None:
        stream = self._process().stdout
        assert stream is not None
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if log is not None:
                    log.write(line + "\n")
                    log.flush()
                with self._cond:
                    self._lines.append(line)
                    self._seen += 1
                    self._cond.notify_all()
                if self._on_line is not None:
                    with contextlib.suppress(Exception):
                        self._on_line(self.name, line)
        finally:
            stream.close()
            if log is not None:
                log.close()
            with self._cond:
                self._eof = True
                self._cond.notify_all()


class ProcessGroup:
    """Named managed processes that are stopped together, in reverse start order."""

    def __init__(
        self,
        *,
        log_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        on_line: LineSink | None = None,
    ) -> None:
        self.log_dir = log_dir
        self._env = dict(env or {})
        self._on_line = on_line
        self._processes: dict[str, ManagedProcess] = {}

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_path: Path | None = None,
        on_line: LineSink | None = None,
    ) -> ManagedProcess:
        if name in self._processes and self._processes[name].is_running():
            raise ValueError(f"a process named {name!r} is already running in this group")
        if log_path is None and self.log_dir is not None:
            log_path = self.log_dir / f"{name}.log"
        process = ManagedProcess(
            name,
            argv,
            env={**self._env, **(env or {})},
            cwd=cwd,
            log_path=log_path,
            on_line=on_line or self._on_line,
        )
        self._processes[name] = process
        return process.start()

    def restart(self, name: str) -> ManagedProcess:
        """Start the exited process `name` again, in its place in the stopping order."""
        previous = self._processes[name]
        if previous.is_running():
            raise ValueError(f"{name!r} is still running")
        process = previous.successor()
        self._processes[name] = process
        return process.start()

    def __getitem__(self, name: str) -> ManagedProcess:
        return self._processes[name]

    def __iter__(self) -> Iterator[ManagedProcess]:
        return iter(list(self._processes.values()))

    def __len__(self) -> int:
        return len(self._processes)

    def exited(self) -> list[ManagedProcess]:
        """Processes of the group that are no longer running."""
        return [p for p in self._processes.values() if not p.is_running()]

    def terminate_all(self, timeout: float = 10.0) -> dict[str, int]:
        """SIGTERM every running process (newest first), wait up to `timeout` overall, SIGKILL
        the rest. Returns the exit code of each process."""
        ordered = list(reversed(self._processes.values()))
        for process in ordered:
            process.request_stop()
        deadline = time.monotonic() + timeout
        codes: dict[str, int] = {}
        for process in ordered:
            codes[process.name] = process.terminate(timeout=deadline - time.monotonic())
        return codes

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.terminate_all()


def find_marked_processes(owner: str, *, prefix: bool = False) -> list[int]:
    """Pids of processes whose environment has MARKER_ENV equal to `owner` (or below it, as a
    path, with `prefix`). Used to find what a killed supervisor left running."""
    wanted = f"{MARKER_ENV}=".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path("/proc", entry, "environ").read_bytes()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if not item.startswith(wanted):
                continue
            value = item[len(wanted) :].decode(errors="replace")
            if value == owner or (prefix and value.startswith(owner.rstrip("/") + "/")):
                found.append(int(entry))
            break
    return found


def stop_pids(pids: Sequence[int], timeout: float = 10.0) -> None:
    """SIGTERM the given pids, wait up to `timeout` for them to go, SIGKILL the rest."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    remaining = list(pids)
    while remaining and time.monotonic() < deadline:
        remaining = [pid for pid in remaining if pid_alive(pid)]
        time.sleep(0.05)
    for pid in remaining:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie."""
    try:
        status = Path("/proc", str(pid), "stat").read_text()
    except OSError:
        return False
    # A zombie (state Z) is dead for our purposes; its parent will reap it.
    return status.rsplit(")", 1)[-1].split()[0] != "Z"


@atexit.register
def _kill_leftovers() -> None:
    with _live_lock:
        leftovers = list(_live)
    for process in leftovers:
        with contextlib.suppress(Exception):
            process.kill()
