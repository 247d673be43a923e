"""Bodies from flags and files: times, windows, the flags over a file, YAML's surprises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from herald_cli.bodies import (
    client_body,
    client_changes,
    mailing_body,
    parse_mailing_file,
    parse_time,
    parse_window,
    read_mailing_file,
)

NOW = datetime(2026, 3, 1, 6, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("now", "2026-03-01T06:00:00+00:00"),
        ("NOW", "2026-03-01T06:00:00+00:00"),
        ("+30m", "2026-03-01T06:30:00+00:00"),
        ("+2h", "2026-03-01T08:00:00+00:00"),
        ("now+1d", "2026-03-02T06:00:00+00:00"),
        ("+ 90 s", "2026-03-01T06:01:30+00:00"),
        # Anything else is the API's to judge, and it names the field when it refuses.
        ("2026-03-01T09:00:00+03:00", "2026-03-01T09:00:00+03:00"),
        ("2026-03-01 09:00", "2026-03-01 09:00"),
    ],
)
def test_times_are_now_relative_or_as_given(given: str, expected: str) -> None:
    assert parse_time(given, NOW) == expected


def test_a_relative_time_keeps_the_offset_of_now() -> None:
    moscow = NOW.astimezone(timezone(timedelta(hours=3)))
    assert parse_time("+1h", moscow) == "2026-03-01T10:00:00+03:00"


@pytest.mark.parametrize("given", ["+", "+2w", "now-1h", "nowish", "+h"])
def test_a_malformed_relative_time_is_refused_with_the_forms_accepted(given: str) -> None:
    with pytest.raises(ValueError, match=r"use RFC 3339"):
        parse_time(given, NOW)


@pytest.mark.parametrize(
    ("given", "window"),
    [
        ("09:00-21:00", {"start": "09:00", "end": "21:00"}),
        ("22:00-06:00", {"start": "22:00", "end": "06:00"}),
        ("9:00 - 21:30", {"start": "09:00", "end": "21:30"}),
    ],
)
def test_a_window_is_two_local_times(given: str, window: dict[str, str]) -> None:
    assert parse_window(given) == window


@pytest.mark.parametrize("given", ["09:00", "9-21", "09:00-", "morning"])
def test_a_malformed_window_is_refused(given: str) -> None:
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        parse_window(given)


def test_a_client_body_leaves_out_what_was_not_given() -> None:
    assert client_body("79001234567", "UTC") == {"phone": "79001234567", "timezone": "UTC"}
    assert client_body("79001234567", "UTC", tag="", operator_code="900") == {
        "phone": "79001234567",
        "timezone": "UTC",
        "tag": "",
        "operator_code": "900",
    }


def test_client_changes_hold_only_the_fields_given_and_an_empty_tag_clears() -> None:
    assert client_changes(tag="") == {"tag": ""}
    assert client_changes(timezone="Asia/Tokyo", phone="79161234567") == {
        "phone": "79161234567",
        "timezone": "Asia/Tokyo",
    }
    with pytest.raises(ValueError, match="nothing to change"):
        client_changes()


def test_a_mailing_from_flags_starts_now_by_default() -> None:
    body = mailing_body(NOW, ends_at="+1h", text="Hello", tags=["vip"], window="09:00-21:00")

    assert body == {
        "starts_at": "2026-03-01T06:00:00+00:00",
        "ends_at": "2026-03-01T07:00:00+00:00",
        "text": "Hello",
        "filter": {"tags": ["vip"]},
        "send_window": {"start": "09:00", "end": "21:00"},
    }


def test_without_filter_flags_the_body_has_no_filter_and_the_api_means_everybody() -> None:
    assert "filter" not in mailing_body(NOW, ends_at="+1h", text="Hello")


def test_flags_override_the_files_fields_and_keep_the_rest() -> None:
    base = {
        "starts_at": "+10m",
        "ends_at": "2026-03-02T00:00:00Z",
        "text": "From the file",
        "filter": {"tags": ["a"], "operator_codes": ["900"]},
        "send_window": {"start": "09:00", "end": "21:00"},
    }

    body = mailing_body(NOW, base, text="From a flag", tags=["b", "c"], no_window=True)

    assert body == {
        "starts_at": "2026-03-01T06:10:00+00:00",
        "ends_at": "2026-03-02T00:00:00Z",
        "text": "From a flag",
        "filter": {"tags": ["b", "c"], "operator_codes": ["900"]},
    }
    assert base["text"] == "From the file", "the file's content is not changed"


def test_a_mailing_needs_an_end_and_a_text_from_a_flag_or_the_file() -> None:
    with pytest.raises(
        ValueError, match=r"missing --ends-at \(or `ends_at` in --file\) and --text"
    ):
        mailing_body(NOW)
    with pytest.raises(ValueError, match="missing --text"):
        mailing_body(NOW, {"ends_at": "+1h"})


def test_window_and_no_window_contradict() -> None:
    with pytest.raises(ValueError, match="contradict"):
        mailing_body(NOW, ends_at="+1h", text="x", window="09:00-21:00", no_window=True)


def test_a_files_window_may_be_written_as_a_range() -> None:
    body = mailing_body(NOW, {"ends_at": "+1h", "text": "x", "send_window": "22:00-06:00"})
    assert body["send_window"] == {"start": "22:00", "end": "06:00"}


def test_yaml_keeps_times_and_dates_as_text() -> None:
    content = parse_mailing_file(
        "starts_at: 2026-03-01T09:00:00+03:00\n"
        "ends_at: +2h\n"
        "text: Hello\n"
        "max: 12\n"
        "send_window: {start: 09:00, end: 21:00}\n"
        "filter:\n  operator_codes: ['900']\n  tags: [vip]\n",
        "mailing.yaml",
    )

    assert content == {
        "starts_at": "2026-03-01T09:00:00+03:00",
        "ends_at": "+2h",
        "text": "Hello",
        "max": 12,
        # YAML 1.1 reads an unquoted 21:00 as the base-60 number 1260.
        "send_window": {"start": "09:00", "end": "21:00"},
        "filter": {"operator_codes": ["900"], "tags": ["vip"]},
    }


def test_json_files_are_read_as_json() -> None:
    assert parse_mailing_file('{"text": "hi", "ends_at": "+1h"}', "m.JSON") == {
        "text": "hi",
        "ends_at": "+1h",
    }


@pytest.mark.parametrize(
    ("text", "name", "reason"),
    [
        ("{not json", "m.json", "m.json is not valid JSON"),
        ("text: [unclosed", "m.yaml", "m.yaml is not valid YAML"),
        ("- a list\n- of things\n", "m.yml", "must hold one object"),
        ("", "m.yaml", "must hold one object"),
    ],
)
def test_a_file_that_is_not_one_object_is_refused(text: str, name: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_mailing_file(text, name)


def test_a_missing_file_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        read_mailing_file(tmp_path / "nope.yaml")
