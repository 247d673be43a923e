"""`make test-fresh-machine`: `make run`, then `make test`, on a Debian 12 new to Herald.

As root: a minimal Debian 12 root filesystem (python3 with pip and venv, make, git,
ca-certificates, procps; debootstrap builds it once into $HERALD_FRESH_CACHE) gets a throw-away
overlay per run, this repository's committed HEAD cloned into /srv/herald, and then, as root
with an empty environment:

1. `make run` in the background, until http://127.0.0.1:$HERALD_API_PORT/readyz answers 200
   (the chroot shares this machine's loopback), then Ctrl-C (SIGINT to its process group): it
   must stop within a minute, leaving no process behind;
2. `make test`, whose exit status becomes this script's.

Everything is unmounted and deleted afterwards, also on failure or Ctrl-C. Logs stay in
$HERALD_FRESH_CACHE/logs/<time>/. Environment: HERALD_FRESH_CACHE (/var/cache/herald-fresh),
HERALD_FRESH_MIRROR (the first Debian mirror of /etc/apt/sources.list.d/debian.sources),
HERALD_FRESH_WORKDIR (/var/tmp, where each run's overlay lives).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
# What a fresh machine is promised to have, nothing more (README: "nothing typed before").
BASE_PACKAGES = "python3,python3-pip,python3-venv,make,git,ca-certificates,procps"
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# A root's login PATH on Debian; nothing of this machine's (no uv, no pyenv).
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Not under /root (mode 700): as root, herald-dev runs PostgreSQL as `postgres`, which must be
# able to reach ./.herald, and says so rather than loosen /root itself.
CHECKOUT = "/srv/herald"
# What this machine's own network needs (a proxy, an extra CA in the bundle copied in), lent to
# the chroot when set here: not something a fresh machine lacks, something this one has.
LENT_ENV = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
)
# `make run`'s ports, herald_devstack.plan.PORT_DEFAULTS spelt again because this script runs
# on the bare interpreter (tests/scripts/test_fresh_machine.py keeps the two equal). A busy
# one is moved to a free one; the metrics base is judged by its first port only.
RUN_PORTS = {
    "HERALD_API_PORT": 8000,
    "HERALD_DEV_SIM_PORT": 8001,
    "HERALD_DEV_PG_PORT": 5433,
    "HERALD_DEV_AMQP_PORT": 5673,
    "HERALD_DEV_RABBITMQ_MANAGEMENT_PORT": 15673,
    "HERALD_DEV_RABBITMQ_PROMETHEUS_PORT": 15693,
    "HERALD_DEV_RABBITMQ_DIST_PORT": 25673,
    "HERALD_DEV_EPMD_PORT": 4370,
    "HERALD_DEV_SMTP_PORT": 8025,
    "HERALD_DEV_OIDC_PORT": 9400,
    "HERALD_DEV_METRICS_PORT": 9101,
}


class FreshMachineError(Exception):
    """A step failed; the message says which, and where its log is."""


class Interrupted(BaseException):
    """SIGTERM, turned into an exception so that the clean-up below runs."""


def log(message: str) -> None:
    print(f"fresh-machine: {message}", flush=True)


def default_mirror() -> str:
    """The first URI of the stanza serving `SUITE` in this machine's deb822 sources."""
    if SOURCES.exists():
        for stanza in SOURCES.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if ":" in line and line[0] != "#"
            )
            if SUITE in fields.get("Suites", "").split() and "URIs" in fields:
                return fields["URIs"].split()[0]
    return FALLBACK_MIRROR


