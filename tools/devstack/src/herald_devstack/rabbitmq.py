"""A RabbitMQ node from the local Debian package, in a directory of its own."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

from herald_devstack.errors import BinaryNotFoundError, ServerStartError
from herald_devstack.logs import tail_files
from herald_devstack.probes import (
    LOCALHOST,
    free_port,
    is_port_free,
    port_accepts,
    wait_for_port,
    wait_for_ports_free,
)
from herald_devstack.processes import (
    MARKER_ENV,
    ManagedProcess,
    find_marked_processes,
    stop_pids,
)
from herald_devstack.rabbitmq_api import ManagementClient, amqp_url

DEBIAN_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
DEBIAN_CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
PLUGINS = ("rabbitmq_management", "rabbitmq_prometheus")


def find_rabbitmq_server() -> Path:
    """The real start script; Debian's /usr/sbin one switches to the `rabbitmq` user, which then
    cannot write our directories, so it is skipped."""
    candidates = [str(DEBIAN_SERVER), shutil.which("rabbitmq-server")]
    for candidate in candidates:
        wrapper = candidate is not None and os.path.realpath(candidate).endswith("script-wrapper")
        if candidate and os.path.exists(candidate) and not wrapper:
            return Path(candidate)
    raise BinaryNotFoundError(
        f"RabbitMQ is not installed ({DEBIAN_SERVER} not found): "
        "run `apt-get install -y rabbitmq-server` (its system service need not run)."
    )


def find_epmd() -> Path:
    bundled = sorted(glob.glob("/usr/lib/erlang/erts-*/bin/epmd"))
    found = shutil.which("epmd") or (bundled[-1] if bundled else None)
    if found is None:
        raise BinaryNotFoundError(
            "epmd (Erlang) was not found: run `apt-get install -y rabbitmq-server`."
        )
    return Path(found)


class RabbitMQServer:
    """A RabbitMQ node in `base_dir`, every listener on 127.0.0.1 only, user guest/guest.

    It gets its own epmd on `epmd_port` (not the default 4369) so parallel nodes never share one
    and nothing survives `stop()`. Ports left as None are picked free. Nodes of one cluster must
    find each other through one epmd: they get `own_epmd=False` and the port of an epmd their
    owner runs (see RabbitMQCluster), and one Erlang `cookie`.
    """

    username = "guest"
    password = "guest"

    def __init__(
        self,
        base_dir: Path,
        amqp_port: int | None = None,
        management_port: int | None = None,
        dist_port: int | None = None,
        node_name: str | None = None,
        *,
        prometheus_port: int | None = None,
        epmd_port: int | None = None,
        own_epmd: bool = True,
        cookie: str | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        self.base_dir = base_dir.absolute()
        self.amqp_port = amqp_port or free_port()
        self.management_port = management_port or free_port()
        self.dist_port = dist_port or free_port()
        self.prometheus_port = prometheus_port or free_port()
        self.epmd_port = epmd_port or free_port()
        self.own_epmd = own_epmd
        self.cookie = cookie
        self.node_name = node_name or f"herald-{self.amqp_port}@localhost"
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.log_dir = self.base_dir / "log"
        self.api = ManagementClient(self.management_url, self.username, self.password)
        self._server: ManagedProcess | None = None
        self._epmd: ManagedProcess | None = None

    def __repr__(self) -> str:
        return f"<RabbitMQServer {self.base_dir} amqp={self.amqp_port}>"

    @property
    def ports(self) -> list[int]:
        """The ports this node (and its epmd, if its own) listens on."""
        ports = [self.amqp_port, self.management_port, self.prometheus_port, self.dist_port]
        return [*ports, self.epmd_port] if self.own_epmd else ports

    @property
    def management_url(self) -> str:
        return f"http://{LOCALHOST}:{self.management_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{LOCALHOST}:{self.prometheus_port}/metrics"

    def url(self, vhost: str = "/") -> str:
        return amqp_url(LOCALHOST, self.amqp_port, self.username, self.password, vhost)

    def create_vhost(self, name: str) -> None:
        self.api.create_vhost(name)

    def delete_vhost(self, name: str) -> None:
        self.api.delete_vhost(name)

    def is_running(self) -> bool:
        return self._server is not None and self._server.is_running()

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the node without waiting; call wait_ready() later (lets callers overlap boots)."""
        server = find_rabbitmq_server()
        epmd = find_epmd()
        for directory in ("home", "mnesia", "log"):
            (self.base_dir / directory).mkdir(parents=True, exist_ok=True)
        if self.cookie is not None:
            # Erlang refuses a cookie file that others can read.
            cookie_file = self.base_dir / "home" / ".erlang.cookie"
            if cookie_file.exists():
                cookie_file.chmod(0o600)
            cookie_file.write_text(self.cookie)
            cookie_file.chmod(0o400)
        # A supervisor killed with SIGKILL leaves the node and its epmd behind; they are ours.
        stop_pids(find_marked_processes(str(self.base_dir)), timeout=self.stop_timeout)
        busy = [port for port in self.ports if not is_port_free(port)]
        if busy:
            raise ServerStartError(
                f"cannot start RabbitMQ in {self.base_dir}: port(s) {busy} already in use "
                "(another herald-dev? set HERALD_DEV_AMQP_PORT and friends to other ports)"
            )
        self._write_config()
        env = self._environment()
        if not self.own_epmd:
            self._launch_server(server, env)
            return
        self._epmd = ManagedProcess(
            "epmd",
            [str(epmd), "-port", str(self.epmd_port), "-address", LOCALHOST],
            env=env,
            log_path=self.log_dir / "epmd.log",
        ).start()
        if not wait_for_port(self.epmd_port, timeout=10, alive=self._epmd.is_running):
            self._stop_processes()
            raise ServerStartError(
                f"epmd did not listen on port {self.epmd_port}", self._log_tails()
            )
        self._launch_server(server, env)

    def _launch_server(self, server: Path, env: dict[str, str]) -> None:
        self._server = ManagedProcess(
            "rabbitmq",
            [str(server)],
            env=env,
            cwd=self.base_dir,
            log_path=self.log_dir / "server-output.log",
        ).start()

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run `rabbitmqctl -n <this node> args…` with the node's environment (its cookie and
        epmd); returns stdout, raises ServerStartError with the output on failure."""
        argv = [str(DEBIAN_CTL if DEBIAN_CTL.exists() else "rabbitmqctl"), "-n", self.node_name]
        result = subprocess.run(
            [*argv, *args],
            env={**os.environ, **self._environment()},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise ServerStartError(
                f"rabbitmqctl {' '.join(args)} on {self.node_name} failed "
                f"({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
            )
        return result.stdout

    def wait_ready(self) -> None:
        """Wait until AMQP accepts connections and the management API answers."""
        if self._server is None:
            raise RuntimeError("launch() the server first")
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self._server.is_running():
                code = self._server.returncode
                self._stop_processes()
                raise ServerStartError(
                    f"RabbitMQ in {self.base_dir} exited during start (code {code})",
                    self._log_tails(),
                )
            if port_accepts(self.amqp_port) and self.api.is_alive():
                return
            time.sleep(0.2)
        self.stop()
        raise ServerStartError(
            f"RabbitMQ in {self.base_dir} was not ready within {self.start_timeout} s",
            self._log_tails(),
        )

    def stop(self, *, graceful: bool = True) -> None:
        """SIGTERM the node's process group, SIGKILL it after `stop_timeout`, then stop epmd.

        `graceful=False` kills at once: for throwaway test nodes, whose data nobody needs.
        """
        self._stop_processes(graceful=graceful)
        stop_pids(find_marked_processes(str(self.base_dir)), timeout=5)
        wait_for_ports_free(self.ports, timeout=10)

    def _stop_processes(self, *, graceful: bool = True) -> None:
        if self._server is not None:
            self._server.terminate(timeout=self.stop_timeout if graceful else 0)
            self._server = None
        if self._epmd is not None:
            self._epmd.terminate(timeout=5)
            self._epmd = None

    def _write_config(self) -> None:
        config = {
            "listeners.tcp.default": f"{LOCALHOST}:{self.amqp_port}",
            "management.tcp.ip": LOCALHOST,
            "management.tcp.port": str(self.management_port),
            "prometheus.tcp.ip": LOCALHOST,
            "prometheus.tcp.port": str(self.prometheus_port),
            # Queue depths and consumer counts per queue, for the dashboard and the alerts.
            "prometheus.return_per_object_metrics": "true",
            "log.console": "false",
            "log.file.level": "info",
        }
        text = "".join(f"{key} = {value}\n" for key, value in config.items())
        (self.base_dir / "rabbitmq.conf").write_text(text)
        (self.base_dir / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")

    def _environment(self) -> dict[str, str]:
        base = self.base_dir
        return {
            MARKER_ENV: str(base),
            "HOME": str(base / "home"),  # the Erlang cookie lives there
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": LOCALHOST,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.log_dir),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            # Keep the machine-wide /etc/rabbitmq files out of our node.
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                "-kernel inet_dist_use_interface {127,0,0,1} -start_epmd false"
            ),
        }

    def _log_tails(self) -> str:
        return tail_files(
            [
                self.log_dir / "server-output.log",
                self.log_dir / f"{self.node_name}.log",
                self.log_dir / "epmd.log",
            ]
        )
