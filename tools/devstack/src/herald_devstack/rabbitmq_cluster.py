"""A RabbitMQ cluster of several nodes on this machine, from the local Debian package.

Each node has its own directory, node name and AMQP, distribution, management and Prometheus
ports. They share one epmd (nodes on one host find each other through the epmd of that host, so
one per node would hide them from each other) and one Erlang cookie. The first node starts the
cluster; the others join it with `rabbitmqctl stop_app / join_cluster / start_app`. Any node can
then be stopped and started again: it rejoins by itself, from its own data.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from herald_devstack.errors import ServerStartError
from herald_devstack.probes import LOCALHOST, free_port, wait_for_port, wait_for_ports_free
from herald_devstack.processes import MARKER_ENV, ManagedProcess, find_marked_processes, stop_pids
from herald_devstack.rabbitmq import RabbitMQServer, find_epmd
from herald_devstack.rabbitmq_api import ManagementClient


class RabbitMQCluster:
    """`size` nodes in `base_dir/node-<n>`; every listener on 127.0.0.1, user guest/guest."""

    def __init__(self, base_dir: Path, size: int = 3, *, start_timeout: float = 120.0) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.base_dir = base_dir.absolute()
        self.epmd_port = free_port()
        cookie = secrets.token_hex(16).upper()
        self.nodes = [
            RabbitMQServer(
                self.base_dir / f"node-{index}",
                node_name=f"herald-cluster-{index}-{self.epmd_port}@localhost",
                epmd_port=self.epmd_port,
                own_epmd=False,
                cookie=cookie,
                start_timeout=start_timeout,
            )
            for index in range(1, size + 1)
        ]
        self._epmd: ManagedProcess | None = None

    def __repr__(self) -> str:
        return f"<RabbitMQCluster {self.base_dir} nodes={len(self.nodes)}>"

    @property
    def username(self) -> str:
        return RabbitMQServer.username

    @property
    def password(self) -> str:
        return RabbitMQServer.password

    def url(self, vhost: str = "/") -> str:
        """HERALD_AMQP_URL for the whole cluster: every node's URL, comma-separated."""
        return ",".join(node.url(vhost) for node in self.nodes)

    @property
    def management_url(self) -> str:
        return self.api.base_url

    @property
    def api(self) -> ManagementClient:
        """The management API of a running node (any one sees the whole cluster)."""
        for node in self.nodes:
            if node.is_running():
                return node.api
        raise ServerStartError(f"no node of {self} is running")

    def create_vhost(self, name: str) -> None:
        self.api.create_vhost(name)

    def delete_vhost(self, name: str) -> None:
        self.api.delete_vhost(name)

    def node_named(self, erlang_name: str) -> RabbitMQServer:
        for node in self.nodes:
            if node.node_name == erlang_name:
                return node
        raise KeyError(erlang_name)

    def start(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        stop_pids(find_marked_processes(str(self.base_dir), prefix=True), timeout=10)
        self._epmd = ManagedProcess(
            "epmd",
            [str(find_epmd()), "-port", str(self.epmd_port), "-address", LOCALHOST],
            env={MARKER_ENV: str(self.base_dir), "ERL_EPMD_PORT": str(self.epmd_port)},
            log_path=self.base_dir / "epmd.log",
        ).start()
        if not wait_for_port(self.epmd_port, timeout=10, alive=self._epmd.is_running):
            self.stop()
            raise ServerStartError(f"epmd did not listen on port {self.epmd_port}")
        try:
            # Boots overlap: most of a node's start is the Erlang VM and its plugins.
            for node in self.nodes:
                node.launch()
            for node in self.nodes:
                node.wait_ready()
            first = self.nodes[0]
            for node in self.nodes[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", first.node_name)
                node.ctl("start_app")
            self.wait_clustered()
        except BaseException:
            self.stop()
            raise

    def wait_clustered(self, timeout: float = 60.0) -> None:
        """Until the management API lists every node as running."""
        deadline = time.monotonic() + timeout
        wanted = {node.node_name for node in self.nodes}
        running: set[str] = set()
        while time.monotonic() < deadline:
            status, body = self.api.request("GET", "/api/nodes")
            if status == 200:
                running = {item["name"] for item in body if item.get("running")}
                if running >= wanted:
                    return
            time.sleep(0.5)
        raise ServerStartError(f"cluster not formed within {timeout} s: running {running}")

    def stop_node(self, node: RabbitMQServer) -> None:
        """A clean stop (SIGTERM): the node leaves, the others keep the cluster going."""
        node.stop()

    def start_node(self, node: RabbitMQServer) -> None:
        node.start()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop(graceful=False)
        if self._epmd is not None:
            self._epmd.terminate(timeout=5)
            self._epmd = None
        stop_pids(find_marked_processes(str(self.base_dir), prefix=True), timeout=5)
        wait_for_ports_free([self.epmd_port], timeout=10)
