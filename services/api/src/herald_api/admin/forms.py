"""HTML forms to the API's own request models, and their errors back to form fields: pure
functions, and the one reader of a submitted form's text fields."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import Request
from pydantic import BaseModel, ValidationError

from herald_api.validation import known_timezones

FieldErrors = dict[str, str]
M = TypeVar("M", bound=BaseModel)
_SPLIT = re.compile(r"[,\s]+")

# Where a request model's error lands in the form: the first element of its ``loc``.
_FIELD_OF_LOC = {
    "filter": "filter",
    "send_window": "window",
}
_FILTER_FIELDS = {"operator_codes", "tags"}


async def read_form(request: Request) -> dict[str, str]:
    """A submitted form's text fields (files are read where they are expected)."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def split_codes(raw: str) -> list[str]:
    return [part for part in _SPLIT.split(raw.strip()) if part]


def split_tags(raw: str) -> list[str]:
    # Tags may hold spaces: only commas separate them.
    return [part.strip() for part in raw.split(",") if part.strip()]


def field_errors(error: ValidationError) -> FieldErrors:
    """The first error of each form field, in words a person can act on."""
    found: FieldErrors = {}
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        if not loc:
            name = "form"
        elif loc[0] == "filter" and len(loc) > 1 and loc[1] in _FILTER_FIELDS:
            name = loc[1]
        else:
            name = _FIELD_OF_LOC.get(loc[0], loc[0])
        message = str(item["msg"]).removeprefix("Value error, ")
        found.setdefault(name, message)
    return found


def _local_datetime(raw: str, zone: ZoneInfo) -> datetime:
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value


def mailing_payload(
    form: Mapping[str, str], *, partial: bool = False
) -> tuple[dict[str, Any], FieldErrors]:
    """The JSON body of POST (or, ``partial``, PATCH) /mailings that the form describes.

    The times of ``datetime-local`` inputs are read in the form's ``tz`` zone."""
    errors: FieldErrors = {}
    payload: dict[str, Any] = {}
    tz_name = form.get("tz", "").strip() or "UTC"
    zone = ZoneInfo("UTC")
    if tz_name not in known_timezones():
        errors["tz"] = f"unknown IANA time zone {tz_name!r} (e.g. 'Europe/Moscow', 'UTC')"
    else:
        zone = ZoneInfo(tz_name)
    for name in ("starts_at", "ends_at"):
        raw = form.get(name, "").strip()
        if not raw:
            if not partial:
                errors[name] = "required"
            continue
        try:
            payload[name] = _local_datetime(raw, zone)
        except ValueError:
            errors[name] = "a date and time such as 2026-12-24 09:00"
    text = form.get("text")
    if text is not None:
        payload["text"] = text.replace("\r\n", "\n")
    if "operator_codes" in form or "tags" in form:
        payload["filter"] = {
            "operator_codes": split_codes(form.get("operator_codes", "")),
            "tags": split_tags(form.get("tags", "")),
        }
    start, end = form.get("window_start", "").strip(), form.get("window_end", "").strip()
    if start or end:
        if not (start and end):
            errors["window"] = "give both the start and the end of the window, or neither"
        else:
            payload["send_window"] = {"start": start[:5], "end": end[:5]}
    elif "window_start" in form:
        payload["send_window"] = None
    return payload, errors


def validate(
    model: type[M], payload: dict[str, Any], errors: FieldErrors
) -> tuple[M | None, FieldErrors]:
    """The request model, or every error: the form's own and the model's."""
    try:
        parsed = model.model_validate(payload)
    except ValidationError as error:
        return None, {**field_errors(error), **errors}
    return (parsed, errors) if not errors else (None, errors)


def client_payload(form: Mapping[str, str]) -> dict[str, Any]:
    """The body of POST/PATCH /clients; an empty operator code means the default."""
    payload: dict[str, Any] = {
        "phone": form.get("phone", "").strip(),
        "tag": form.get("tag", "").strip(),
        "timezone": form.get("timezone", "").strip(),
    }
    code = form.get("operator_code", "").strip()
    if code:
        payload["operator_code"] = code
    return payload
