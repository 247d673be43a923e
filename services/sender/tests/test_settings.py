"""Sender settings: the lease of a claim against the provider call made under it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from herald_common.settings import EXIT_BAD_SETTINGS
from herald_sender.settings import SenderSettings

REQUIRED = {
    "HERALD_DATABASE_URL": "postgresql://herald@127.0.0.1/herald",
    "HERALD_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/",
    "HERALD_PROVIDER_URL": "http://127.0.0.1:8080/v1",
    "HERALD_PROVIDER_TOKEN": "token",
}


@pytest.fixture(autouse=True)
def required_env(no_herald_env: object, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)


def test_defaults_leave_a_lease_six_times_a_call() -> None:
    settings = SenderSettings()  # type: ignore[call-arg]
    assert (settings.provider_timeout_s, settings.lease_s) == (10.0, 60.0)


@pytest.mark.parametrize(
    ("timeout", "lease"), [("10", "20"), ("1", "2"), ("0.5", "30")], ids=["twice", "small", "wide"]
)
def test_a_lease_of_at_least_twice_the_call_is_accepted(
    monkeypatch: pytest.MonkeyPatch, timeout: str, lease: str
) -> None:
    monkeypatch.setenv("HERALD_PROVIDER_TIMEOUT_S", timeout)
    monkeypatch.setenv("HERALD_LEASE_S", lease)
    settings = SenderSettings()  # type: ignore[call-arg]
    assert (settings.provider_timeout_s, settings.lease_s) == (float(timeout), float(lease))


@pytest.mark.parametrize(
    ("timeout", "lease"),
    [("10", "19.9"), ("30", "45"), (None, "15")],
    ids=["just-short", "one-and-a-half", "default-timeout"],
)
def test_a_lease_shorter_than_twice_the_call_names_both_settings(
    monkeypatch: pytest.MonkeyPatch, timeout: str | None, lease: str
) -> None:
    if timeout is not None:
        monkeypatch.setenv("HERALD_PROVIDER_TIMEOUT_S", timeout)
    monkeypatch.setenv("HERALD_LEASE_S", lease)
    with pytest.raises(ValidationError) as caught:
        SenderSettings()  # type: ignore[call-arg]
    [error] = caught.value.errors()
    assert error["loc"] == ("lease_s",)
    assert f"at least twice HERALD_PROVIDER_TIMEOUT_S ({timeout or '10'} s)" in error["msg"]


def test_a_bad_timeout_is_reported_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_PROVIDER_TIMEOUT_S", "soon")
    monkeypatch.setenv("HERALD_LEASE_S", "5")
    with pytest.raises(ValidationError) as caught:
        SenderSettings()  # type: ignore[call-arg]
    assert [error["loc"] for error in caught.value.errors()] == [("provider_timeout_s",)]


def test_the_sender_refuses_to_start_with_a_short_lease_and_says_why() -> None:
    env = {**REQUIRED, "PATH": os.environ["PATH"], "HERALD_LEASE_S": "15"}
    script = Path(sys.executable).with_name("herald-sender")
    result = subprocess.run(
        [str(script)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == EXIT_BAD_SETTINGS, result.stderr
    assert result.stderr.startswith(
        "herald-sender: HERALD_LEASE_S: must be at least twice HERALD_PROVIDER_TIMEOUT_S (10 s)"
    )
    assert "settings_invalid" in result.stdout


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("https://provider.example.com/v1", ""),
        ("http://127.0.0.1:8001/v1", ""),
        ("http://localhost:8001/v1", ""),
        ("http://provider-sim:8001/v1", ""),  # a compose service
        ("http://herald-provider-sim.herald.svc.cluster.local:8001/v1", ""),
        ("http://provider.example.com/v1", "true"),
    ],
)
def test_the_provider_url_is_accepted_when_the_token_stays_private(
    monkeypatch: pytest.MonkeyPatch, url: str, allow: str
) -> None:
    monkeypatch.setenv("HERALD_PROVIDER_URL", url)
    if allow:
        monkeypatch.setenv("HERALD_PROVIDER_ALLOW_INSECURE_HTTP", allow)
    assert SenderSettings().provider_url == url  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "url", ["http://provider.example.com/v1", "http://10.0.0.7:8001/v1", "http://192.168.1.20/v1"]
)
def test_the_sender_refuses_to_send_its_token_over_http_to_another_host_and_says_why(
    url: str,
) -> None:
    env = {**REQUIRED, "PATH": os.environ["PATH"], "HERALD_PROVIDER_URL": url}
    script = Path(sys.executable).with_name("herald-sender")
    result = subprocess.run(
        [str(script)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == EXIT_BAD_SETTINGS, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(
        "herald-sender: HERALD_PROVIDER_URL: would send HERALD_PROVIDER_TOKEN over plain http://"
    )
    assert "HERALD_PROVIDER_ALLOW_INSECURE_HTTP=true" in line
