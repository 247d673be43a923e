"""What a reply, or a refused hand-off, comes to for its message: every reply kind, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from herald_common.rules.backoff import RetryDelay
from herald_common.rules.breaker import CallKind
from herald_common.rules.delivery import Action, Decision
from herald_common.rules.outcomes import (
    BREAKER_KINDS,
    Outcome,
    Postponement,
    Reply,
    RetryPolicy,
    outcome_of,
    plan_after_failure,
    plan_postponed,
    postpone,
    read_reply,
    withhold,
)
from herald_common.rules.replies import ReplyJudgement, Verdict, judge_reply
from herald_common.statuses import MessageStatus

NOW = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)
MAX_ATTEMPTS = 5
TIERS = [1000, 2000, 4000, 8000]
POLICY = RetryPolicy(TIERS, MAX_ATTEMPTS)
FAIL_UNCERTAIN = RetryPolicy(TIERS, MAX_ATTEMPTS, fail_uncertain=True)

OK_BODY = b'{"code": 0, "message": "OK"}'
# What the HTTP client makes of a call that got no answer (herald_sender.provider).
TIMED_OUT = ReplyJudgement(Verdict.TRANSIENT, "timeout: no answer within the limit", uncertain=True)
NO_CONNECTION = ReplyJudgement(Verdict.TRANSIENT, "timeout: no connection within the limit")
REFUSED = ReplyJudgement(Verdict.TRANSIENT, "connection error: ClientConnectorError: refused")
DROPPED = ReplyJudgement(
    Verdict.TRANSIENT, "connection error: ServerDisconnectedError: gone", uncertain=True
)


def at(ms: int) -> datetime:
    return NOW + timedelta(milliseconds=ms)


def retrying(attempts: int, error: str, tier_ms: int, delay_ms: int) -> Outcome:
    return Outcome(
        MessageStatus.RETRYING,
        attempts,
        error=error,
        next_attempt_at=at(delay_ms),
        retry=RetryDelay(tier_ms=tier_ms, delay_ms=delay_ms),
    )


def postponed(why: Postponement, attempts: int, error: str, tier_ms: int, delay_ms: int) -> Outcome:
    return Outcome(
        MessageStatus.RETRYING,
        attempts,
        error=error,
        next_attempt_at=at(delay_ms),
        retry=RetryDelay(tier_ms=tier_ms, delay_ms=delay_ms),
        postponed=why,
    )


def answered(
    status: int,
    body: bytes = b"",
    retry_after: str | None = None,
    *,
    attempt: int = 1,
    closed_for_s: float = 0.0,
    jitter: float = 0.0,
    policy: RetryPolicy = POLICY,
    now: datetime = NOW,
) -> Outcome:
    """The outcome of an HTTP answer, read as the worker reads it."""
    judgement = judge_reply(status, body, retry_after)
    reply = read_reply(judgement, status)
    return outcome_of(reply, judgement, attempt, policy, now, jitter, closed_for_s)


# --- read_reply --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        pytest.param(200, OK_BODY, Reply.SENT, id="200-code-0"),
        pytest.param(200, b"<html>", Reply.FAILED, id="200-garbage"),
        pytest.param(200, b'{"code": 1}', Reply.FAILED, id="200-code-of-its-own"),
        pytest.param(400, b"bad", Reply.REJECTED, id="400"),
        pytest.param(404, b"", Reply.REJECTED, id="404"),
        pytest.param(422, b"", Reply.REJECTED, id="422"),
        pytest.param(401, b"", Reply.AUTH, id="401"),
        pytest.param(403, b"", Reply.AUTH, id="403"),
        pytest.param(401, OK_BODY, Reply.AUTH, id="401-whatever-the-body"),
        pytest.param(429, b"", Reply.THROTTLED, id="429"),
        pytest.param(408, b"", Reply.FAILED, id="408-another-4xx"),
        pytest.param(418, b"", Reply.FAILED, id="418-unlisted-4xx"),
        pytest.param(500, b"", Reply.FAILED, id="500"),
        pytest.param(503, b"", Reply.FAILED, id="503"),
        pytest.param(301, OK_BODY, Reply.FAILED, id="301-redirect"),
    ],
)
def test_read_reply_of_an_answer(status: int, body: bytes, expected: Reply) -> None:
    assert read_reply(judge_reply(status, body), status) is expected


@pytest.mark.parametrize(
    "judgement",
    [
        pytest.param(TIMED_OUT, id="timeout-after-writing"),
        pytest.param(NO_CONNECTION, id="timeout-connecting"),
        pytest.param(REFUSED, id="connection-refused"),
        pytest.param(DROPPED, id="connection-dropped"),
    ],
)
def test_no_answer_is_a_failed_call(judgement: ReplyJudgement) -> None:
    assert read_reply(judgement, None) is Reply.FAILED


@pytest.mark.parametrize(
    ("reply", "kind", "postpones"),
    [
        pytest.param(Reply.SENT, CallKind.SUCCESS, False, id="sent"),
        pytest.param(Reply.REJECTED, CallKind.SUCCESS, False, id="rejected-is-a-proper-answer"),
        pytest.param(Reply.FAILED, CallKind.FAILURE, False, id="failed"),
        pytest.param(Reply.AUTH, CallKind.AUTH, True, id="auth-opens-the-circuit"),
        pytest.param(Reply.THROTTLED, None, True, id="throttled-pauses-instead"),
    ],
)
def test_how_each_reply_counts_for_the_breaker_and_the_message(
    reply: Reply, kind: CallKind | None, postpones: bool
) -> None:
    assert BREAKER_KINDS.get(reply) == kind
    assert reply.postpones is postpones


# --- outcome_of: every reply kind ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        # Sent: the attempt counts, sent_at is the given now.
        pytest.param(
            answered(200, OK_BODY), Outcome(MessageStatus.SENT, 1, sent_at=NOW), id="sent"
        ),
        pytest.param(
            answered(200, OK_BODY, attempt=MAX_ATTEMPTS),
            Outcome(MessageStatus.SENT, MAX_ATTEMPTS, sent_at=NOW),
            id="sent-on-the-last-attempt",
        ),
        # A hopeless 4xx fails at once, on any attempt, with the provider's words.
        pytest.param(
            answered(400, b"bad phone"),
            Outcome(MessageStatus.FAILED, 1, error="HTTP 400: bad phone"),
            id="400-fails-at-once",
        ),
        pytest.param(
            answered(404, b"", attempt=3),
            Outcome(MessageStatus.FAILED, 3, error="HTTP 404: "),
            id="404-fails-at-once",
        ),
        pytest.param(
            answered(422, b"no", attempt=MAX_ATTEMPTS),
            Outcome(MessageStatus.FAILED, MAX_ATTEMPTS, error="HTTP 422: no"),
            id="422-on-the-last-attempt-says-why",
        ),
        # Failures retry on their attempt's tier, and fail after the last attempt.
        pytest.param(
            answered(500, b"busy"), retrying(1, "HTTP 500: busy", 1000, 750), id="500-first-tier"
        ),
        pytest.param(
            answered(503, b"busy", attempt=2),
            retrying(2, "HTTP 503: busy", 2000, 1500),
            id="503-second-attempt-second-tier",
        ),
        pytest.param(
            answered(502, b"busy", attempt=4, jitter=0.999999),
            retrying(4, "HTTP 502: busy", 8000, 8000),
            id="502-last-tier-jitter-near-one",
        ),
        pytest.param(
            answered(503, b"busy", attempt=MAX_ATTEMPTS),
            Outcome(
                MessageStatus.FAILED,
                MAX_ATTEMPTS,
                error="gave up after 5 attempts; last: HTTP 503: busy",
            ),
            id="503-on-the-last-attempt-fails",
        ),
        pytest.param(
            answered(503, b"busy", "3"),
            retrying(1, "HTTP 503: busy", 4000, 3000),
            id="503-retry-after-picks-the-covering-tier",
        ),
        pytest.param(
            answered(503, b"busy", "3", attempt=MAX_ATTEMPTS),
            Outcome(
                MessageStatus.FAILED,
                MAX_ATTEMPTS,
                error="gave up after 5 attempts; last: HTTP 503: busy",
            ),
            id="503-retry-after-on-the-last-attempt-fails",
        ),
        pytest.param(
            answered(503, b"busy", closed_for_s=30.0),
            retrying(1, "HTTP 503: busy", 1000, 750),
            id="a-failure-ignores-the-gates-hold",
        ),
        pytest.param(
            answered(408, b""), retrying(1, "HTTP 408: ", 1000, 750), id="408-another-4xx-retries"
        ),
        pytest.param(
            answered(418, b""), retrying(1, "HTTP 418: ", 1000, 750), id="418-unlisted-4xx-retries"
        ),
        pytest.param(
            answered(200, b"<html>"),
            retrying(1, "HTTP 200 with unparseable body: <html>", 1000, 750),
            id="garbage-200-retries",
        ),
        pytest.param(
            answered(200, b'{"code": 1}'),
            retrying(1, 'HTTP 200 without success code: {"code": 1}', 1000, 750),
            id="200-with-a-code-of-its-own-retries",
        ),
        # 401/403: the attempt is given back, the wait is the gate's hold or Retry-After.
        pytest.param(
            answered(401, closed_for_s=1.0),
            postponed(Postponement.AUTH, 0, "HTTP 401: ", 1000, 1000),
            id="401-waits-out-the-cooldown",
        ),
        pytest.param(
            answered(403, b"denied", closed_for_s=1.0),
            postponed(Postponement.AUTH, 0, "HTTP 403: denied", 1000, 1000),
            id="403-waits-out-the-cooldown",
        ),
        pytest.param(
            answered(401, attempt=3, closed_for_s=3.0),
            postponed(Postponement.AUTH, 2, "HTTP 401: ", 4000, 3000),
            id="401-tier-by-the-wait-not-the-attempt",
        ),
        pytest.param(
            answered(403, attempt=MAX_ATTEMPTS, closed_for_s=1.0),
            postponed(Postponement.AUTH, MAX_ATTEMPTS - 1, "HTTP 403: ", 1000, 1000),
            id="403-on-the-last-attempt-does-not-fail",
        ),
        pytest.param(
            answered(401, b"", "2", closed_for_s=30.0),
            postponed(Postponement.AUTH, 0, "HTTP 401: ", 2000, 2000),
            id="401-retry-after-wins-over-the-hold",
        ),
        # 429: the attempt is given back, the wait is Retry-After or the shared pause.
        pytest.param(
            answered(429, b"slow down", closed_for_s=1.0),
            postponed(Postponement.THROTTLED, 0, "HTTP 429: slow down", 1000, 1000),
            id="429-without-retry-after-waits-out-the-pause",
        ),
        pytest.param(
            answered(429, b"", "3", closed_for_s=0.5),
            postponed(Postponement.THROTTLED, 0, "HTTP 429: ", 4000, 3000),
            id="429-with-retry-after",
        ),
        pytest.param(
            answered(429, b"", "0", closed_for_s=1.5),
            postponed(Postponement.THROTTLED, 0, "HTTP 429: ", 2000, 1500),
            id="429-retry-after-zero-waits-out-the-pause",
        ),
        pytest.param(
            answered(429, b"", "20"),
            postponed(Postponement.THROTTLED, 0, "HTTP 429: ", 8000, 8000),
            id="429-retry-after-beyond-the-last-tier",
        ),
        pytest.param(
            answered(429),
            postponed(Postponement.THROTTLED, 0, "HTTP 429: ", 1000, 750),
            id="429-no-wait-at-all-first-tier",
        ),
        pytest.param(
            answered(429, b"", "1", attempt=MAX_ATTEMPTS),
            postponed(Postponement.THROTTLED, MAX_ATTEMPTS - 1, "HTTP 429: ", 1000, 1000),
            id="429-on-the-last-attempt-does-not-fail",
        ),
    ],
)
def test_outcome_of_an_answer(outcome: Outcome, expected: Outcome) -> None:
    assert outcome == expected


@pytest.mark.parametrize(
    ("judgement", "attempt", "policy", "expected"),
    [
        pytest.param(
            TIMED_OUT,
            1,
            POLICY,
            retrying(1, "timeout: no answer within the limit", 1000, 750),
            id="timeout-resent-by-default",
        ),
        pytest.param(
            TIMED_OUT,
            1,
            FAIL_UNCERTAIN,
            Outcome(
                MessageStatus.FAILED,
                1,
                error="outcome unknown: timeout: no answer within the limit",
            ),
            id="timeout-failed-when-told-to",
        ),
        pytest.param(
            DROPPED,
            2,
            FAIL_UNCERTAIN,
            Outcome(
                MessageStatus.FAILED,
                2,
                error="outcome unknown: connection error: ServerDisconnectedError: gone",
            ),
            id="dropped-connection-failed-when-told-to",
        ),
        pytest.param(
            NO_CONNECTION,
            1,
            FAIL_UNCERTAIN,
            retrying(1, "timeout: no connection within the limit", 1000, 750),
            id="no-connection-never-left-still-retried",
        ),
        pytest.param(
            REFUSED,
            3,
            FAIL_UNCERTAIN,
            retrying(3, "connection error: ClientConnectorError: refused", 4000, 3000),
            id="refused-connection-never-left-still-retried",
        ),
        pytest.param(
            TIMED_OUT,
            MAX_ATTEMPTS,
            POLICY,
            Outcome(
                MessageStatus.FAILED,
                MAX_ATTEMPTS,
                error="gave up after 5 attempts; last: timeout: no answer within the limit",
            ),
            id="timeout-on-the-last-attempt-fails",
        ),
    ],
)
def test_outcome_of_no_answer(
    judgement: ReplyJudgement, attempt: int, policy: RetryPolicy, expected: Outcome
) -> None:
    reply = read_reply(judgement, None)
    assert outcome_of(reply, judgement, attempt, policy, NOW, 0.0, closed_for_s=30.0) == expected


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(NOW, id="noon"),
        pytest.param(datetime(2024, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC), id="across-years"),
        pytest.param(datetime(2024, 3, 31, 1, 0, 0, 123_456, tzinfo=UTC), id="eu-dst-change"),
    ],
)
@pytest.mark.parametrize(
    ("status", "retry_after", "closed_for_s", "delay_ms"),
    [
        pytest.param(503, None, 0.0, 750, id="retried"),
        pytest.param(401, None, 1.0, 1000, id="auth"),
        pytest.param(429, "3", 0.0, 3000, id="throttled"),
    ],
)
def test_every_time_is_counted_from_the_given_now(
    now: datetime, status: int, retry_after: str | None, closed_for_s: float, delay_ms: int
) -> None:
    sent = answered(200, OK_BODY, now=now)
    later = answered(status, b"", retry_after, closed_for_s=closed_for_s, now=now)
    assert sent.sent_at == now
    assert later.next_attempt_at == now + timedelta(milliseconds=delay_ms)


@pytest.mark.parametrize("reply", list(Reply))
def test_exactly_the_postponing_replies_give_the_attempt_back(reply: Reply) -> None:
    verdict = {Reply.SENT: Verdict.SENT, Reply.REJECTED: Verdict.PERMANENT}
    judgement = ReplyJudgement(verdict.get(reply, Verdict.TRANSIENT), "why")
    outcome = outcome_of(reply, judgement, 2, POLICY, NOW, 0.5, closed_for_s=1.0)
    assert outcome.attempts == (1 if reply.postpones else 2)
    assert (outcome.postponed is not None) is reply.postpones


# --- postpone and withhold: no call made -----------------------------------------------------


@pytest.mark.parametrize(
    ("why", "wait_s", "attempt", "expected"),
    [
        pytest.param(
            Postponement.CIRCUIT_OPEN,
            0.5,
            2,
            postponed(Postponement.CIRCUIT_OPEN, 1, "circuit_open", 1000, 750),
            id="circuit-open-short-wait",
        ),
        pytest.param(
            Postponement.THROTTLED,
            2.5,
            1,
            postponed(Postponement.THROTTLED, 0, "throttled", 4000, 3000),
            id="throttled-covering-tier",
        ),
        pytest.param(
            Postponement.CIRCUIT_OPEN,
            60.0,
            MAX_ATTEMPTS,
            postponed(Postponement.CIRCUIT_OPEN, MAX_ATTEMPTS - 1, "circuit_open", 8000, 8000),
            id="long-wait-capped-at-last-tier",
        ),
    ],
)
def test_a_message_held_back_after_its_claim_keeps_its_attempt(
    why: Postponement, wait_s: float, attempt: int, expected: Outcome
) -> None:
    assert postpone(why, wait_s, attempt, TIERS, NOW, 0.0) == expected


OUTSIDE = "outside the client's send window"
ENDED = "the mailing ended before the message could be sent"


@pytest.mark.parametrize(
    ("handoff", "expected"),
    [
        pytest.param(
            Decision(Action.EXPIRE, ENDED),
            Outcome(MessageStatus.EXPIRED, 2, error=ENDED),
            id="expired",
        ),
        pytest.param(
            Decision(Action.DEFER, OUTSIDE, at(3_600_000)),
            Outcome(MessageStatus.DEFERRED, 2, error=OUTSIDE, next_attempt_at=at(3_600_000)),
            id="deferred-to-the-opening",
        ),
    ],
)
def test_a_refused_handoff_gives_the_attempt_back(handoff: Decision, expected: Outcome) -> None:
    assert withhold(handoff, 3) == expected


# --- plan_after_failure ----------------------------------------------------------------------

FAIL_503 = ReplyJudgement(Verdict.TRANSIENT, "HTTP 503: busy")
REJECTED = ReplyJudgement(Verdict.PERMANENT, "HTTP 400: bad phone")


@pytest.mark.parametrize(
    ("judgement", "attempts", "jitter", "expected"),
    [
        pytest.param(REJECTED, 1, 0.0, Decision(Action.FAIL, "HTTP 400: bad phone"), id="perm-1"),
        pytest.param(REJECTED, 4, 0.0, Decision(Action.FAIL, "HTTP 400: bad phone"), id="perm-4"),
        pytest.param(
            FAIL_503, 1, 0.0, Decision(Action.RETRY, "HTTP 503: busy", None, 750, 1000), id="t-1"
        ),
        pytest.param(
            FAIL_503, 2, 0.0, Decision(Action.RETRY, "HTTP 503: busy", None, 1500, 2000), id="t-2"
        ),
        pytest.param(
            FAIL_503, 3, 0.0, Decision(Action.RETRY, "HTTP 503: busy", None, 3000, 4000), id="t-3"
        ),
        pytest.param(
            FAIL_503, 4, 0.0, Decision(Action.RETRY, "HTTP 503: busy", None, 6000, 8000), id="t-4"
        ),
        pytest.param(
            FAIL_503,
            2,
            0.999999,
            Decision(Action.RETRY, "HTTP 503: busy", None, 2000, 2000),
            id="transient-2-jitter-near-one",
        ),
        pytest.param(
            FAIL_503,
            5,
            0.0,
            Decision(Action.FAIL, "gave up after 5 attempts; last: HTTP 503: busy"),
            id="transient-last-attempt-fails",
        ),
        pytest.param(
            FAIL_503,
            6,
            0.0,
            Decision(Action.FAIL, "gave up after 6 attempts; last: HTTP 503: busy"),
            id="transient-beyond-last-attempt-fails",
        ),
    ],
)
def test_plan_after_failure(
    judgement: ReplyJudgement, attempts: int, jitter: float, expected: Decision
) -> None:
    assert plan_after_failure(judgement, attempts, MAX_ATTEMPTS, TIERS, jitter) == expected


UNKNOWN = ReplyJudgement(Verdict.TRANSIENT, "timeout: no answer within the limit", uncertain=True)


@pytest.mark.parametrize(
    ("judgement", "fail_uncertain", "expected"),
    [
        pytest.param(UNKNOWN, False, Action.RETRY, id="uncertain-resent-by-default"),
        pytest.param(UNKNOWN, True, Action.FAIL, id="uncertain-failed-when-asked"),
        pytest.param(FAIL_503, True, Action.RETRY, id="certain-failure-still-retried"),
        pytest.param(REJECTED, False, Action.FAIL, id="permanent-fails-either-way"),
    ],
)
def test_an_uncertain_outcome_is_resent_or_failed_as_configured(
    judgement: ReplyJudgement, fail_uncertain: bool, expected: Action
) -> None:
    decision = plan_after_failure(judgement, 1, MAX_ATTEMPTS, TIERS, 0.0, fail_uncertain)
    assert decision.action == expected
    if expected == Action.FAIL and judgement.uncertain:
        assert decision.reason == "outcome unknown: timeout: no answer within the limit"


@pytest.mark.parametrize(
    ("retry_after_s", "attempts", "expected_delay", "expected_tier"),
    [
        pytest.param(None, 1, 750, 1000, id="no-retry-after"),
        pytest.param(0.0, 1, 750, 1000, id="zero-retry-after"),
        pytest.param(0.0004, 1, 750, 1000, id="sub-millisecond-rounds-to-zero"),
        pytest.param(0.9, 1, 900, 1000, id="raises-delay-within-tier"),
        pytest.param(1.5, 1, 1500, 2000, id="moves-to-next-tier"),
        pytest.param(3.5, 1, 3500, 4000, id="moves-two-tiers"),
        pytest.param(2.5, 3, 3000, 4000, id="smaller-than-own-tier-keeps-it"),
        pytest.param(8.0, 1, 8000, 8000, id="exactly-last-tier"),
        pytest.param(3600.0, 1, 8000, 8000, id="capped-at-last-tier"),
    ],
)
def test_plan_after_failure_respects_retry_after(
    retry_after_s: float | None, attempts: int, expected_delay: int, expected_tier: int
) -> None:
    judgement = ReplyJudgement(Verdict.TRANSIENT, "HTTP 429", retry_after_s)
    decision = plan_after_failure(judgement, attempts, MAX_ATTEMPTS, TIERS, 0.0)
    assert decision == Decision(
        Action.RETRY, "HTTP 429", delay_ms=expected_delay, tier_ms=expected_tier
    )


@pytest.mark.parametrize(
    ("status", "body", "retry_after", "expected"),
    [
        pytest.param(
            429, b"", "3", Decision(Action.RETRY, "HTTP 429: ", None, 3000, 4000), id="429-wait-3s"
        ),
        pytest.param(
            200,
            b"<html>",
            None,
            Decision(Action.RETRY, "HTTP 200 with unparseable body: <html>", None, 750, 1000),
            id="garbage-200-retries",
        ),
        pytest.param(
            422, b"no", None, Decision(Action.FAIL, "HTTP 422: no"), id="422-fails-for-good"
        ),
    ],
)
def test_reply_to_decision_end_to_end(
    status: int, body: bytes, retry_after: str | None, expected: Decision
) -> None:
    judgement = judge_reply(status, body, retry_after)
    assert plan_after_failure(judgement, 1, MAX_ATTEMPTS, TIERS, 0.0) == expected


@pytest.mark.parametrize(
    ("wait_ms", "jitter", "tier", "delay"),
    [
        pytest.param(0, 0.0, 100, 75, id="no-wait-first-tier"),
        pytest.param(150, 0.0, 200, 150, id="wait-moves-to-covering-tier"),
        pytest.param(150, 0.999, 200, 200, id="jitter-within-tier"),
        pytest.param(5_000, 0.0, 800, 800, id="capped-at-last-tier"),
    ],
)
def test_postponed_retry_covers_the_wait(
    wait_ms: int, jitter: float, tier: int, delay: int
) -> None:
    decision = plan_postponed("HTTP 429", wait_ms, [100, 200, 400, 800], jitter)
    assert decision == Decision(Action.RETRY, "HTTP 429", delay_ms=delay, tier_ms=tier)
