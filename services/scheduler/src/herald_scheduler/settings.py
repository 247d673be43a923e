"""Scheduler settings from ``HERALD_*`` environment variables."""

from __future__ import annotations

from pydantic import Field

from herald_common.settings import HeraldSettings, QueueSettings, RetrySettings


class SchedulerSettings(HeraldSettings, RetrySettings, QueueSettings):
    # Where deploy/monitoring/prometheus.yml scrapes it, as the README says; 0 turns it off.
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    scheduler_poll_interval_s: float = Field(default=0.5, gt=0, le=60)
    fanout_chunk_size: int = Field(default=5_000, ge=1, le=100_000)
    fanout_parallelism: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Chunks of one mailing inserted side by side, each by its own connection.",
    )
    job_size: int = Field(default=100, ge=1, le=1_000)
    outbox_grace_s: float = Field(
        default=10, ge=0, description="Age after which the relay publishes an outbox row."
    )
    sweep_batch_size: int = Field(default=5_000, ge=1, le=100_000)
    stale_job_s: float = Field(
        default=60,
        gt=0,
        le=86_400,
        description=(
            "A pending message unchanged this long, or a retrying one this far past its retry "
            "time, is given a new delivery job while the delivery queue holds no ready job: "
            "its job was lost (a purged queue, a broker that lost its data)."
        ),
    )
    retention_days: int = Field(
        default=0,
        ge=0,
        le=36_500,
        description=(
            "Delete the message rows of mailings finished (and ended) more than this many days "
            "ago; their statistics stay exact. 0 keeps every message."
        ),
    )
    retention_batch_size: int = Field(default=10_000, ge=1, le=1_000_000)
