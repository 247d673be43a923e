"""Versioned broker messages: exact wire form, round trips, and what a consumer rejects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from herald_common.contracts import (
    MAX_JOB_MESSAGES,
    DeliveryJob,
    MailingEvent,
)
from herald_common.topology import persistent_message

STARTS = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)
ENDS = datetime(2024, 6, 4, 9, 0, tzinfo=UTC)
OCCURRED = datetime(2024, 6, 3, 8, 59, 30, tzinfo=UTC)


def test_job_content_type_and_size_limit() -> None:
    assert (persistent_message(b"{}").content_type, MAX_JOB_MESSAGES) == ("application/json", 1000)


def test_delivery_job_encodes_to_exact_json() -> None:
    job = DeliveryJob(mailing_id=7, message_ids=[1, 2, 3])
    assert job.encode() == b'{"v":1,"mailing_id":7,"message_ids":[1,2,3]}'


@pytest.mark.parametrize("count", [1, 2, MAX_JOB_MESSAGES], ids=["one", "two", "max"])
def test_delivery_job_round_trips(count: int) -> None:
    job = DeliveryJob(mailing_id=42, message_ids=list(range(1, count + 1)))
    decoded = DeliveryJob.decode(job.encode())
    assert decoded == job
    assert decoded.message_ids == list(range(1, count + 1))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            b'{"v":1,"mailing_id":1,"message_ids":[5]}',
            DeliveryJob(mailing_id=1, message_ids=[5]),
            id="v1",
        ),
        pytest.param(
            b'{"mailing_id":1,"message_ids":[5]}',
            DeliveryJob(mailing_id=1, message_ids=[5]),
            id="missing-version-means-v1",
        ),
        pytest.param(
            b'{"v":1,"mailing_id":1,"message_ids":[5],"trace":"abc"}',
            DeliveryJob(mailing_id=1, message_ids=[5]),
            id="unknown-field-ignored",
        ),
    ],
)
def test_delivery_job_decodes_known_versions(body: bytes, expected: DeliveryJob) -> None:
    assert DeliveryJob.decode(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"v":2,"mailing_id":1,"message_ids":[5]}', id="unknown-version"),
        pytest.param(b'{"v":1,"mailing_id":1,"message_ids":[]}', id="no-messages"),
        pytest.param(
            b'{"v":1,"mailing_id":1,"message_ids":['
            + b",".join(str(i).encode() for i in range(MAX_JOB_MESSAGES + 1))
            + b"]}",
            id="too-many-messages",
        ),
        pytest.param(b'{"v":1,"message_ids":[5]}', id="missing-mailing"),
        pytest.param(b'{"v":1,"mailing_id":1}', id="missing-messages"),
        pytest.param(b'{"v":1,"mailing_id":"x","message_ids":[5]}', id="mailing-not-int"),
        pytest.param(b'{"v":1,"mailing_id":1,"message_ids":[1.5]}', id="fractional-id"),
        pytest.param(b"not json", id="garbage"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[1,2]", id="list"),
    ],
)
def test_delivery_job_rejects_bad_bodies(body: bytes) -> None:
    with pytest.raises(ValidationError):
        DeliveryJob.decode(body)


def test_contracts_are_frozen() -> None:
    job = DeliveryJob(mailing_id=1, message_ids=[1])
    with pytest.raises(ValidationError):
        job.mailing_id = 2  # type: ignore[misc]


def make_event(**changes: object) -> MailingEvent:
    fields: dict[str, object] = {
        "kind": "created",
        "mailing_id": 3,
        "starts_at": STARTS,
        "ends_at": ENDS,
        "occurred_at": OCCURRED,
    }
    fields.update(changes)
    return MailingEvent(**fields)  # type: ignore[arg-type]


def test_mailing_event_encodes_to_exact_json() -> None:
    assert make_event().encode() == (
        b'{"v":1,"kind":"created","mailing_id":3,"starts_at":"2024-06-03T09:00:00Z",'
        b'"ends_at":"2024-06-04T09:00:00Z","occurred_at":"2024-06-03T08:59:30Z"}'
    )


@pytest.mark.parametrize("kind", ["created", "updated", "deleted"])
def test_mailing_event_round_trips_every_kind(kind: str) -> None:
    event = make_event(kind=kind)
    assert MailingEvent.model_validate_json(event.encode()) == event


def test_mailing_event_keeps_the_instant_of_an_offset_datetime() -> None:
    body = (
        b'{"v":1,"kind":"updated","mailing_id":3,"starts_at":"2024-06-03T12:00:00+03:00",'
        b'"ends_at":"2024-06-03T20:00:00-05:00","occurred_at":"2024-06-03T08:00:00Z"}'
    )
    event = MailingEvent.model_validate_json(body)
    assert event.starts_at == STARTS
    assert event.starts_at.utcoffset() == timedelta(hours=3)
    assert event.ends_at == datetime(2024, 6, 4, 1, 0, tzinfo=UTC)
    assert event.ends_at.tzinfo == timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"kind": "archived"}, id="unknown-kind"),
        pytest.param({"starts_at": datetime(2024, 6, 3, 9, 0)}, id="naive-start"),
        pytest.param({"ends_at": datetime(2024, 6, 4, 9, 0)}, id="naive-end"),
        pytest.param({"v": 2}, id="unknown-version"),
        pytest.param({"mailing_id": None}, id="no-mailing"),
    ],
)
def test_mailing_event_rejects_bad_fields(changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        make_event(**changes)