def base_rootfs(cache: Path, mirror: str) -> Path:
    """The cached minimal root filesystem, built by debootstrap the first time."""
    rootfs = cache / SUITE
    if (rootfs / "usr" / "bin" / "make").exists():
        return rootfs
    if shutil.which("debootstrap") is None:
        raise FreshMachineError("debootstrap is missing — run: apt-get install -y debootstrap")
    partial = cache / f"{SUITE}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    log(f"building {rootfs} with debootstrap from {mirror} (about a minute, once)")
    include = f"--include={BASE_PACKAGES}"
    subprocess.run(
        ["debootstrap", "--variant=minbase", include, SUITE, str(partial), mirror],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    partial.rename(rootfs)
    return rootfs


def mounted_under(path: Path) -> list[str]:
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return [point for point in points if point == str(path) or point.startswith(f"{path}/")]


def processes_in(root: Path) -> list[int]:
    """Processes whose root directory is `root`: whatever runs inside the chroot."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "root") == str(root):
                    pids.append(int(entry.name))
            except OSError:
                continue  # gone meanwhile, or not ours to read
    return pids


def kill_processes_in(root: Path) -> None:
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        pids = processes_in(root)
        if not pids:
            return
        log(f"sending {sig.name} to {len(pids)} process(es) left in the chroot")
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while processes_in(root) and time.monotonic() < deadline:
            time.sleep(0.2)


@contextmanager
def throwaway_machine(rootfs: Path, workdir: Path) -> Iterator[Path]:
    """An overlay of `rootfs` with /proc, /sys, /dev mounted, torn down on the way out."""
    run_dir = Path(tempfile.mkdtemp(prefix="herald-fresh-", dir=workdir))
    root = run_dir / "root"
    for name in ("upper", "work", "root"):
        (run_dir / name).mkdir()
    try:
        options = f"lowerdir={rootfs},upperdir={run_dir / 'upper'},workdir={run_dir / 'work'}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, root], check=True)
        for name in ("proc", "sys", "dev", "dev/pts"):
            subprocess.run(["mount", "--bind", f"/{name}", root / name], check=True)
        yield root
    finally:
        with signals_held():
            kill_processes_in(root)
            for point in sorted(mounted_under(root), key=len, reverse=True):
                if subprocess.run(["umount", point], check=False).returncode != 0:
                    subprocess.run(["umount", "--lazy", point], check=False)
            left = mounted_under(root)
            if left:
                # Deleting now would reach into the host's /dev or /sys through the bind mounts.
                log(f"still mounted, {run_dir} kept: {' '.join(left)}")
            else:
                shutil.rmtree(run_dir, ignore_errors=True)


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGTERM and SIGINT ignored while the chroot is torn down: a second one (an impatient
    Ctrl-C, a supervisor's repeated TERM) would stop the teardown half-way, leaving daemons
    started inside running and /proc, /sys and /dev bound under the work directory."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def prepare(root: Path) -> None:
    """What the host lends the chroot (DNS, its CA bundle, pip's settings), and the clone."""
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf", follow_symlinks=True)
    shutil.copy(CA_BUNDLE, root / CA_BUNDLE.lstrip("/"))
    if Path("/etc/pip.conf").exists():
        shutil.copy("/etc/pip.conf", root / "etc" / "pip.conf")
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    checkout = root / CHECKOUT.lstrip("/")
    # A clone, not a copy: only what is committed goes in (no .venv, .tools, .herald, edits).
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO), checkout], check=True)
    subprocess.run(["git", "-C", checkout, "checkout", "--quiet", "--detach", head], check=True)
    log(f"cloned {head[:12]} into {CHECKOUT}")


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_ports() -> dict[str, str]:
    """`make run`'s default ports, but a free one for any this machine already uses."""
    ports = {}
    for name, default in RUN_PORTS.items():
        port = default if port_free(default) else free_port()
        if port != default:
            log(f"port {default} is taken here: {name}={port}")
        ports[name] = str(port)
    return ports


def chroot_argv(root: Path, command: str, env: dict[str, str]) -> list[str]:
    """`command` in the checkout, as root, with nothing of this machine's environment."""
    # No TERM, as under cron or CI (TERM=dumb would make Rich wrap the CLI's output at 80).
    base = {"HOME": "/root", "PATH": PATH}
    base |= {name: os.environ[name] for name in LENT_ENV if name in os.environ}
    assignments = [f"{key}={value}" for key, value in {**base, **env}.items()]
    script = f"cd {CHECKOUT} && exec {command}"
    return ["chroot", str(root), "env", "-i", *assignments, "bash", "-c", script]


def readyz(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError):
        return None


