"""Settings shared by every Herald service, read from ``HERALD_*`` environment variables."""

from __future__ import annotations

import sys
from typing import TypeVar

import structlog
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from herald_common.logs import configure_logging

# Like sysexits' EX_CONFIG family: a configuration error, not a crash worth restarting for.
EXIT_BAD_SETTINGS = 2

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def split_amqp_urls(value: str) -> list[str]:
    """The broker URLs in HERALD_AMQP_URL: one, or several comma-separated (one per node of a
    cluster, tried in order). Empty means no broker (the reporter needs none)."""
    urls = [item.strip() for item in value.split(",")] if value.strip() else []
    if any(not item for item in urls):
        raise ValueError("has an empty URL between commas")
    for item in urls:
        # One scheme per URL: "amqp://a;amqp://b" is two URLs badly separated, not one.
        if not item.startswith(("amqp://", "amqps://")) or item.count("://") != 1:
            raise ValueError(f"must be amqp:// or amqps:// URLs, comma-separated; got {item!r}")
    return urls


def to_sqlalchemy_url(url: str) -> str:
    """Map a plain ``postgresql://`` URL to the psycopg 3 driver SQLAlchemy should use."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("must be a postgresql:// URL")


class HeraldSettings(BaseSettings):
    """What every service needs: where the database and the broker are, and how to log."""

    model_config = SettingsConfigDict(
        env_prefix="HERALD_", extra="ignore", hide_input_in_errors=True
    )

    database_url: str = Field(
        description="PostgreSQL URL, e.g. postgresql://herald:herald@127.0.0.1:5432/herald"
    )
    amqp_url: str = Field(
        description="RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/; for a cluster, one "
        "URL per node, comma-separated: services connect to the first that answers and move "
        "to another when its node goes down."
    )
    publish_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How long a publish waits for the broker's confirm (a broker under a memory "
        "or disk alarm blocks publishers); then it fails and the job stays in the outbox.",
    )
    log_level: str = "INFO"
    service_instance: str = Field(
        default="", description="Name of this replica in logs (defaults to the host name)."
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_connect_timeout_s: int = Field(
        default=5, ge=1, le=300, description="Limit of opening one database connection."
    )
    db_statement_timeout_ms: int = Field(
        default=30_000,
        ge=0,
        le=3_600_000,
        description="PostgreSQL cancels a statement running longer (0: no limit).",
    )
    db_pool_timeout_s: float = Field(
        default=10, gt=0, le=300, description="Wait for a free pooled connection at most this."
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Where workers serve /metrics (0.0.0.0 in a cluster)."
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Workers' /metrics port; 0 turns it off."
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        to_sqlalchemy_url(value)
        return value

    @field_validator("amqp_url")
    @classmethod
    def _check_amqp_url(cls, value: str) -> str:
        split_amqp_urls(value)
        return value

    @property
    def sqlalchemy_url(self) -> str:
        return to_sqlalchemy_url(self.database_url)


class RetrySettings(BaseSettings):
    """Backoff steps; every service declaring the topology must agree on them."""

    model_config = SettingsConfigDict(
        env_prefix="HERALD_", extra="ignore", hide_input_in_errors=True
    )

    retry_base_ms: int = Field(default=2_000, ge=10, description="Delay after the first failure.")
    retry_max_ms: int = Field(default=900_000, ge=10, description="Longest delay between attempts.")


class QueueSettings(BaseSettings):
    """Queue arguments; like the backoff steps, every service declaring the topology must agree
    (a queue redeclared with other arguments is refused by the broker)."""

    model_config = SettingsConfigDict(
        env_prefix="HERALD_", extra="ignore", hide_input_in_errors=True
    )

    delivery_limit: int = Field(
        default=20,
        ge=1,
        le=1_000,
        description="Deliveries of one job (a sender died or gave it back) before it goes to "
        "herald.dead, so that a job that crashes senders cannot loop forever.",
    )
    dead_max_length: int = Field(
        default=100_000,
        ge=1,
        description="Jobs kept in herald.dead; beyond it the oldest are dropped.",
    )


class BrokerToolSettings(BaseSettings):
    """What a command that talks to RabbitMQ alone needs (herald-migrate-queues,
    herald-dead-letters): the services' broker URL(s), no database."""

    model_config = SettingsConfigDict(
        env_prefix="HERALD_", extra="ignore", hide_input_in_errors=True
    )

    amqp_url: str = Field(description="RabbitMQ URL(s), as the services have it.")
    log_level: str = "INFO"
    service_instance: str = ""

    @field_validator("amqp_url")
    @classmethod
    def _check_amqp_url(cls, value: str) -> str:
        if not split_amqp_urls(value):
            raise ValueError("is required")
        return value


class BadSettings(Exception):
    """Settings a service cannot start with; one line per problem, named by variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def describe_errors(error: ValidationError) -> list[str]:
    """One line per bad setting, named as the operator sets it (HERALD_LEASE_S: …); a rule
    across settings names them in its own words."""
    lines = []
    for item in error.errors():
        reason = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            reason = "is required"
        if item["loc"]:
            lines.append(f"HERALD_{str(item['loc'][0]).upper()}: {reason}")
        else:
            lines.append(reason)
    return lines


def load_settings(kind: type[SettingsT]) -> SettingsT:
    try:
        return kind()
    except ValidationError as error:
        raise BadSettings(describe_errors(error)) from None


def settings_or_exit(kind: type[SettingsT], service: str) -> SettingsT:
    """A service's settings; on bad ones, log and print each problem and exit 2."""
    try:
        return load_settings(kind)
    except BadSettings as error:
        configure_logging(service)
        structlog.get_logger().error("settings_invalid", problems=error.problems)
        for problem in error.problems:
            print(f"herald-{service}: {problem}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_SETTINGS) from None
