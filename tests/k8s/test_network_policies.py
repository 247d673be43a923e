"""The NetworkPolicies let exactly the traffic Herald needs through, evaluated as a CNI would
for the pods and destinations the rendered manifests and settings name."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from .selectors import selects

HERALD = {"kubernetes.io/metadata.name": "herald"}
INGRESS_CONTROLLER = {"kubernetes.io/metadata.name": "ingress-nginx"}
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}
KUBE_SYSTEM = {"kubernetes.io/metadata.name": "kube-system"}
OTHER = {"kubernetes.io/metadata.name": "default"}
KUBE_DNS = {"k8s-app": "kube-dns"}


@dataclass(frozen=True)
class Peer:
    """A pod (namespace labels and pod labels) or, with no labels at all, an address outside."""

    namespace: dict = field(default_factory=dict)
    pod: dict = field(default_factory=dict)

    @property
    def external(self) -> bool:
        return not self.namespace


OUTSIDE = Peer()


def peer_matches(peers: list | None, peer: Peer) -> bool:
    if peers is None:
        return True
    for item in peers:
        if "ipBlock" in item:
            if peer.external and item["ipBlock"]["cidr"] in ("0.0.0.0/0", "::/0"):
                return True
            continue
        if peer.external:
            continue
        if "namespaceSelector" in item:
            if not selects(item["namespaceSelector"], peer.namespace):
                continue
        elif peer.namespace != HERALD:
            continue  # a bare podSelector means this namespace
        if selects(item.get("podSelector", {}), peer.pod):
            return True
    return False


def port_matches(ports: list | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for item in ports:
        assert isinstance(item["port"], int), "named ports: keep policies to numbers"
        if item.get("protocol", "TCP") == protocol and item["port"] <= port <= item.get(
            "endPort", item["port"]
        ):
            return True
    return False


def allowed(build, source: Peer, target: Peer, port: int, protocol: str = "TCP") -> bool:
    """Egress of the source (if it is one of ours) and ingress of the target (likewise)."""
    policies = [p["spec"] for p in build.all("NetworkPolicy")]

    def passes(direction: str, own: Peer, other: Peer) -> bool:
        if own.namespace != HERALD:
            return True  # not governed by Herald's policies
        key = direction.lower()
        applying = [
            p
            for p in policies
            if direction in p["policyTypes"] and selects(p["podSelector"], own.pod)
        ]
        if not applying:
            return True
        side = "to" if key == "egress" else "from"
        return any(
            port_matches(rule.get("ports"), port, protocol) and peer_matches(rule.get(side), other)
            for policy in applying
            for rule in policy.get(key, [])
        )

    return passes("Egress", source, target) and passes("Ingress", target, source)


def workload(build, name: str) -> dict:
    # By prefix: the migration Job's name ends with the release.
    return next(w for w in build.workloads() if w["metadata"]["name"].startswith(name))


def pod(build, name: str) -> Peer:
    return Peer(HERALD, workload(build, name)["spec"]["template"]["metadata"]["labels"])


def destination(build, url: str, default_port: int) -> tuple[Peer, int]:
    """Where a URL of the settings leads: a pod behind one of our Services, or outside."""
    parts = urlsplit(url)
    port = parts.port or default_port
    service = build.find("Service", parts.hostname or "")
    if service is None:
        return OUTSIDE, port
    backends = [
        w["spec"]["template"]["metadata"]["labels"]
        for w in build.workloads()
        if selects(
            {"matchLabels": service["spec"]["selector"]},
            w["spec"]["template"]["metadata"]["labels"],
        )
    ]
    return Peer(HERALD, backends[0]), port


def container_env(build, name: str) -> dict[str, str]:
    return build.env(workload(build, name)["spec"]["template"]["spec"]["containers"][0])


COMPONENTS = (
    "herald-api",
    "herald-scheduler",
    "herald-sender",
    "herald-reporter",
    "herald-migrate",
)


def test_ingress_is_denied_by_default(build):
    deny = build.get("NetworkPolicy", "default-deny-ingress")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    stranger = Peer(OTHER, {"app": "curious"})
    for name in ("herald-api", "herald-scheduler", "herald-sender", "herald-reporter"):
        for port in (8000, 9101, 9102, 9109):
            assert not allowed(build, stranger, pod(build, name), port), (name, port)


def test_the_ingress_controller_reaches_the_api_and_only_the_api(build):
    controller = Peer(INGRESS_CONTROLLER, {"app.kubernetes.io/name": "ingress-nginx"})
    api = pod(build, "herald-api")
    port = int(container_env(build, "herald-api")["HERALD_API_PORT"])
    assert allowed(build, controller, api, port)
    assert not allowed(build, controller, pod(build, "herald-sender"), 9102)


@pytest.mark.parametrize(
    "name", ["herald-api", "herald-scheduler", "herald-sender", "herald-reporter"]
)
def test_prometheus_reaches_every_metrics_port(build, name):
    prometheus = Peer(MONITORING, {"app.kubernetes.io/name": "prometheus"})
    env = container_env(build, name)
    port = int(env["HERALD_API_PORT"] if name == "herald-api" else env["HERALD_METRICS_PORT"])
    assert allowed(build, prometheus, pod(build, name), port)


@pytest.mark.parametrize("name", COMPONENTS)
def test_every_process_resolves_names_and_reaches_postgresql(build, name):
    source = pod(build, name)
    dns = Peer(KUBE_SYSTEM, KUBE_DNS)
    assert allowed(build, source, dns, 53, "UDP")
    assert allowed(build, source, dns, 53, "TCP")
    env = container_env(build, name)
    target, port = destination(build, env["HERALD_DATABASE_URL"], 5432)
    assert allowed(build, source, target, port), (name, target, port)


@pytest.mark.parametrize("name", ["herald-api", "herald-scheduler", "herald-sender"])
def test_the_broker_users_reach_rabbitmq(build, name):
    env = container_env(build, name)
    target, port = destination(build, env["HERALD_AMQP_URL"], 5672)
    assert allowed(build, pod(build, name), target, port)


def test_senders_reach_the_provider_and_the_reporter_smtp(build):
    sender = container_env(build, "herald-sender")
    target, port = destination(build, sender["HERALD_PROVIDER_URL"], 443)
    assert allowed(build, pod(build, "herald-sender"), target, port)
    if build.name == "dev":
        assert not target.external  # the simulator
    # The real provider's HTTPS, whatever the overlay.
    assert allowed(build, pod(build, "herald-sender"), OUTSIDE, 443)
    reporter = container_env(build, "herald-reporter")
    smtp = int(reporter["HERALD_SMTP_PORT"])
    assert allowed(build, pod(build, "herald-reporter"), OUTSIDE, smtp)
    # The admin UI's OIDC issuer.
    assert allowed(build, pod(build, "herald-api"), OUTSIDE, 443)


def test_processes_open_nothing_else(build):
    assert not allowed(build, pod(build, "herald-scheduler"), OUTSIDE, 443)
    assert not allowed(build, pod(build, "herald-reporter"), OUTSIDE, 5672)
    assert not allowed(build, pod(build, "herald-migrate"), OUTSIDE, 443)
    assert not allowed(build, pod(build, "herald-api"), OUTSIDE, 25)
