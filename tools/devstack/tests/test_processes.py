import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from herald_devstack.errors import ProcessExitedError
from herald_devstack.probes import free_port
from herald_devstack.processes import (
    MARKER_ENV,
    ProcessGroup,
    find_marked_processes,
    pid_alive,
    stop_pids,
)

GRACEFUL = textwrap.dedent(
    """
    import signal, sys, time
    def bye(*_):
        print("bye", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, bye)
    print("ready", flush=True)
    while True:
        time.sleep(0.1)
    """
)
STUBBORN = textwrap.dedent(
    """
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    while True:
        time.sleep(0.1)
    """
)
# A child that starts a grandchild, as uvicorn or the Erlang VM do.
PARENT_OF_SLEEPER = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print(f"grandchild {child.pid}", flush=True)
    time.sleep(60)
    """
)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_terminate_lets_the_child_exit_gracefully(process_group: ProcessGroup) -> None:
    child = process_group.start("graceful", python(GRACEFUL))
    child.wait_for_line("ready", timeout=10)

    code = child.terminate(timeout=5)

    assert code == 0
    assert child.lines == ["ready", "bye"]
    assert child.log_path is not None
    assert child.log_path.read_text() == "ready\nbye\n"


def test_terminate_kills_a_child_that_ignores_sigterm(process_group: ProcessGroup) -> None:
    child = process_group.start("stubborn", python(STUBBORN))
    child.wait_for_line("ready", timeout=10)
    started = time.monotonic()

    code = child.terminate(timeout=0.5)

    assert code == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - started < 5


def test_kill_takes_the_grandchildren_too(process_group: ProcessGroup) -> None:
    child = process_group.start("parent", python(PARENT_OF_SLEEPER))
    grandchild = int(child.wait_for_line("grandchild", timeout=10).split()[1])
    assert pid_alive(grandchild)

    assert child.kill() == -signal.SIGKILL

    deadline = time.monotonic() + 5
    while pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(grandchild)


def test_wait_for_line_reports_an_early_exit_with_the_output(process_group: ProcessGroup) -> None:
    child = process_group.start("failing", python("print('boom'); raise SystemExit(4)"))

    with pytest.raises(ProcessExitedError) as error:
        child.wait_for_line("never printed", timeout=10)

    assert error.value.returncode == 4
    assert "boom" in str(error.value)


def test_wait_for_line_times_out(process_group: ProcessGroup) -> None:
    child = process_group.start("quiet", python(STUBBORN))
    child.wait_for_line("ready", timeout=10)

    with pytest.raises(TimeoutError):
        child.wait_for_line(lambda line: line.startswith("x"), timeout=0.3)
    child.kill()


def test_wait_http_ok(process_group: ProcessGroup, tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "healthz").write_text("ok")
    server = process_group.start(
        "http",
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
    )

    server.wait_http_ok(f"http://127.0.0.1:{port}/healthz", timeout=15)

    with pytest.raises(TimeoutError):
        server.wait_http_ok(f"http://127.0.0.1:{port}/missing", timeout=0.5)


def test_terminate_all_stops_newest_first_and_reports_codes(process_group: ProcessGroup) -> None:
    first = process_group.start("first", python(GRACEFUL))
    second = process_group.start("second", python(STUBBORN))
    first.wait_for_line("ready", timeout=10)
    second.wait_for_line("ready", timeout=10)

    codes = process_group.terminate_all(timeout=1)

    assert codes == {"second": -signal.SIGKILL, "first": 0}
    assert process_group.exited() == [first, second]


def test_restart_starts_the_same_command_again_in_its_place(
    process_group: ProcessGroup, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    code = GRACEFUL.replace('print("ready"', 'import os; print("ready", os.environ["WHO"]')
    worker = process_group.start("worker", python(code), env={"WHO": "w-1"}, log_path=log)
    later = process_group.start("later", python(GRACEFUL))
    worker.wait_for_line("ready", timeout=10)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)

    again = process_group.restart("worker")

    again.wait_for_line("ready w-1", timeout=10)  # its environment too
    assert again is not worker
    assert again.pid != worker.pid
    assert again.argv == worker.argv
    assert process_group["worker"] is again
    assert [p.name for p in process_group] == ["worker", "later"]  # stopped last, as before
    with pytest.raises(ValueError, match="still running"):
        process_group.restart("worker")
    later.wait_for_line("ready", timeout=10)
    assert process_group.terminate_all(timeout=5) == {"later": 0, "worker": 0}
    assert log.read_text().count("ready") == 2  # the log goes on in the same file


def test_marked_processes_can_be_found_and_stopped(
    process_group: ProcessGroup, tmp_path: Path
) -> None:
    owner = str(tmp_path / "state" / "processes")
    child = process_group.start("marked", python(STUBBORN), env={MARKER_ENV: owner})
    child.wait_for_line("ready", timeout=10)

    assert find_marked_processes(owner) == [child.pid]
    assert find_marked_processes(str(tmp_path / "state"), prefix=True) == [child.pid]
    assert find_marked_processes(str(tmp_path / "sta"), prefix=True) == []

    stop_pids([child.pid], timeout=0.5)
    assert child.wait(timeout=5) == -signal.SIGKILL
    assert os.environ.get(MARKER_ENV) is None
