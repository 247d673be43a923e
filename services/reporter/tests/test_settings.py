"""The reporter's settings: what an operator may write, and refusing to start on bad values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import time
from pathlib import Path

import pytest

from herald_common.settings import EXIT_BAD_SETTINGS, BadSettings, load_settings
from herald_reporter.settings import ReporterSettings, SmtpSecurity

BASE = {"HERALD_DATABASE_URL": "postgresql://herald@127.0.0.1/herald"}


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HERALD_REPORT_RECIPIENTS", "HERALD_REPORT_TIME", "HERALD_REPORT_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in BASE.items():
        monkeypatch.setenv(name, value)


def test_defaults_and_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_REPORT_RECIPIENTS", " ops@example.com,boss@mail.example.org , ")
    monkeypatch.setenv("HERALD_SMTP_PASSWORD", "hunter2")

    settings = load_settings(ReporterSettings)

    assert settings.report_recipients == ["ops@example.com", "boss@mail.example.org"]
    assert settings.report_time == time(8, 0)
    assert settings.zone.key == "UTC"
    assert settings.smtp_security is SmtpSecurity.NONE
    assert settings.metrics_port == 9109
    assert settings.amqp_url == ""  # the reporter needs no broker
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, "HERALD_REPORT_RECIPIENTS: is required", id="recipients-missing"),
        pytest.param(
            {"HERALD_REPORT_RECIPIENTS": " , "},
            "HERALD_REPORT_RECIPIENTS: at least one address is required",
            id="recipients-empty",
        ),
        pytest.param(
            {"HERALD_REPORT_RECIPIENTS": "ops@example.com,not-an-address"},
            "HERALD_REPORT_RECIPIENTS: 'not-an-address' is not an e-mail address",
            id="recipient-invalid",
        ),
        pytest.param(
            {"HERALD_REPORT_RECIPIENTS": "a@b.c", "HERALD_REPORT_TIME": "8:00"},
            "HERALD_REPORT_TIME: '8:00' is not a time HH:MM",
            id="time-not-hh-mm",
        ),
        pytest.param(
            {"HERALD_REPORT_RECIPIENTS": "a@b.c", "HERALD_REPORT_TIME": "24:00"},
            "HERALD_REPORT_TIME: '24:00' is not a time HH:MM",
            id="time-out-of-range",
        ),
        pytest.param(
            {"HERALD_REPORT_RECIPIENTS": "a@b.c", "HERALD_REPORT_TIMEZONE": "Europe/Atlantis"},
            "HERALD_REPORT_TIMEZONE: 'Europe/Atlantis' is not an IANA time zone",
            id="zone-unknown",
        ),
        pytest.param(
            {"HERALD_REPORT_RECIPIENTS": "a@b.c", "HERALD_SMTP_SECURITY": "ssl"},
            "HERALD_SMTP_SECURITY: Input should be 'none', 'starttls' or 'tls'",
            id="security-unknown",
        ),
        pytest.param(
            {"HERALD_REPORT_RECIPIENTS": "a@b.c", "HERALD_SMTP_USERNAME": "reporter"},
            "HERALD_SMTP_USERNAME: SMTP AUTH with HERALD_SMTP_SECURITY=none would send the "
            "password in clear text",
            id="auth-without-tls",
        ),
    ],
)
def test_bad_settings_stop_the_service_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(BadSettings) as caught:
        load_settings(ReporterSettings)

    [problem] = caught.value.problems
    assert problem.startswith(expected)


@pytest.mark.parametrize(
    "env",
    [
        {"HERALD_SMTP_USERNAME": "reporter", "HERALD_SMTP_SECURITY": "starttls"},
        {"HERALD_SMTP_USERNAME": "reporter", "HERALD_SMTP_SECURITY": "tls"},
        {"HERALD_SMTP_USERNAME": "reporter", "HERALD_SMTP_ALLOW_PLAINTEXT_AUTH": "true"},
        {"HERALD_SMTP_SECURITY": "none"},  # a relay that needs no AUTH
    ],
    ids=["starttls", "tls", "explicitly-allowed", "no-auth"],
)
def test_smtp_auth_is_accepted_over_tls_or_when_explicitly_allowed(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    monkeypatch.setenv("HERALD_REPORT_RECIPIENTS", "ops@example.com")
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    settings = load_settings(ReporterSettings)

    assert settings.smtp_username == env.get("HERALD_SMTP_USERNAME", "")


def test_the_process_refuses_to_start_and_says_why() -> None:
    env = {**BASE, "PATH": os.environ["PATH"], "HERALD_REPORT_RECIPIENTS": ""}
    script = Path(sys.executable).with_name("herald-reporter")

    result = subprocess.run(
        [str(script)], env=env, capture_output=True, text=True, timeout=30, check=False
    )

    assert result.returncode == EXIT_BAD_SETTINGS
    assert "herald-reporter: HERALD_REPORT_RECIPIENTS: at least one address" in result.stderr
    [line] = [json.loads(line) for line in result.stdout.splitlines()]
    assert line["event"] == "settings_invalid"
    assert line["level"] == "error"


def test_the_process_refuses_smtp_auth_in_clear_text_in_one_line() -> None:
    env = {
        **BASE,
        "PATH": os.environ["PATH"],
        "HERALD_REPORT_RECIPIENTS": "ops@example.com",
        "HERALD_SMTP_HOST": "smtp.example.com",
        "HERALD_SMTP_USERNAME": "reporter",
        "HERALD_SMTP_PASSWORD": "hunter2-hunter2",
    }
    script = Path(sys.executable).with_name("herald-reporter")

    result = subprocess.run(
        [str(script)], env=env, capture_output=True, text=True, timeout=30, check=False
    )

    assert result.returncode == EXIT_BAD_SETTINGS
    [line] = result.stderr.splitlines()
    assert line.startswith("herald-reporter: HERALD_SMTP_USERNAME: SMTP AUTH with ")
    assert "HERALD_SMTP_ALLOW_PLAINTEXT_AUTH=true" in line
    assert "hunter2" not in result.stderr + result.stdout
