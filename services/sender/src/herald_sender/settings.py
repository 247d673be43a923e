"""Sender settings from ``HERALD_*`` environment variables."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from herald_common.safety import provider_url_problem
from herald_common.settings import HeraldSettings, QueueSettings, RetrySettings


class SenderSettings(HeraldSettings, RetrySettings, QueueSettings):
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    provider_url: str = Field(description="Base URL; messages go to {provider_url}/send/{id}.")
    provider_token: SecretStr = Field(description="JWT sent as the provider's bearer token.")
    provider_allow_insecure_http: bool = Field(
        default=False,
        description="Send the token over plain http:// to a host that is neither loopback nor "
        "in-cluster (refused by default).",
    )
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
    job_hold_max_s: float = Field(
        default=600,
        gt=0,
        le=3600,
        description=(
            "Longest a sender holds a job unacknowledged while waiting (an open circuit, a "
            "provider's pause, busy slots); the rest goes back to the queue as a new job. "
            "Keep it well below RabbitMQ's consumer_timeout (30 min by default)."
        ),
    )
    uncertain_outcome: Literal["resend", "fail"] = Field(
        default="resend",
        description=(
            "A call whose outcome is unknown (a timeout or a dropped connection after the "
            "request was written, a 200 that cannot be read): resend (the provider sees the "
            "same message id and can drop the duplicate) or fail ('outcome unknown')."
        ),
    )
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
    rate_limit_per_s: float = Field(
        default=0.0,
        ge=0,
        description="Provider calls per second for all replicas together; 0: no limit.",
    )
    rate_limit_burst: int = Field(default=50, ge=1, le=100_000)
    breaker_failures: int = Field(
        default=20, ge=1, description="Failed calls in a row that open the circuit."
    )
    breaker_cooldown_s: float = Field(default=1.0, gt=0, le=600)
    breaker_max_cooldown_s: float = Field(default=60.0, gt=0, le=3600)
    record_batch_size: int = Field(default=500, ge=1, le=10_000)
    record_interval_ms: float = Field(default=5.0, ge=0, le=1_000)

    @field_validator("lease_s")
    @classmethod
    def _lease_outlives_a_call(cls, lease_s: float, info: ValidationInfo) -> float:
        # A claim's lease must cover the call and the write of its outcome; a lease that ends
        # while the call is in flight lets the scheduler hand the message to another sender,
        # and the client gets it twice. Half the lease is left for the write.
        timeout_s = info.data.get("provider_timeout_s")
        if timeout_s is not None and lease_s < 2 * timeout_s:
            raise ValueError(
                f"must be at least twice HERALD_PROVIDER_TIMEOUT_S ({timeout_s:g} s), "
                f"so that a claim outlives the provider call made under it"
            )
        return lease_s

    @model_validator(mode="after")
    def _token_not_in_clear(self) -> Self:
        problem = provider_url_problem(self.provider_url, self.provider_allow_insecure_http)
        if problem is not None:
            raise ValueError(problem)
        return self
