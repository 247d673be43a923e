"""Versioned messages exchanged between services over RabbitMQ: the only place they are defined.

A new field that old consumers may ignore keeps the version, a change of meaning gets a new
one. The sender reads every ``DeliveryJob`` version it knows and dead-letters a job it cannot
read; the scheduler never reads a ``MailingEvent``'s body: any event only wakes it up to look
at the database, which is the truth.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MAX_JOB_MESSAGES = 1000


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


class DeliveryJob(Contract):
    """Deliver these messages of one mailing: fan-out jobs carry many, retries usually one."""

    v: Literal[1] = 1
    mailing_id: int
    message_ids: Annotated[list[int], Field(min_length=1, max_length=MAX_JOB_MESSAGES)]

    @classmethod
    def decode(cls, body: bytes) -> DeliveryJob:
        return cls.model_validate_json(body)


MailingEventKind = Literal["created", "updated", "deleted"]


class MailingEvent(Contract):
    """A mailing changed; the scheduler treats it as a hint to look at the database now."""

    v: Literal[1] = 1
    kind: MailingEventKind
    mailing_id: int
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    occurred_at: AwareDatetime
