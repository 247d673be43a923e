"""free_port: distinct ports that a server can bind and no outgoing connection will take."""

from __future__ import annotations

from pathlib import Path

import pytest

from herald_devstack.probes import free_port, is_port_free

RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def test_ports_are_distinct_and_bindable() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(is_port_free(port) for port in ports[:20])


@pytest.mark.skipif(not RANGE.exists(), reason="no Linux ephemeral port range here")
def test_ports_lie_below_the_ephemeral_range() -> None:
    start = int(RANGE.read_text().split()[0])
    assert all(port < start for port in (free_port() for _ in range(100)))
