"""Turning message ids into delivery jobs for the broker."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from herald_common.broker import Outgoing
from herald_common.contracts import DeliveryJob
from herald_common.topology import (
    DELIVER_ROUTING_KEY,
    JOBS_EXCHANGE,
    RETRY_EXCHANGE,
    retry_routing_key,
)


def delivery_jobs(mailing_id: int, message_ids: Sequence[int], job_size: int) -> list[Outgoing]:
    """Jobs of at most ``job_size`` messages of one mailing, for the delivery queue."""
    return [
        Outgoing(
            JOBS_EXCHANGE,
            DELIVER_ROUTING_KEY,
            DeliveryJob(mailing_id=mailing_id, message_ids=list(chunk)).encode(),
            {"x-mailing-id": mailing_id, "x-message-ids": list(chunk)},
        )
        for chunk in chunked(message_ids, job_size)
    ]


def redelivery_job(mailing_id: int, message_ids: Sequence[int]) -> Outgoing:
    """A fresh copy of a job for the delivery queue (its broker delivery count starts over)."""
    (job,) = delivery_jobs(mailing_id, message_ids, len(message_ids))
    return job


def retry_job(mailing_id: int, message_id: int, tier_ms: int, delay_ms: int) -> Outgoing:
    """One message for the retry queue of ``tier_ms``; it expires back into delivery."""
    return Outgoing(
        RETRY_EXCHANGE,
        retry_routing_key(tier_ms),
        DeliveryJob(mailing_id=mailing_id, message_ids=[message_id]).encode(),
        {"x-mailing-id": mailing_id, "x-message-id": message_id, "x-delay-ms": delay_ms},
        expiration_ms=delay_ms,
    )


def chunked(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
