"""The API's error bodies in words, and the exit code of each answer."""

from __future__ import annotations

import pytest

from herald_cli.errors import ApiError, ExitCode, describe_error, exit_code_for_status, field_name


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, ExitCode.REFUSED),
        (401, ExitCode.REFUSED),
        (404, ExitCode.NOT_FOUND),
        (409, ExitCode.REFUSED),
        (413, ExitCode.REFUSED),
        (422, ExitCode.REFUSED),
        (500, ExitCode.UNAVAILABLE),
        (502, ExitCode.UNAVAILABLE),
        (503, ExitCode.UNAVAILABLE),
    ],
)
def test_each_status_has_its_exit_code(status: int, code: ExitCode) -> None:
    assert exit_code_for_status(status) == code
    assert ApiError(status, {"detail": "x", "code": "y"}).exit_code == code


@pytest.mark.parametrize(
    ("loc", "name"),
    [
        (["body", "phone"], "phone"),
        (["body", "filter", "tags", 0], "filter.tags[0]"),
        (["body", "send_window"], "send_window"),
        (["body"], "the body"),
        (["query", "limit"], "limit (query parameter)"),
        (["path", "mailing_id"], "mailing_id (path parameter)"),
        (["header", "Idempotency-Key"], "Idempotency-Key (header)"),
        ([], "the body"),
    ],
)
def test_a_location_reads_as_the_field_a_person_knows(loc: list[object], name: str) -> None:
    assert field_name(loc) == name


def test_a_validation_error_names_each_field_and_its_reason() -> None:
    body = {
        "detail": [
            {
                "loc": ["body", "phone"],
                "msg": "String should match pattern '^7[0-9]{10}$'",
                "type": "string_pattern_mismatch",
            },
            {
                "loc": ["body", "ends_at"],
                "msg": "Value error, ends_at must be later than starts_at",
                "type": "value_error",
            },
        ]
    }

    assert describe_error(422, body) == [
        "the API refused the request (422):",
        "  phone: String should match pattern '^7[0-9]{10}$'",
        "  ends_at: Value error, ends_at must be later than starts_at",
    ]


def test_a_business_error_gives_its_code_and_reason() -> None:
    body = {"detail": "a client with phone 79001234567 already exists", "code": "duplicate_phone"}

    assert describe_error(409, body) == [
        "the API refused the request (409 duplicate_phone): "
        "a client with phone 79001234567 already exists"
    ]


def test_not_found_and_server_failures_say_so() -> None:
    assert describe_error(404, {"detail": "mailing 7 not found", "code": "not_found"}) == [
        "not found (404 not_found): mailing 7 not found"
    ]
    assert describe_error(503, {"detail": "retry shortly", "code": "unavailable"}) == [
        "the API failed (503 unavailable): retry shortly"
    ]


def test_an_unauthorized_answer_says_where_the_token_comes_from() -> None:
    lines = describe_error(401, {"detail": "missing or invalid bearer token", "code": "x"})

    assert "HERALD_API_TOKEN" in lines[-1]
    assert ".herald/api-token" in lines[-1]


def test_a_refused_import_lists_its_errors_by_line_and_field_and_how_many_more() -> None:
    body = {
        "detail": "150 errors in the file; nothing was imported",
        "code": "invalid_rows",
        "error_count": 150,
        "errors": [
            {"line": 3, "field": "phone", "reason": "String should match pattern"},
            {"line": 9, "field": None, "reason": "not a JSON object"},
        ],
    }

    assert describe_error(422, body) == [
        "the API refused the request (422 invalid_rows): "
        "150 errors in the file; nothing was imported",
        "  line 3, phone: String should match pattern",
        "  line 9: not a JSON object",
        "  … and 148 more (the API reports the first 2)",
    ]


def test_a_rejected_import_lists_the_existing_phones() -> None:
    body = {
        "detail": "3 phones already belong to clients",
        "code": "phones_exist",
        "existing_count": 30,
        "phones": ["79000000001", "79000000002"],
    }

    lines = describe_error(409, body)

    assert lines[1:] == ["  79000000001", "  79000000002", "  … 30 in all"]


def test_a_body_that_is_not_the_apis_is_shown_by_its_first_line() -> None:
    assert describe_error(502, "<html>\n<h1>Bad gateway</h1>") == [
        "the API answered HTTP 502, not one of its JSON errors: <html>"
    ]
    assert describe_error(500, "") == [
        "the API answered HTTP 500, not one of its JSON errors: (no readable body)"
    ]
