"""A PostgreSQL server from the local binaries, in a directory of its own."""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from herald_devstack import pgadmin
from herald_devstack.errors import BinaryNotFoundError, DevstackError, ServerStartError
from herald_devstack.logs import tail_file
from herald_devstack.privileges import as_user, check_traversable, chown_tree, is_root
from herald_devstack.probes import LOCALHOST, free_port, is_port_free
from herald_devstack.processes import pid_alive

USER = "herald"
PASSWORD = "herald"
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, including the trailing NUL


def find_pg_bindir() -> Path:
    """The directory holding pg_ctl and initdb: from PATH, else the newest /usr/lib/postgresql."""
    found = shutil.which("pg_ctl")
    if found is not None:
        bindir = Path(os.path.realpath(found)).parent
        if (bindir / "initdb").exists():
            return bindir
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if candidates:
        return Path(candidates[-1]).parent
    raise BinaryNotFoundError(
        "PostgreSQL server binaries (pg_ctl, initdb) were not found on PATH nor in "
        "/usr/lib/postgresql/*/bin; install them, e.g. `apt-get install -y postgresql`."
    )


class PostgresServer:
    """PostgreSQL in `base_dir`: cluster in `data/`, socket in `socket/`, log in `postgres.log`.

    Listens on 127.0.0.1:`port` only; user `herald` (password `herald`, trust auth on loopback).
    `durable=False` turns fsync off: for throwaway test clusters only, never for `make run`.
    As root, every PostgreSQL binary runs as `system_user` and `base_dir` is given to it.
    """

    def __init__(
        self,
        base_dir: Path,
        port: int | None = None,
        *,
        durable: bool = True,
        shared_buffers: str = "256MB",
        max_connections: int = 200,
        start_timeout: float = 60.0,
        system_user: str = "postgres",
    ) -> None:
        self.base_dir = base_dir.absolute()
        self.port = port if port is not None else free_port()
        self.durable = durable
        self.shared_buffers = shared_buffers
        self.max_connections = max_connections
        self.start_timeout = start_timeout
        self.run_as: str | None = system_user if is_root() else None
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "socket"
        self.log_path = self.base_dir / "postgres.log"
        self._started = False

    def __repr__(self) -> str:
        return f"<PostgresServer {self.base_dir} port={self.port}>"

    def url(self, dbname: str = "herald") -> str:
        return f"postgresql://{USER}:{PASSWORD}@{LOCALHOST}:{self.port}/{quote(dbname, safe='')}"

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def create_database(self, name: str, *, exist_ok: bool = False) -> None:
        pgadmin.create_database(self.admin_url, name, exist_ok=exist_ok)

    def drop_database(self, name: str) -> None:
        pgadmin.drop_database(self.admin_url, name)

    def is_initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def postmaster_pid(self) -> int | None:
        """The server's pid from postmaster.pid, when it looks alive (cheap: no pg_ctl call)."""
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        pid = int(first_line) if first_line.strip().isdigit() else None
        return pid if pid is not None and pid_alive(pid) else None

    def is_running(self) -> bool:
        if not self.is_initialized():
            return False
        return self._pg_ctl(["status"], check=False).returncode == 0

    def start(self) -> None:
        """Create the cluster if needed, start it and wait until it accepts connections."""
        bindir = find_pg_bindir()
        self._check_socket_path()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self.run_as is not None:
            check_traversable(self.base_dir, self.run_as)
            chown_tree(self.base_dir, self.run_as)
        if not self.is_initialized():
            self._initdb(bindir)
        self._write_settings()
        if self.is_running():
            # Left over by a supervisor that was killed: restart it with today's settings.
            self.stop()
        if not is_port_free(self.port):
            raise ServerStartError(
                f"cannot start PostgreSQL in {self.base_dir}: port {self.port} is already in use "
                f"(another herald-dev? set HERALD_DEV_PG_PORT to use another port)"
            )
        timeout = str(max(1, int(self.start_timeout)))
        result = self._pg_ctl(
            ["-l", str(self.log_path), "-w", "-t", timeout, "-s", "start"], check=False
        )
        if result.returncode != 0:
            raise ServerStartError(
                f"PostgreSQL in {self.base_dir} did not start (pg_ctl exit {result.returncode}): "
                f"{result.stdout.strip()} {result.stderr.strip()}".strip(),
                tail_file(self.log_path),
            )
        self._started = True
        atexit.register(self.stop)

    def stop(self) -> None:
        """Fast shutdown (disconnects clients, no crash recovery needed next time)."""
        atexit.unregister(self.stop)
        self._started = False
        if not self.is_initialized():
            return
        result = self._pg_ctl(["-m", "fast", "-w", "-t", "60", "-s", "stop"], check=False)
        if result.returncode != 0 and self.is_running():
            raise DevstackError(
                f"PostgreSQL in {self.base_dir} did not stop: {result.stderr.strip()}"
            )

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _check_socket_path(self) -> None:
        socket_path = f"{self.socket_dir}/.s.PGSQL.{self.port}"
        if len(socket_path.encode()) > _SOCKET_PATH_MAX:
            raise DevstackError(
                f"the PostgreSQL socket path {socket_path} is longer than {_SOCKET_PATH_MAX} "
                f"bytes; use a shorter directory than {self.base_dir}"
            )

    def _initdb(self, bindir: Path) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise DevstackError(
                f"{self.data_dir} is not empty but holds no PostgreSQL cluster; remove it"
            )
        password_file = self.base_dir / "initdb-password"
        password_file.write_text(PASSWORD + "\n")
        if self.run_as is not None:
            chown_tree(self.base_dir, self.run_as)
        argv = [
            str(bindir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            USER,
            f"--pwfile={password_file}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ]
        if not self.durable:
            argv.append("--no-sync")
        try:
            result = self._run(argv)
        finally:
            password_file.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise ServerStartError(
                f"initdb failed for {self.data_dir} (exit {result.returncode})",
                (result.stdout + result.stderr).strip()[-3000:],
            )
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# Settings of herald-dev, rewritten at every start.\n")
            conf.write("include_if_exists = 'herald.conf'\n")

    def _write_settings(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": _quote(str(self.socket_dir)),
            "max_connections": str(self.max_connections),
            "shared_buffers": _quote(self.shared_buffers),
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
        }
        if not self.durable:
            # Throwaway test clusters: a crash may lose them, and they get much faster.
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        path = self.data_dir / "herald.conf"
        path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        path.chmod(0o644)

    def _pg_ctl(self, args: Sequence[str], *, check: bool) -> subprocess.CompletedProcess[str]:
        argv = [str(find_pg_bindir() / "pg_ctl"), "-D", str(self.data_dir), *args]
        result = self._run(argv)
        if check and result.returncode != 0:
            raise DevstackError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
        return result

    def _run(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        # cwd inside base_dir: the postgres user may not be allowed into our cwd (e.g. /root).
        # A new session keeps the postmaster out of our terminal's Ctrl-C.
        return subprocess.run(
            as_user(argv, self.run_as),
            cwd=self.base_dir,
            capture_output=True,
            text=True,
            start_new_session=True,
            timeout=self.start_timeout + 30,
            check=False,
        )


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
