"""Sender settings from ``HERALD_*`` environment variables."""

from __future__ import annotations

from herald_common.settings import HeraldSettings, RetrySettings
from pydantic import Field, SecretStr


class SenderSettings(HeraldSettings, RetrySettings):
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    provider_url: str = Field(description="Base URL; messages go to {provider_url}/send/{id}.")
    provider_token: SecretStr = Field(description="JWT sent as the provider's bearer token.")
    provider_connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    provider_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Whole-request limit of one provider call."
    )
    sender_concurrency: int = Field(
        default=200, ge=1, le=5_000, description="Provider calls in flight per replica."
    )
    sender_prefetch: int = Field(
        default=3, ge=1, le=1_000, description="Unacknowledged jobs per replica."
    )
    max_attempts: int = Field(default=10, ge=1, le=100)
    send_guard_ms: int = Field(
        default=500,
        ge=0,
        le=60_000,
        description="Nothing is handed to the provider this close to the mailing's end.",
    )
    lease_s: float = Field(
        default=60.0,
        gt=0,
        description="How long a claimed message stays ours before the scheduler re-queues it.",
    )
    record_batch_size: int = Field(default=500, ge=1, le=10_000)
    record_interval_ms: float = Field(default=5.0, ge=0, le=1_000)
