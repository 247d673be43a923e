"""Request bodies built from flags and files: pure functions, ``now`` given, no I/O but reading.

The API stays the judge of the values (a phone's pattern, a time zone, ``ends_at`` after
``starts_at``): these functions only shape the body, fill in what a flag means (``now``,
``+2h``, ``09:00-21:00``) and refuse what cannot be sent at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

_RELATIVE = re.compile(r"(?:now)?\s*\+\s*([0-9]+)\s*([smhd])", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_WINDOW = re.compile(r"\s*([0-9]{1,2}:[0-9]{2})\s*-\s*([0-9]{1,2}:[0-9]{2})\s*")
TIME_HELP = "RFC 3339 (2026-03-01T09:00:00+03:00), now, or +30m, +2h, +1d from now"


def parse_time(value: str, now: datetime) -> str:
    """``now`` and ``+<n><s|m|h|d>`` (from ``now``) as RFC 3339; anything else as given, for
    the API to accept or refuse by name."""
    text = value.strip()
    if text.lower() == "now":
        return now.isoformat(timespec="seconds")
    relative = _RELATIVE.fullmatch(text)
    if relative is not None:
        delta = timedelta(**{_UNITS[relative.group(2).lower()]: int(relative.group(1))})
        return (now + delta).isoformat(timespec="seconds")
    if text.lower().startswith(("now", "+")):
        raise ValueError(f"{value!r} is not a time: use {TIME_HELP}")
    return text


def parse_window(value: str) -> dict[str, str]:
    """``09:00-21:00`` (``22:00-06:00`` wraps past midnight) as the API's ``send_window``."""
    match = _WINDOW.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not a window: use HH:MM-HH:MM, e.g. 09:00-21:00")
    start, end = (part.zfill(5) for part in match.groups())
    return {"start": start, "end": end}


def client_body(
    phone: str, timezone: str, tag: str | None = None, operator_code: str | None = None
) -> dict[str, str]:
    body = {"phone": phone, "timezone": timezone}
    if tag is not None:
        body["tag"] = tag
    if operator_code is not None:
        body["operator_code"] = operator_code
    return body


def client_changes(
    phone: str | None = None,
    timezone: str | None = None,
    tag: str | None = None,
    operator_code: str | None = None,
) -> dict[str, str]:
    """Only the fields given: the API changes those and keeps the rest."""
    given = {"phone": phone, "timezone": timezone, "tag": tag, "operator_code": operator_code}
    changes = {name: value for name, value in given.items() if value is not None}
    if not changes:
        raise ValueError(
            "nothing to change: give at least one of --phone, --timezone, --tag, --operator-code"
        )
    return changes


def mailing_body(
    now: datetime,
    base: Mapping[str, Any] | None = None,
    *,
    starts_at: str | None = None,
    ends_at: str | None = None,
    text: str | None = None,
    tags: Sequence[str] = (),
    operator_codes: Sequence[str] = (),
    window: str | None = None,
    no_window: bool = False,
) -> dict[str, Any]:
    """A ``POST /mailings`` body: ``base`` (a file's content) with the flags given over it.

    ``starts_at`` defaults to now; ``ends_at`` and ``text`` must come from one or the other.
    Times in either may be ``now`` or ``+2h``. ``--tag``/``--operator-code`` replace that list
    of the file's filter, and leave the other one as it is.
    """
    body: dict[str, Any] = dict(base or {})
    for name, flag in (("starts_at", starts_at), ("ends_at", ends_at), ("text", text)):
        if flag is not None:
            body[name] = flag
    if window is not None and no_window:
        raise ValueError("--window and --no-window contradict each other")
    if window is not None:
        body["send_window"] = parse_window(window)
    elif no_window:
        body.pop("send_window", None)
    elif isinstance(body.get("send_window"), str):
        body["send_window"] = parse_window(body["send_window"])
    if tags or operator_codes:
        given_filter = body.get("filter")
        merged = dict(given_filter) if isinstance(given_filter, Mapping) else {}
        if tags:
            merged["tags"] = list(tags)
        if operator_codes:
            merged["operator_codes"] = list(operator_codes)
        body["filter"] = merged
    body.setdefault("starts_at", "now")
    missing = [
        f"--{name.replace('_', '-')} (or `{name}` in --file)"
        for name in ("ends_at", "text")
        if name not in body
    ]
    if missing:
        raise ValueError("missing " + " and ".join(missing))
    for name in ("starts_at", "ends_at"):
        if isinstance(body[name], str):
            body[name] = parse_time(body[name], now)
    return body


class _Loader(yaml.SafeLoader):
    """YAML 1.1 without its surprises for a mailing: dates stay text (the API reads RFC 3339
    with an offset itself) and ``21:00`` stays ``"21:00"`` instead of the base-60 1260."""


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:int")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)


def parse_mailing_file(text: str, name: str) -> dict[str, Any]:
    """A mailing as JSON (``.json``) or YAML (anything else; YAML also reads JSON)."""
    try:
        if name.lower().endswith(".json"):
            content = json.loads(text)
        else:
            content = yaml.load(text, Loader=_Loader)
    except (ValueError, yaml.YAMLError) as error:
        raise ValueError(f"{name} is not valid {_kind(name)}: {_one_line(error)}") from None
    if not isinstance(content, dict):
        raise ValueError(f"{name} must hold one object (starts_at, ends_at, text, filter, …)")
    return content


def _kind(name: str) -> str:
    return "JSON" if name.lower().endswith(".json") else "YAML"


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def read_mailing_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    return parse_mailing_file(text, path.name)
