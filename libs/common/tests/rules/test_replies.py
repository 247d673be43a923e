"""Provider replies: only a 200 carrying code 0 is sent; the rest is transient or permanent."""

from __future__ import annotations

import pytest

from herald_common.rules.replies import (
    BODY_EXCERPT,
    PERMANENT_STATUSES,
    ReplyJudgement,
    Verdict,
    cap_retry_after,
    excerpt,
    judge_reply,
    parse_retry_after,
)

OK_BODY = b'{"code": 0, "message": "OK"}'


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(OK_BODY, id="documented-success"),
        pytest.param(b'{"code":0}', id="code-without-message"),
        pytest.param(b'{"code": "0", "message": "OK"}', id="code-as-string-zero"),
        pytest.param(b'{"message": "OK", "code": 0, "extra": [1, 2]}', id="extra-fields"),
        pytest.param(b'  \n{"code": 0}\r\n ', id="surrounding-whitespace"),
        pytest.param(b'\xef\xbb\xbf{"code": 0}', id="utf8-bom"),
        pytest.param('{"code": 0, "message": "Отправлено"}'.encode(), id="non-ascii-message"),
    ],
)
def test_200_with_code_zero_is_sent(body: bytes) -> None:
    assert judge_reply(200, body) == ReplyJudgement(Verdict.SENT, "OK")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"code": false}', id="code-false"),
        pytest.param(b'{"code": true}', id="code-true"),
        pytest.param(b'{"code": 0.0}', id="code-float-zero"),
        pytest.param(b'{"code": -0.0}', id="code-negative-float-zero"),
        pytest.param(b'{"code": "00"}', id="code-string-double-zero"),
        pytest.param(b'{"code": " 0"}', id="code-string-padded"),
        pytest.param(b'{"code": ""}', id="code-empty-string"),
        pytest.param(b'{"code": null}', id="code-null"),
        pytest.param(b'{"code": [0]}', id="code-list"),
        pytest.param(b'{"code": {"value": 0}}', id="code-object"),
        pytest.param(b'{"code": 1, "message": "error"}', id="code-one"),
        pytest.param(b'{"code": -1}', id="code-negative"),
        pytest.param(b'{"message": "OK"}', id="code-missing"),
        pytest.param(b'{"Code": 0}', id="code-wrong-case"),
        pytest.param(b"{}", id="empty-object"),
        pytest.param(b'[{"code": 0}]', id="json-list"),
        pytest.param(b"[]", id="empty-list"),
        pytest.param(b"0", id="bare-zero"),
        pytest.param(b'"0"', id="bare-string-zero"),
        pytest.param(b"null", id="json-null"),
        pytest.param(b"true", id="json-true"),
    ],
)
def test_200_with_wrong_shape_is_transient_not_sent(body: bytes) -> None:
    judgement = judge_reply(200, body)
    assert judgement.verdict == Verdict.TRANSIENT
    assert judgement.reason.startswith("HTTP 200 without success code: ")
    assert judgement.retry_after_s is None


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty-body"),
        pytest.param(b"   ", id="whitespace-only"),
        pytest.param(b"OK", id="plain-text"),
        pytest.param(b"<html><body>502 Bad Gateway</body></html>", id="html"),
        pytest.param(b'{"code": 0', id="truncated-object"),
        pytest.param(b'{"code": 0, "mess', id="truncated-mid-key"),
        pytest.param(b'{"code": 0,}', id="trailing-comma"),
        pytest.param(b"{'code': 0}", id="single-quotes"),
        pytest.param(b'{"code": 0}{"code": 0}', id="two-objects"),
        pytest.param(b"\xff\xfe\xfa", id="invalid-utf8"),
        pytest.param(b"\x00\x01\x02", id="binary"),
        pytest.param(b"[" * 100_000, id="deeply-nested-garbage"),
        pytest.param(b'{"code": ' + b"9" * 5000 + b"}", id="integer-too-long"),
    ],
)
def test_200_with_unparseable_body_is_transient_not_sent(body: bytes) -> None:
    judgement = judge_reply(200, body)
    assert judgement.verdict == Verdict.TRANSIENT
    assert judgement.reason.startswith("HTTP 200 with unparseable body: ")
    assert judgement.retry_after_s is None
    assert judgement.uncertain  # the provider may have taken it: we cannot read its answer


@pytest.mark.parametrize(
    ("body", "uncertain"),
    [
        pytest.param(b'{"code": 1, "message": "error"}', False, id="own-error-code"),
        pytest.param(b'{"code": null}', False, id="code-null"),
        pytest.param(b'{"code": "00"}', False, id="code-odd-string"),
        pytest.param(b'{"message": "OK"}', True, id="no-code"),
        pytest.param(b"{}", True, id="empty-object"),
        pytest.param(b'[{"code": 0}]', True, id="json-list"),
        pytest.param(b"0", True, id="bare-zero"),
    ],
)
def test_a_200_is_uncertain_unless_it_carries_a_code_of_its_own(
    body: bytes, uncertain: bool
) -> None:
    judgement = judge_reply(200, body)
    assert judgement.verdict == Verdict.TRANSIENT
    assert judgement.uncertain is uncertain


@pytest.mark.parametrize("status", [500, 502, 503, 429, 401])
def test_an_answer_with_an_error_status_is_certain(status: int) -> None:
    assert judge_reply(status, b"").uncertain is False


