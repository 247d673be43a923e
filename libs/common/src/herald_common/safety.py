"""Start-up safety rules: secrets Herald verifies must be strong, credentials never travel in
clear text outside this host or this cluster. Pure functions; the settings classes apply them."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

MIN_SECRET_LENGTH = 32
GENERATE_HINT = "e.g. `openssl rand -hex 32`"

# The documented stand-ins for a secret (deploy/k8s/*/secret.example.yaml's CHANGE-ME, the
# README's and compose's former "…-change-me" values): their words, case and punctuation aside.
_PLACEHOLDER_WORDS = ("changeme", "replaceme", "yoursecret", "yourtoken", "placeholder")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def secret_problem(value: str) -> str | None:
    """Why ``value`` cannot be a secret Herald checks callers against, or None if it can.

    The reason never repeats the value: it ends up in logs and on stderr."""
    words = _NOT_ALNUM.sub("", value.lower())
    if any(word in words for word in _PLACEHOLDER_WORDS):
        return (
            "still holds a documented placeholder, not a secret; set "
            f"{MIN_SECRET_LENGTH} or more random characters, {GENERATE_HINT}"
        )
    if len(value) < MIN_SECRET_LENGTH:
        return (
            f"is too short ({len(value)} characters); use {MIN_SECRET_LENGTH} or more "
            f"random characters, {GENERATE_HINT}"
        )
    return None


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 and ::1."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_in_cluster(host: str) -> bool:
    """A name that only resolves inside a cluster's or a compose project's own network: a
    single-label name (a compose service, a Kubernetes Service in the same namespace), or one
    under ``.svc`` or ``.cluster.local`` (``name.namespace.svc``,
    ``name.namespace.svc.cluster.local``). IP addresses never are: Herald cannot tell a pod's
    address from a host's on the internet."""
    host = host.rstrip(".").lower()
    # A label starts with a letter (RFC 1035, as Kubernetes names it): "10" or "0x7f000001"
    # would be read as an IPv4 address by the resolver.
    if not _LABEL.match(host.split(".", 1)[0]):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return False
    return "." not in host or host.endswith((".svc", ".cluster.local"))


def provider_url_problem(url: str, allow_insecure: bool) -> str | None:
    """Why the provider's token must not be sent to ``url``, or None: plain http only to a
    loopback or in-cluster host (the token then never crosses a network shared with others),
    unless the operator explicitly allows it."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or allow_insecure:
        return None
    host = parts.hostname or ""
    if is_loopback(host) or is_in_cluster(host):
        return None
    return (
        f"HERALD_PROVIDER_URL: would send HERALD_PROVIDER_TOKEN over plain http:// to {host!r}, "
        "which is neither loopback nor in-cluster; use https://, or set "
        "HERALD_PROVIDER_ALLOW_INSECURE_HTTP=true to accept it"
    )


def smtp_auth_problem(username: str, encrypted: bool, allow_plaintext: bool) -> str | None:
    """Why SMTP AUTH must not go ahead, or None: a user name and password over a connection
    that is neither STARTTLS nor TLS travel in clear text, unless the operator explicitly
    allows it."""
    if not username or encrypted or allow_plaintext:
        return None
    return (
        "HERALD_SMTP_USERNAME: SMTP AUTH with HERALD_SMTP_SECURITY=none would send the password "
        "in clear text; set HERALD_SMTP_SECURITY to starttls or tls, or set "
        "HERALD_SMTP_ALLOW_PLAINTEXT_AUTH=true to accept it"
    )
