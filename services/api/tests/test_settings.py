"""The API's settings: the tokens Herald checks callers against are refused at start-up when
weak, in one line naming the variable and never the value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from herald_api.settings import ApiSettings
from herald_common.settings import EXIT_BAD_SETTINGS, describe_errors

from .conftest import TOKEN

CI_TOKEN = "ci-token-0123456789abcdef0123456789"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"api_token": "t"}, "HERALD_API_TOKEN: is too short (1 characters)"),
        ({"api_token": TOKEN[:31]}, "HERALD_API_TOKEN: is too short (31 characters)"),
        ({"api_token": "CHANGE-ME"}, "HERALD_API_TOKEN: still holds a documented placeholder"),
        (
            {"api_token": "dev-api-token-change-me-0123456789"},
            "HERALD_API_TOKEN: still holds a documented placeholder",
        ),
        (
            {"api_tokens": f"ci={CI_TOKEN},partner=pw9x7"},
            "HERALD_API_TOKENS: the token named 'partner' is too short (5 characters)",
        ),
        (
            {"api_tokens": "ci=CHANGE-ME"},
            "HERALD_API_TOKENS: the token named 'ci' still holds a documented placeholder",
        ),
        (
            {"admin_session_secret": "CHANGE-ME-TO-32-OR-MORE-RANDOM-CHARACTERS"},
            "HERALD_ADMIN_SESSION_SECRET: still holds a documented placeholder",
        ),
    ],
)
def test_a_weak_token_is_refused_at_start_naming_the_variable_not_the_value(
    no_herald_env: object, fields: dict[str, str], expected: str
) -> None:
    values = {
        "database_url": "postgresql://h@127.0.0.1/h",
        "amqp_url": "amqp://127.0.0.1/",
        "api_token": TOKEN,
        **fields,
    }
    with pytest.raises(ValidationError) as raised:
        ApiSettings(**values)  # type: ignore[arg-type]
    [problem] = describe_errors(raised.value)
    assert problem.startswith(expected), problem
    assert "openssl rand -hex 32" in problem
    for value in fields.values():
        secret = value.split("=")[-1]
        if len(secret) > 1:
            assert secret.lower() not in str(raised.value).lower()


def test_the_api_refuses_to_start_with_a_short_token_in_one_line() -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HERALD_DATABASE_URL": "postgresql://h@127.0.0.1/h",
        "HERALD_AMQP_URL": "amqp://127.0.0.1/",
        "HERALD_API_TOKEN": "s3cr3t-but-short",
    }
    script = Path(sys.executable).with_name("herald-api")
    result = subprocess.run(
        [str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == EXIT_BAD_SETTINGS, result.stderr
    assert result.stderr.splitlines() == [
        "herald-api: HERALD_API_TOKEN: is too short (16 characters); use 32 or more random "
        "characters, e.g. `openssl rand -hex 32`"
    ]
    assert "s3cr3t-but-short" not in result.stdout