@pytest.mark.parametrize(
    ("asked", "expected"),
    [(None, None), (0.0, 0.0), (30.0, 30.0), (60.0, 60.0), (60.5, 60.0), (86_400.0, 60.0)],
)
def test_retry_after_is_capped_at_the_longest_retry_delay(
    asked: float | None, expected: float | None
) -> None:
    judgement = ReplyJudgement(Verdict.TRANSIENT, "HTTP 429: slow down", asked)
    capped = cap_retry_after(judgement, 60.0)
    assert capped.retry_after_s == expected
    assert (capped is judgement) == (asked == expected)
    assert (capped.verdict, capped.reason) == (judgement.verdict, judgement.reason)


def test_permanent_statuses_are_exactly_the_hopeless_4xx() -> None:
    assert frozenset({400, 404, 405, 409, 410, 413, 414, 415, 422}) == PERMANENT_STATUSES


@pytest.mark.parametrize("status", sorted(PERMANENT_STATUSES))
def test_hopeless_4xx_is_permanent(status: int) -> None:
    judgement = judge_reply(status, b'{"error": "bad"}')
    assert judgement == ReplyJudgement(Verdict.PERMANENT, f'HTTP {status}: {{"error": "bad"}}')


def test_permanent_status_wins_over_success_body() -> None:
    assert judge_reply(400, OK_BODY).verdict == Verdict.PERMANENT


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(401, id="401-token-may-be-rotated"),
        pytest.param(403, id="403"),
        pytest.param(408, id="408-request-timeout"),
        pytest.param(418, id="418-unlisted-4xx"),
        pytest.param(500, id="500"),
        pytest.param(502, id="502"),
        pytest.param(503, id="503"),
        pytest.param(504, id="504"),
        pytest.param(599, id="599"),
        pytest.param(201, id="201-not-200"),
        pytest.param(202, id="202-not-200"),
        pytest.param(204, id="204-not-200"),
        pytest.param(301, id="301-redirect"),
        pytest.param(302, id="302-redirect"),
    ],
)
def test_other_statuses_are_transient_even_with_success_body(status: int) -> None:
    assert judge_reply(status, OK_BODY) == ReplyJudgement(
        Verdict.TRANSIENT, f"HTTP {status}: {OK_BODY.decode()}"
    )


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("120", 120.0, id="seconds"),
        pytest.param(" 5 ", 5.0, id="padded"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("1.5", 1.5, id="fractional"),
        pytest.param("86400", 86_400.0, id="one-day-limit"),
        pytest.param("86401", None, id="beyond-one-day"),
        pytest.param("-1", None, id="negative"),
        pytest.param("-0.5", None, id="negative-fraction"),
        pytest.param("", None, id="empty"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("Wed, 21 Oct 2015 07:28:00 GMT", None, id="http-date-ignored"),
        pytest.param("nan", None, id="nan"),
        pytest.param("inf", None, id="infinity"),
    ],
)
def test_429_is_transient_with_parsed_retry_after(
    retry_after: str | None, expected: float | None
) -> None:
    assert parse_retry_after(retry_after) == expected
    assert judge_reply(429, b"slow down", retry_after) == ReplyJudgement(
        Verdict.TRANSIENT, "HTTP 429: slow down", expected
    )


def test_200_ignores_retry_after() -> None:
    assert judge_reply(200, OK_BODY, "30") == ReplyJudgement(Verdict.SENT, "OK")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b"", "", id="empty"),
        pytest.param(b"short", "short", id="short-kept-whole"),
        pytest.param(b"x" * BODY_EXCERPT, "x" * BODY_EXCERPT, id="exactly-the-limit"),
        pytest.param(b"x" * 10_000, "x" * BODY_EXCERPT, id="long-cut-at-limit"),
        pytest.param("é".encode() * 150, "é" * 100, id="multibyte-cut-on-boundary"),
        pytest.param(
            b"a" + "é".encode() * 150, "a" + "é" * 99 + "\ufffd", id="multibyte-cut-mid-char"
        ),
        pytest.param(b"\xff", "\ufffd", id="invalid-utf8-replaced"),
    ],
)
def test_excerpt_is_bounded_and_never_raises(body: bytes, expected: str) -> None:
    assert excerpt(body) == expected
    assert len(excerpt(body)) <= BODY_EXCERPT


@pytest.mark.parametrize(
    ("status", "prefix"),
    [
        pytest.param(200, "HTTP 200 with unparseable body: ", id="200-garbage"),
        pytest.param(500, "HTTP 500: ", id="500"),
        pytest.param(400, "HTTP 400: ", id="400"),
    ],
)
def test_reason_carries_a_bounded_excerpt(status: int, prefix: str) -> None:
    judgement = judge_reply(status, b"<" + b"y" * 100_000)
    assert judgement.reason == prefix + "<" + "y" * (BODY_EXCERPT - 1)


def test_200_with_long_wrong_body_has_bounded_reason() -> None:
    body = b'{"code": 1, "message": "' + b"z" * 5000 + b'"}'
    assert (
        judge_reply(200, body).reason
        == "HTTP 200 without success code: " + body[:BODY_EXCERPT].decode()
    )


def test_503_with_retry_after_is_obeyed() -> None:
    assert judge_reply(503, b"maintenance", "120") == ReplyJudgement(
        Verdict.TRANSIENT, "HTTP 503: maintenance", 120.0
    )
