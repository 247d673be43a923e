"""Settings shared by every Herald service, read from ``HERALD_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def to_sqlalchemy_url(url: str) -> str:
    """Map a plain ``postgresql://`` URL to the psycopg 3 driver SQLAlchemy should use."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("must be a postgresql:// URL")


class HeraldSettings(BaseSettings):
    """What every service needs: where the database and the broker are, and how to log."""

    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore")

    database_url: str = Field(
        description="PostgreSQL URL, e.g. postgresql://herald:herald@127.0.0.1:5432/herald"
    )
    amqp_url: str = Field(description="RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/")
    log_level: str = "INFO"
    service_instance: str = Field(
        default="", description="Name of this replica in logs (defaults to the host name)."
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
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

    @property
    def sqlalchemy_url(self) -> str:
        return to_sqlalchemy_url(self.database_url)


class RetrySettings(BaseSettings):
    """Backoff steps; every service declaring the topology must agree on them."""

    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore")

    retry_base_ms: int = Field(default=2_000, ge=10, description="Delay after the first failure.")
    retry_max_ms: int = Field(default=900_000, ge=10, description="Longest delay between attempts.")