def prove_make_run(root: Path, logs: Path, timeout: float) -> None:
    ports = run_ports()
    url = f"http://127.0.0.1:{ports['HERALD_API_PORT']}/readyz"
    log_path = logs / "make-run.log"
    log(f"make run (log: {log_path}); waiting up to {timeout:.0f} s for {url}")
    began = time.monotonic()
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            chroot_argv(root, "make run", ports),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, to Ctrl-C it as a terminal would
        )
        try:
            while (status := readyz(url)) != 200:
                if process.poll() is not None:
                    raise FreshMachineError(
                        f"make run exited {process.returncode} before {url} answered 200 "
                        f"(see {log_path})"
                    )
                if time.monotonic() - began > timeout:
                    raise FreshMachineError(f"{url} answered {status} after {timeout:.0f} s")
                time.sleep(2)
            log(f"make run: {url} answered 200 after {time.monotonic() - began:.0f} s")
            os.killpg(process.pid, signal.SIGINT)
            stopping = time.monotonic()
            try:
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                raise FreshMachineError(
                    f"make run still running 60 s after Ctrl-C (see {log_path})"
                ) from None
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    left = processes_in(root)
    text = log_path.read_text(errors="replace")
    # make reports the Ctrl-C it got itself (exit -SIGINT); herald-dev must say it stopped.
    if code not in (0, -signal.SIGINT, 130) or "Traceback" in text:
        raise FreshMachineError(f"make run did not stop cleanly (exit {code}; see {log_path})")
    if left:
        raise FreshMachineError(f"make run left {len(left)} process(es) running: {left}")
    if readyz(url) is not None:
        raise FreshMachineError(f"{url} still answers after make run stopped")
    log(f"make run stopped in {time.monotonic() - stopping:.1f} s (exit {code}), nothing left")


def prove_make_test(root: Path, logs: Path, pytest_args: str) -> int:
    log_path = logs / "make-test.log"
    log(f"make test (log: {log_path})")
    began = time.monotonic()
    # CI=true: a test missing a tool (promtool) fails instead of skipping, as in CI.
    env = {"CI": "true", "PYTEST_ARGS": pytest_args}
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            chroot_argv(root, "make test", env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            out.flush()
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
        code = process.wait()
    log(f"make test exited {code} after {time.monotonic() - began:.0f} s")
    return code


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-run", action="store_true", help="only `make test`")
    parser.add_argument("--skip-test", action="store_true", help="only `make run`")
    parser.add_argument("--run-timeout", type=float, default=900, help="seconds to /readyz")
    parser.add_argument("--pytest-args", default="", help="PYTEST_ARGS for `make test`")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("fresh-machine: needs root (debootstrap, mount, chroot)", file=sys.stderr)
        return 2
    cache = Path(os.environ.get("HERALD_FRESH_CACHE") or "/var/cache/herald-fresh")
    workdir = Path(os.environ.get("HERALD_FRESH_WORKDIR") or "/var/tmp")
    mirror = os.environ.get("HERALD_FRESH_MIRROR") or default_mirror()
    logs = cache / "logs" / time.strftime("%Y%m%dT%H%M%S")
    signal.signal(signal.SIGTERM, _raise_interrupted)
    # Ctrl-C even when started in the background by a shell that ignores it there.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cache.mkdir(parents=True, exist_ok=True)
    lock = (cache / "lock").open("w")
    try:
        # One run at a time: two would both take make run's free ports and read each other's
        # /readyz, and both build the root filesystem.
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"fresh-machine: another run holds {cache / 'lock'}", file=sys.stderr)
        return 1
    try:
        rootfs = base_rootfs(cache, mirror)
        logs.mkdir(parents=True)
        with ExitStack() as stack:
            root = stack.enter_context(throwaway_machine(rootfs, workdir))
            prepare(root)
            if not args.skip_run:
                prove_make_run(root, logs, args.run_timeout)
            if not args.skip_test:
                return prove_make_test(root, logs, args.pytest_args)
        return 0
    except FreshMachineError as error:
        log(f"FAILED: {error}")
        return 1
    except subprocess.CalledProcessError as error:
        log(f"FAILED: {' '.join(map(str, error.cmd))} exited {error.returncode}")
        return 1
    except (KeyboardInterrupt, Interrupted):
        log("interrupted; cleaned up")
        return 130


if __name__ == "__main__":
    sys.exit(main())
