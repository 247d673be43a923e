"""Field types shared by the API's schemas, each failing with a reason a person can act on."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, TypeVar
from zoneinfo import available_timezones

from fastapi import Path
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    PlainSerializer,
    ValidationInfo,
)

PHONE_PATTERN = r"^7[0-9]{10}$"
OPERATOR_CODE_PATTERN = r"^[0-9]{3}$"
MAX_TAG_LENGTH = 64
MAX_TEXT_LENGTH = 4096
MAX_FILTER_ITEMS = 100

# RFC 3339's date-time, the ISO-8601 profile that `format: date-time` in the OpenAPI document
# names: seconds required, an offset required. Pydantic's lax datetime would also take 0,
# "0" or "1700000000" as Unix seconds, a silent 1970 for a client that sent junk.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


@lru_cache(maxsize=1)
def known_timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def _check_timezone(value: str) -> str:
    if value not in known_timezones():
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. 'Europe/Moscow', 'UTC')")
    return value


def check_storable(value: str) -> str:
    """PostgreSQL text cannot hold a NUL character: refuse it here, with the reason, not at
    the INSERT. (Unpaired surrogates, the other thing it cannot hold, never get this far:
    pydantic refuses them as it reads the string.)"""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (\\u0000)")
    return value


def _rfc3339_text(value: object) -> object:
    # datetime objects pass: they come from the admin forms, never from a JSON body.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        raise ValueError(
            "must be an RFC 3339 / ISO-8601 date-time string with seconds and a UTC offset, "
            "e.g. '2026-11-22T10:00:00+03:00' or '2026-11-22T07:00:00Z'"
        )
    return value


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:30:00+01:00 is year 0 in UTC, which no datetime can hold.
        raise ValueError("is out of range: in UTC it falls outside the years 1 to 9999") from None


Phone = Annotated[
    str,
    Field(
        pattern=PHONE_PATTERN,
        description="11 digits starting with 7: 7XXXXXXXXXX.",
        examples=["79001234567"],
    ),
]
OperatorCode = Annotated[
    str, Field(pattern=OPERATOR_CODE_PATTERN, description="3 digits.", examples=["900"])
]
Tag = Annotated[
    str, Field(max_length=MAX_TAG_LENGTH, examples=["vip"]), AfterValidator(check_storable)
]
TimeZone = Annotated[
    str,
    Field(max_length=64, description="IANA time zone name.", examples=["Europe/Moscow"]),
    AfterValidator(_check_timezone),
]
UtcDatetime = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_text),
    AfterValidator(_to_utc),
    PlainSerializer(lambda v: v.astimezone(UTC).isoformat(), return_type=str),
]

MAX_ID = 2**63 - 1
EntityId = Annotated[int, Path(ge=1, le=MAX_ID, description="The entity's id.")]


def _refuse_null(value: object, info: ValidationInfo) -> object:
    if value is None:
        raise ValueError(f"{info.field_name} cannot be null; leave it out to keep it")
    return value


def _not_nullable(schema: dict[str, Any]) -> None:
    # The field's schema is anyOf [<the type's>, null] with a default of null: keep the type's.
    schema.pop("default", None)
    choices = [choice for choice in schema.pop("anyOf", []) if choice.get("type") != "null"]
    if len(choices) == 1:
        schema.update(choices[0])
    elif choices:
        schema["anyOf"] = choices


T = TypeVar("T")
# A field of a PATCH body that may be left out (None: not given) but never sent as null. The
# document says so too: its schema is the type's alone, neither nullable nor defaulting to
# null, and a null gets a 422 naming the field. (A field where null means something, such as
# a mailing's send_window, is a plain `X | None` instead.) Not `X | SkipJsonSchema[None]`:
# that makes a union, whose errors name the branch too (["body", "phone", "constrained-str"]).
Omittable = Annotated[
    T | None,
    BeforeValidator(_refuse_null),
    Field(json_schema_extra=_not_nullable),
]
