"""Shared settings: HERALD_* environment variables and the SQLAlchemy URL they map to."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError, model_validator

from herald_common.settings import (
    EXIT_BAD_SETTINGS,
    BadSettings,
    HeraldSettings,
    load_settings,
    settings_or_exit,
    to_sqlalchemy_url,
)

DB = "postgresql://herald:herald@127.0.0.1:5432/herald"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"


pytestmark = pytest.mark.usefixtures("no_herald_env")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(DB, "postgresql+psycopg://herald:herald@127.0.0.1:5432/herald", id="plain"),
        pytest.param(
            "postgres://u:p@db/herald", "postgresql+psycopg://u:p@db/herald", id="postgres-alias"
        ),
        pytest.param(
            "postgresql+psycopg://u@db/h", "postgresql+psycopg://u@db/h", id="already-psycopg"
        ),
        pytest.param(
            "postgresql://u@db/h?sslmode=require",
            "postgresql+psycopg://u@db/h?sslmode=require",
            id="query-kept",
        ),
        pytest.param("postgresql:///herald", "postgresql+psycopg:///herald", id="unix-socket"),
    ],
)
def test_to_sqlalchemy_url_selects_psycopg(url: str, expected: str) -> None:
    assert to_sqlalchemy_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("", id="empty"),
        pytest.param("mysql://u@db/h", id="mysql"),
        pytest.param("sqlite:///herald.db", id="sqlite"),
        pytest.param("postgresql+asyncpg://u@db/h", id="other-driver"),
        pytest.param("amqp://guest@127.0.0.1/", id="broker-url"),
        pytest.param(" postgresql://u@db/h", id="leading-space"),
    ],
)
def test_to_sqlalchemy_url_rejects_other_schemes(url: str) -> None:
    with pytest.raises(ValueError, match=r"must be a postgresql:// URL"):
        to_sqlalchemy_url(url)


def test_settings_read_from_herald_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_DATABASE_URL", DB)
    monkeypatch.setenv("HERALD_AMQP_URL", AMQP)
    monkeypatch.setenv("HERALD_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("HERALD_SERVICE_INSTANCE", "sender-1")
    monkeypatch.setenv("HERALD_DB_POOL_SIZE", "25")
    monkeypatch.setenv("HERALD_SOMETHING_ELSE", "ignored")
    monkeypatch.setenv("DATABASE_URL", "mysql://not-ours")
    settings = HeraldSettings()  # type: ignore[call-arg]
    assert settings.database_url == DB
    assert settings.amqp_url == AMQP
    assert settings.log_level == "DEBUG"
    assert settings.service_instance == "sender-1"
    assert settings.db_pool_size == 25
    assert settings.sqlalchemy_url == "postgresql+psycopg://herald:herald@127.0.0.1:5432/herald"


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_DATABASE_URL", "postgres://u@db/h")
    monkeypatch.setenv("HERALD_AMQP_URL", AMQP)
    settings = HeraldSettings()  # type: ignore[call-arg]
    assert (settings.log_level, settings.service_instance, settings.db_pool_size) == (
        "INFO",
        "",
        10,
    )
    assert settings.sqlalchemy_url == "postgresql+psycopg://u@db/h"


@pytest.mark.parametrize(
    ("env", "field"),
    [
        pytest.param({"HERALD_AMQP_URL": AMQP}, "database_url", id="database-url-missing"),
        pytest.param({"HERALD_DATABASE_URL": DB}, "amqp_url", id="amqp-url-missing"),
        pytest.param(
            {"HERALD_DATABASE_URL": "mysql://u@db/h", "HERALD_AMQP_URL": AMQP},
            "database_url",
            id="database-url-not-postgres",
        ),
        pytest.param(
            {"HERALD_DATABASE_URL": DB, "HERALD_AMQP_URL": AMQP, "HERALD_DB_POOL_SIZE": "0"},
            "db_pool_size",
            id="pool-size-zero",
        ),
        pytest.param(
            {"HERALD_DATABASE_URL": DB, "HERALD_AMQP_URL": AMQP, "HERALD_DB_POOL_SIZE": "201"},
            "db_pool_size",
            id="pool-size-above-200",
        ),
        pytest.param(
            {"HERALD_DATABASE_URL": DB, "HERALD_AMQP_URL": AMQP, "HERALD_DB_POOL_SIZE": "many"},
            "db_pool_size",
            id="pool-size-not-a-number",
        ),
    ],
)
def test_settings_report_the_bad_field(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], field: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        HeraldSettings()  # type: ignore[call-arg]
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


@pytest.mark.parametrize("size", ["1", "200"], ids=["min", "max"])
def test_settings_accept_pool_size_bounds(monkeypatch: pytest.MonkeyPatch, size: str) -> None:
    monkeypatch.setenv("HERALD_DATABASE_URL", DB)
    monkeypatch.setenv("HERALD_AMQP_URL", AMQP)
    monkeypatch.setenv("HERALD_DB_POOL_SIZE", size)
    assert HeraldSettings().db_pool_size == int(size)  # type: ignore[call-arg]


def test_settings_error_message_names_the_url_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_DATABASE_URL", "sqlite:///x.db")
    monkeypatch.setenv("HERALD_AMQP_URL", AMQP)
    with pytest.raises(ValidationError, match=r"must be a postgresql:// URL"):
        HeraldSettings()  # type: ignore[call-arg]


class _Window(HeraldSettings):
    window_s: float = 1.0
    lead_s: float = 0.5

    @model_validator(mode="after")
    def _lead_inside(self) -> _Window:
        if self.lead_s >= self.window_s:
            raise ValueError("HERALD_LEAD_S must be below HERALD_WINDOW_S")
        return self


def test_bad_settings_are_one_line_each_named_as_the_operator_sets_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HERALD_DATABASE_URL", "mysql://u@db/h")
    monkeypatch.setenv("HERALD_DB_POOL_SIZE", "0")
    with pytest.raises(BadSettings) as caught:
        load_settings(HeraldSettings)
    assert caught.value.problems == [
        "HERALD_DATABASE_URL: must be a postgresql:// URL",
        "HERALD_AMQP_URL: is required",
        "HERALD_DB_POOL_SIZE: Input should be greater than or equal to 1",
    ]


def test_a_rule_across_settings_speaks_for_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_DATABASE_URL", DB)
    monkeypatch.setenv("HERALD_AMQP_URL", AMQP)
    monkeypatch.setenv("HERALD_LEAD_S", "2")
    with pytest.raises(BadSettings) as caught:
        load_settings(_Window)
    assert caught.value.problems == ["HERALD_LEAD_S must be below HERALD_WINDOW_S"]


def test_a_service_with_bad_settings_logs_prints_and_exits_2() -> None:
    # In a process of its own: the service's logging setup is global.
    script = (
        "from herald_common.settings import HeraldSettings, settings_or_exit\n"
        "settings_or_exit(HeraldSettings, 'tool')"
    )
    env = {"PATH": os.environ["PATH"], "HERALD_DATABASE_URL": DB}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == EXIT_BAD_SETTINGS == 2, result.stderr
    assert result.stderr == "herald-tool: HERALD_AMQP_URL: is required\n"
    [line] = result.stdout.splitlines()
    logged = json.loads(line)
    assert (logged["event"], logged["level"], logged["service"], logged["problems"]) == (
        "settings_invalid",
        "error",
        "tool",
        ["HERALD_AMQP_URL: is required"],
    )


def test_good_settings_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_DATABASE_URL", DB)
    monkeypatch.setenv("HERALD_AMQP_URL", AMQP)
    assert settings_or_exit(HeraldSettings, "tool").amqp_url == AMQP
