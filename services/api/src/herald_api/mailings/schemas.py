"""Request and response bodies of /mailings."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from herald_api.pagination import Page
from herald_api.validation import (
    MAX_FILTER_ITEMS,
    MAX_TEXT_LENGTH,
    Omittable,
    OperatorCode,
    Tag,
    UtcDatetime,
    check_storable,
)
from herald_common.statuses import ALL_STATUSES, MailingState

HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"

EXAMPLE: dict[str, Any] = {
    "starts_at": "2026-11-22T10:00:00+03:00",
    "ends_at": "2026-11-22T20:00:00+03:00",
    "text": "Black Friday: -30% on everything today",
    "filter": {"operator_codes": ["900", "901"], "tags": ["vip"]},
    "send_window": {"start": "09:00", "end": "21:00"},
}


class MailingFilter(BaseModel):
    """A client matches when (operator_codes is empty or holds its code) and (tags is empty or
    holds its tag). The empty filter selects every client."""

    model_config = ConfigDict(extra="forbid")

    operator_codes: Annotated[list[OperatorCode], Field(max_length=MAX_FILTER_ITEMS)] = []
    tags: Annotated[list[Tag], Field(max_length=MAX_FILTER_ITEMS)] = []

    @field_validator("operator_codes", "tags")
    @classmethod
    def _dedupe(cls, values: list[str]) -> list[str]:
        return sorted(set(values))


class SendWindow(BaseModel):
    """Local time of day, in each client's own time zone, during which sending is allowed.
    `start` > `end` wraps past midnight (22:00–06:00). The end is exclusive."""

    model_config = ConfigDict(extra="forbid")

    start: Annotated[str, Field(pattern=HHMM, examples=["09:00"])]
    end: Annotated[str, Field(pattern=HHMM, examples=["21:00"])]

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self

    def times(self) -> tuple[time, time]:
        return time.fromisoformat(self.start), time.fromisoformat(self.end)

    @classmethod
    def from_times(cls, start: time | None, end: time | None) -> SendWindow | None:
        if start is None or end is None:
            return None
        return cls(start=start.strftime("%H:%M"), end=end.strftime("%H:%M"))


Text = Annotated[
    str, Field(min_length=1, max_length=MAX_TEXT_LENGTH), AfterValidator(check_storable)
]


class MailingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

    starts_at: UtcDatetime = Field(
        description="RFC 3339: ISO-8601 with seconds and a UTC offset, 2026-11-22T10:00:00+03:00."
    )
    ends_at: UtcDatetime = Field(description="Must be after starts_at; nothing is sent from then.")
    text: Text
    filter: MailingFilter = MailingFilter()
    send_window: SendWindow | None = None

    # A field validator, not a model one, so the 422 names `ends_at` in its `loc`.
    @field_validator("ends_at")
    @classmethod
    def _ends_after_start(cls, ends_at: datetime, info: ValidationInfo) -> datetime:
        starts_at = info.data.get("starts_at")
        if starts_at is not None and ends_at <= starts_at:
            raise ValueError("ends_at must be later than starts_at")
        return ends_at


class MailingUpdate(BaseModel):
    """Only the fields given change. Once a mailing has started, `starts_at` and `filter` are
    fixed (409); text, end and window apply to messages not yet sent. `send_window: null`
    removes the window."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "Updated text"}]}
    )

    starts_at: Omittable[UtcDatetime] = None
    ends_at: Omittable[UtcDatetime] = None
    text: Omittable[Text] = None
    filter: Omittable[MailingFilter] = None
    send_window: SendWindow | None = Field(
        default=None, description="null removes the window: sending at any time of day."
    )


class MailingRead(BaseModel):
    id: int
    starts_at: datetime
    ends_at: datetime
    text: str
    filter: MailingFilter
    send_window: SendWindow | None
    state: MailingState
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = Field(
        description="When the scheduler began the fan-out: null until then, also in the answer "
        "to a create whose start has come (its state is already running; the fan-out follows "
        "within about a second)."
    )
    finished_at: datetime | None
    paused_at: datetime | None = Field(default=None, description="Set while paused.")


class MailingPage(Page[MailingRead]):
    """A page of mailings, by id."""


class RetryFailedResult(BaseModel):
    requeued: int = Field(description="Failed messages given a new round of attempts.")


StatusCounts = Annotated[
    dict[str, int],
    Field(
        description="Messages per status; every status is present.",
        examples=[{s.value: 0 for s in ALL_STATUSES}],
    ),
]


class MailingStats(BaseModel):
    id: int
    state: MailingState
    starts_at: datetime
    ends_at: datetime
    total: int
    by_status: StatusCounts


class ProgressRead(BaseModel):
    done: int = Field(
        description="Messages in a terminal status (sent, failed, expired, cancelled)."
    )
    total: int = Field(description="Messages created so far (grows while the fan-out runs).")
    percent: float
    rate_per_s: float | None = Field(
        description="Messages settled per second over about the last minute."
    )
    estimated_finish_at: datetime | None = Field(
        description="When the rest should be settled at the current rate (running mailings); "
        "null while some are deferred (waiting for their send window, or postponed): their time "
        "does not follow the rate."
    )


class MailingDetailStats(MailingStats):
    progress: ProgressRead


class StatsTotals(BaseModel):
    mailings: int
    total: int
    by_status: StatusCounts


class AllMailingStats(BaseModel):
    mailings: list[MailingStats]
    totals: StatsTotals


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    mailing_id: int
    client_id: int
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime = Field(description="When the fan-out created it.")
    updated_at: datetime
    sent_at: datetime | None = Field(
        description="When the provider's acceptance came back. The call went out before the "
        "mailing's ends_at; its answer may arrive a little after it."
    )
    next_attempt_at: datetime | None


class MessagePage(Page[MessageRead]):
    """A page of one mailing's messages, by id."""
