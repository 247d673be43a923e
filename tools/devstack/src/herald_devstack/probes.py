"""Port and HTTP probes: free ports, waiting for listeners, the HTTP status of a URL."""

from __future__ import annotations

import functools
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx

LOCALHOST = "127.0.0.1"


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000
_handed_out: set[int] = set()
_random = random.Random()


def _ephemeral_start() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def free_port(host: str = LOCALHOST) -> int:
    """A port nobody listens on now, and not given out before by this process.

    Picked below the kernel's ephemeral range where there is one: the kernel never gives those
    to outgoing connections, so no client's connection takes the port before its server binds
    it, and a client reconnecting to a restarted server cannot connect to itself.
    """
    start = _ephemeral_start()
    if start > _LOWEST + 1_000:
        for _ in range(500):
            port = _random.randrange(_LOWEST, start)
            # A port with connections in TIME_WAIT was in use a moment ago: skip it too.
            if port not in _handed_out and is_port_free(port, host, allow_time_wait=False):
                _handed_out.add(port)
                return port
    # No such range here (or it is all taken): the kernel picks, avoiding ours.
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def is_port_free(port: int, host: str = LOCALHOST, *, allow_time_wait: bool = True) -> bool:
    """True when a server could bind `host:port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if allow_time_wait:
            # Servers set SO_REUSEADDR, so sockets in TIME_WAIT must not count as "in use".
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_accepts(port: int, host: str = LOCALHOST, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    port: int,
    host: str = LOCALHOST,
    timeout: float = 30.0,
    alive: Callable[[], bool] | None = None,
) -> bool:
    """Poll until `host:port` accepts connections; False on timeout or once `alive()` is false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_accepts(port, host):
            return True
        if alive is not None and not alive():
            return False
        time.sleep(0.05)
    return False


def wait_for_ports_free(ports: list[int], host: str = LOCALHOST, timeout: float = 10.0) -> bool:
    """Poll until every port could be bound again."""
    deadline = time.monotonic() + timeout
    while True:
        if all(is_port_free(port, host) for port in ports):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


@functools.cache
def http_client() -> httpx.Client:
    """The one client of every probe and management API call: building one builds an SSL
    context (some 25 ms), too slow for loops that poll every 0.1 s. Without keep-alive each
    request has a connection of its own, never one left open to a server restarted since."""
    return httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of a GET, or None when nothing answered."""
    try:
        return http_client().get(url, timeout=timeout, follow_redirects=True).status_code
    except httpx.HTTPError:
        return None
