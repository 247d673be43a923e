"""The start-up safety rules, case by case: which secrets are refused, which hosts count as
loopback or in-cluster, when a token or a password would travel in clear text."""

from __future__ import annotations

import pytest

from herald_common.safety import (
    is_in_cluster,
    is_loopback,
    provider_url_problem,
    secret_problem,
    smtp_auth_problem,
)

STRONG = "3f9c2b7e4a1d8f6c5b0e9a7d2c4f1b8e"  # 32 characters


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is too short (0 characters)"),
        ("t", "is too short (1 characters)"),
        ("test-token", "is too short (10 characters)"),
        (STRONG[:31], "is too short (31 characters)"),
        ("CHANGE-ME", "documented placeholder"),
        ("CHANGE-ME-TO-32-OR-MORE-RANDOM-CHARACTERS", "documented placeholder"),
        ("dev-api-token-change-me", "documented placeholder"),
        ("change_me_" + STRONG, "documented placeholder"),
        ("ChangeMe" + STRONG, "documented placeholder"),
        ("replace-me-with-a-long-random-value-please", "documented placeholder"),
        ("your-secret-here-0123456789abcdef0123", "documented placeholder"),
    ],
)
def test_a_short_or_placeholder_secret_is_refused_without_repeating_it(
    value: str, reason: str
) -> None:
    problem = secret_problem(value)
    assert problem is not None
    assert reason in problem
    assert "openssl rand -hex 32" in problem
    if len(value) > 1:
        assert value.lower() not in problem.lower()


@pytest.mark.parametrize(
    "value",
    [STRONG, "a" * 32, "herald-dev-cluster-throwaway-api-token", "é" * 32],
)
def test_a_secret_of_32_or_more_characters_without_a_placeholder_is_accepted(value: str) -> None:
    assert secret_problem(value) is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("localhost.", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("128.0.0.1", False),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("localhost.example.com", False),
        ("mylocalhost", False),
        ("", False),
    ],
)
def test_loopback_is_localhost_127_0_0_0_8_and_ipv6_1(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("host", "in_cluster"),
    [
        ("provider-sim", True),  # a compose service, a Service in the same namespace
        ("herald-provider-sim", True),
        ("provider.herald.svc", True),
        ("provider.herald.svc.cluster.local", True),
        ("provider.herald.svc.cluster.local.", True),
        ("anything.cluster.local", True),
        ("provider.example.com", False),
        ("provider.svc.example.com", False),
        ("cluster.local.example.com", False),
        ("10.0.0.7", False),  # a pod's address or a host's on the internet: cannot tell
        ("10", False),  # read as an IPv4 address by the resolver
        ("0x7f000001", False),
        ("fd00::1", False),
        ("", False),
    ],
)
def test_in_cluster_is_a_single_label_or_a_svc_or_cluster_local_name(
    host: str, in_cluster: bool
) -> None:
    assert is_in_cluster(host) is in_cluster


@pytest.mark.parametrize(
    ("url", "allow", "refused"),
    [
        ("https://provider.example.com/v1", False, False),
        ("https://10.0.0.7/v1", False, False),
        ("http://127.0.0.1:8001/v1", False, False),
        ("http://localhost:8001/v1", False, False),
        ("http://[::1]:8001/v1", False, False),
        ("http://provider-sim:8001/v1", False, False),
        ("http://herald-provider-sim.herald.svc.cluster.local:8001/v1", False, False),
        ("http://provider.example.com/v1", False, True),
        ("HTTP://provider.example.com/v1", False, True),
        ("http://user:pw@provider.example.com:80/v1", False, True),
        ("http://10.0.0.7:8001/v1", False, True),
        ("http://192.168.1.20/v1", False, True),
        ("http://provider.example.com/v1", True, False),
        ("http://10.0.0.7:8001/v1", True, False),
    ],
)
def test_the_provider_token_goes_over_http_only_to_loopback_or_in_cluster_unless_allowed(
    url: str, allow: bool, refused: bool
) -> None:
    problem = provider_url_problem(url, allow_insecure=allow)
    assert (problem is not None) is refused
    if problem is not None:
        assert problem.startswith("HERALD_PROVIDER_URL: ")
        assert "HERALD_PROVIDER_ALLOW_INSECURE_HTTP=true" in problem


@pytest.mark.parametrize(
    ("username", "encrypted", "allow", "refused"),
    [
        ("", False, False, False),  # no AUTH: a relay that needs none
        ("reporter", False, False, True),
        ("reporter", True, False, False),
        ("reporter", False, True, False),
        ("", True, False, False),
    ],
)
def test_smtp_auth_needs_tls_unless_allowed(
    username: str, encrypted: bool, allow: bool, refused: bool
) -> None:
    problem = smtp_auth_problem(username, encrypted=encrypted, allow_plaintext=allow)
    assert (problem is not None) is refused
    if problem is not None:
        assert problem.startswith("HERALD_SMTP_USERNAME: ")
        assert "HERALD_SMTP_ALLOW_PLAINTEXT_AUTH=true" in problem
