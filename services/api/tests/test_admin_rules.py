"""The admin UI's pure parts: who may log in, where a login may lead, forms to request
bodies, and the charts' numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from herald_api.admin.access import AccessPolicy, judge, safe_next
from herald_api.admin.charts import column_chart, settled_per_bucket
from herald_api.admin.forms import (
    client_payload,
    mailing_payload,
    split_codes,
    split_tags,
    validate,
)
from herald_api.clients.schemas import ClientCreate
from herald_api.mailings.schemas import MailingCreate, MailingUpdate

POLICY = AccessPolicy.parse(
    "Alice@Example.com, bob@example.org", "@corp.example", "herald-admins", "groups"
)


@pytest.mark.parametrize(
    ("claims", "allowed"),
    [
        ({"email": "alice@example.com", "email_verified": True}, True),
        ({"email": "ALICE@example.com", "email_verified": "true"}, True),
        ({"email": "alice@example.com"}, False),  # no claim: not verified
        ({"email": "alice@example.com", "email_verified": False}, False),
        ({"email": "alice@example.com", "email_verified": "false"}, False),
        ({"email": "alice@example.com", "email_verified": "yes"}, False),
        ({"email": "carol@corp.example", "email_verified": True}, True),
        ({"email": "carol@sub.corp.example", "email_verified": True}, False),
        ({"email": "carol@corp.example.evil", "email_verified": True}, False),
        ({"email": "mallory@example.com", "email_verified": True}, False),
        ({"email": "mallory@example.com", "groups": ["staff", "Herald-Admins"]}, True),
        ({"email": "mallory@example.com", "groups": "herald-admins"}, True),
        ({"email": "mallory@example.com", "groups": ["staff"]}, False),
        ({"groups": ["herald-admins"]}, True),
        (
            {"email": "alice@example.com", "email_verified": False, "groups": ["herald-admins"]},
            True,
        ),
        ({}, False),
        ({"email": 42}, False),
    ],
)
def test_judge_allows_listed_emails_domains_and_groups(
    claims: dict[str, Any], allowed: bool
) -> None:
    verdict = judge(POLICY, claims)
    assert verdict.allowed is allowed, verdict
    assert verdict.reason


def test_judge_names_an_unverified_email() -> None:
    verdict = judge(POLICY, {"email": "alice@example.com", "email_verified": False})
    assert "not verified" in verdict.reason


def test_judge_reads_the_configured_groups_claim() -> None:
    policy = AccessPolicy.parse("", "", "ops", "roles")
    assert judge(policy, {"roles": ["ops"]}).allowed
    assert not judge(policy, {"groups": ["ops"]}).allowed


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/admin/clients?tag=vip", "/admin/clients?tag=vip"),
        ("/admin/", "/admin/"),
        (None, "/admin/"),
        ("", "/admin/"),
        ("https://evil.example/admin", "/admin/"),
        ("//evil.example/admin", "/admin/"),
        ("/\\evil.example", "/admin/"),
        ("/admin\\@evil.example", "/admin/"),
        ("/api/v1/clients", "/admin/"),
        ("/admin/\r\nSet-Cookie: x=1", "/admin/"),
    ],
)
def test_safe_next_stays_inside_the_admin(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_codes_split_on_commas_and_spaces_tags_on_commas_only() -> None:
    assert split_codes(" 900, 916  901,,") == ["900", "916", "901"]
    assert split_tags("vip, new york ,, b2b") == ["vip", "new york", "b2b"]


def test_mailing_form_reads_local_times_in_its_zone() -> None:
    payload, errors = mailing_payload(
        {
            "tz": "Europe/Moscow",
            "starts_at": "2026-12-24T09:00",
            "ends_at": "2026-12-24T21:30",
            "text": "Hello\r\nthere",
            "operator_codes": "900 916",
            "tags": "vip",
            "window_start": "09:00",
            "window_end": "21:00",
        }
    )
    assert errors == {}
    data, errors = validate(MailingCreate, payload, errors)
    assert errors == {}
    assert data is not None
    assert data.starts_at == datetime(2026, 12, 24, 6, 0, tzinfo=UTC)
    assert data.ends_at == datetime(2026, 12, 24, 18, 30, tzinfo=UTC)
    assert data.text == "Hello\nthere"
    assert data.filter.operator_codes == ["900", "916"]
    assert data.send_window is not None
    assert (data.send_window.start, data.send_window.end) == ("09:00", "21:00")


def test_mailing_form_across_a_dst_change_uses_the_offset_of_that_day() -> None:
    payload, _ = mailing_payload(
        {
            "tz": "Europe/Berlin",
            "starts_at": "2026-03-28T12:00",
            "ends_at": "2026-03-30T12:00",
            "text": "t",
        }
    )
    data, errors = validate(MailingCreate, payload, {})
    assert errors == {}
    assert data is not None
    assert data.starts_at.hour == 11  # CET, UTC+1
    assert data.ends_at.hour == 10  # CEST, UTC+2


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({"tz": "Mars/Base"}, "tz", "unknown IANA time zone"),
        ({"starts_at": ""}, "starts_at", "required"),
        ({"starts_at": "tomorrow"}, "starts_at", "a date and time"),
        ({"ends_at": "2026-12-24T08:00"}, "ends_at", "later than starts_at"),
        ({"text": ""}, "text", "at least 1 character"),
        ({"text": "x" * 4097}, "text", "at most 4096"),
        ({"operator_codes": "9000"}, "operator_codes", "pattern"),
        ({"tags": "a" * 65}, "tags", "at most 64"),
        ({"window_start": "09:00"}, "window", "both the start and the end"),
        ({"window_start": "09:00", "window_end": "09:00"}, "window", "must differ"),
    ],
)
def test_mailing_form_errors_name_the_form_field(
    form: dict[str, str], field: str, words: str
) -> None:
    base = {
        "tz": "UTC",
        "starts_at": "2026-12-24T09:00",
        "ends_at": "2026-12-24T21:00",
        "text": "hello",
    }
    payload, errors = mailing_payload({**base, **form})
    data, errors = validate(MailingCreate, payload, errors)
    assert data is None
    assert field in errors, errors
    assert words in errors[field], errors


def test_partial_mailing_form_changes_only_what_it_holds() -> None:
    payload, errors = mailing_payload(
        {"tz": "UTC", "text": "new", "ends_at": "2026-12-25T00:00"}, partial=True
    )
    data, errors = validate(MailingUpdate, payload, errors)
    assert errors == {}
    assert data is not None
    assert data.model_fields_set == {"text", "ends_at"}


def test_an_emptied_window_removes_it() -> None:
    payload, _ = mailing_payload({"window_start": "", "window_end": "", "text": "t"}, partial=True)
    assert payload["send_window"] is None


def test_client_form_empty_operator_code_means_the_default() -> None:
    data, errors = validate(
        ClientCreate,
        client_payload(
            {"phone": " 79001234567 ", "tag": "vip", "timezone": "UTC", "operator_code": ""}
        ),
        {},
    )
    assert errors == {}
    assert data is not None
    assert data.operator_code is None
    assert data.phone == "79001234567"


def test_column_chart_scales_to_the_largest_value() -> None:
    bars = column_chart([("a", 0), ("b", 5), ("c", 10)], width=300, height=100, gap=0)
    assert [b.height for b in bars] == [0, 50, 100]
    assert [b.x for b in bars] == [0, 100, 200]
    assert all(b.y + b.height == 100 for b in bars)
    assert column_chart([]) == []
    assert [b.height for b in column_chart([("a", 0), ("b", 0)])] == [0, 0]


def test_settled_per_bucket_counts_growth_between_a_mailings_samples() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    minute = timedelta(minutes=1)
    samples = [
        (1, now - 15 * minute - timedelta(seconds=20), 0),  # before the span: a baseline only
        (1, now - 13 * minute - timedelta(seconds=30), 100),
        (1, now - 13 * minute - timedelta(seconds=10), 250),
        (2, now - 2 * minute - timedelta(seconds=30), 1000),  # first sample of mailing 2
        (2, now - timedelta(seconds=30), 1600),
        (2, now - timedelta(seconds=20), 1500),  # never negative
    ]
    buckets = settled_per_bucket(samples, now, span=15 * minute, bucket=minute)
    assert len(buckets) == 15
    assert buckets[0][0] == now - 15 * minute
    counts = [count for _, count in buckets]
    assert counts[0] == 0
    assert counts[1] == 250  # growth from the baseline outside the span lands inside it
    assert counts[14] == 600
    assert sum(counts) == 850
