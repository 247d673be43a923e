"""What a call, or a hand-off that did not happen, comes to for its message.

A provider reply is read once (``read_reply``) into one of five kinds. The gate counts it
(``BREAKER_KINDS``, or the shared pause for ``throttled``); ``outcome_of`` turns it into the
message's new record:

    reply                                     kind       the message                       attempt
    200 with code 0                           sent       sent                              spent
    a hopeless 4xx (``PERMANENT_STATUSES``)   rejected   failed                            spent
    5xx, another 4xx, a 200 without code 0,   failed     retrying on its attempt's tier;   spent
    a timeout, a connection error                        failed after the last attempt, or
                                                         when uncertain and told to fail
    401, 403                                  auth       retrying after the circuit's      kept
                                                         cooldown
    429                                       throttled  retrying after the shared pause   kept

Our token or our pace is not the message's fault, so 401/403/429 spend no attempt. A
``Retry-After`` the provider sent (already capped) is waited out in full, on any reply.

Messages the gate holds back after their claim are postponed the same way (``postpone``);
those the last check before the call refuses are expired or deferred (``withhold``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from herald_common.rules.backoff import RetryDelay, retry_delay
from herald_common.rules.breaker import CallKind
from herald_common.rules.delivery import STATUS_OF, Action, Decision
from herald_common.rules.replies import ReplyJudgement, Verdict
from herald_common.statuses import MessageStatus


class Reply(StrEnum):
    """What a reply says, and about whom: the message, the provider, or us."""

    SENT = "sent"  # the provider took the message
    REJECTED = "rejected"  # the message itself is wrong
    FAILED = "failed"  # the provider failed, or no answer came
    AUTH = "auth"  # 401/403: our token is refused
    THROTTLED = "throttled"  # 429: we are too fast

    @property
    def postpones(self) -> bool:
        """True when the message waits without spending an attempt (``outcome_of`` then
        needs how long the gate holds calls back)."""
        return self in _POSTPONED_BY


class Postponement(StrEnum):
    """Why a message goes back to wait without spending an attempt."""

    AUTH = "auth"  # the provider refused our token
    THROTTLED = "throttled"  # the provider asked every replica to slow down
    CIRCUIT_OPEN = "circuit_open"  # the circuit opened after the message was claimed


_POSTPONED_BY: Mapping[Reply, Postponement] = {
    Reply.AUTH: Postponement.AUTH,
    Reply.THROTTLED: Postponement.THROTTLED,
}

AUTH_STATUSES = frozenset({401, 403})
THROTTLED_STATUS = 429

# How a reply counts for the circuit breaker. A 429 does not count: the provider is alive and
# asks to be left alone for a while, which the gate's pause, shared by every replica, does.
BREAKER_KINDS: Mapping[Reply, CallKind] = {
    Reply.SENT: CallKind.SUCCESS,
    Reply.REJECTED: CallKind.SUCCESS,  # a proper answer: the message was at fault
    Reply.FAILED: CallKind.FAILURE,
    Reply.AUTH: CallKind.AUTH,
}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    tiers: list[int]  # the retry queues' TTLs (``backoff.retry_tiers``)
    max_attempts: int
    fail_uncertain: bool = False  # HERALD_UNCERTAIN_OUTCOME=fail


@dataclass(frozen=True, slots=True)
class Outcome:
    """A message's new record."""

    status: MessageStatus
    attempts: int  # spent so far: an attempt postponed or withheld is given back
    error: str | None = None
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None
    retry: RetryDelay | None = None  # the retry queue it waits in, and for how long
    postponed: Postponement | None = None


def read_reply(judgement: ReplyJudgement, status: int | None) -> Reply:
    """``status`` is None when no answer came (a timeout, a connection error)."""
    if status in AUTH_STATUSES:
        return Reply.AUTH
    if status == THROTTLED_STATUS:
        return Reply.THROTTLED
    if judgement.verdict == Verdict.SENT:
        return Reply.SENT
    if judgement.verdict == Verdict.PERMANENT:
        return Reply.REJECTED
    return Reply.FAILED


def outcome_of(
    reply: Reply,
    judgement: ReplyJudgement,
    attempt: int,
    policy: RetryPolicy,
    now: datetime,
    jitter: float,
    closed_for_s: float = 0.0,
) -> Outcome:
    """The message's record after its ``attempt``-th call (counted from 1, as claimed) was
    answered with ``judgement``, read as ``reply``.

    ``jitter`` is uniform in [0, 1). ``closed_for_s``: how long the gate holds calls back
    once it has counted this reply; a postponed message waits that long unless the provider
    named its own ``Retry-After``.
    """
    if reply is Reply.SENT:
        return Outcome(MessageStatus.SENT, attempt, sent_at=now)
    postponement = _POSTPONED_BY.get(reply)
    if postponement is not None:
        wait_s = judgement.retry_after_s or closed_for_s
        return postpone(
            postponement, wait_s, attempt, policy.tiers, now, jitter, reason=judgement.reason
        )
    decision = plan_after_failure(
        judgement, attempt, policy.max_attempts, policy.tiers, jitter, policy.fail_uncertain
    )
    if decision.action == Action.FAIL:
        return Outcome(MessageStatus.FAILED, attempt, error=decision.reason)
    return _retrying(decision, attempt, now)


def postpone(
    why: Postponement,
    wait_s: float,
    attempt: int,
    tiers: list[int],
    now: datetime,
    jitter: float,
    reason: str | None = None,
) -> Outcome:
    """Back to the retry queues for at least ``wait_s``, the claimed ``attempt`` given back.
    ``reason`` (the provider's answer) becomes the message's error; by default, ``why``."""
    decision = plan_postponed(reason or why.value, round(wait_s * 1000), tiers, jitter)
    return _retrying(decision, attempt - 1, now, why)


def withhold(handoff: Decision, attempt: int) -> Outcome:
    """The last check before the call refused it (expire, or defer to the window's opening):
    the claimed ``attempt`` is given back."""
    return Outcome(
        STATUS_OF[handoff.action], attempt - 1, error=handoff.reason, next_attempt_at=handoff.until
    )


def plan_after_failure(
    judgement: ReplyJudgement,
    attempts: int,
    max_attempts: int,
    tiers: list[int],
    jitter: float,
    fail_uncertain: bool = False,
) -> Decision:
    """After an attempt that did not end ``sent``: retry later, or fail for good.

    ``fail_uncertain`` (HERALD_UNCERTAIN_OUTCOME=fail) is for providers that cannot drop a
    duplicate: a message the provider may have taken is not sent again but ends ``failed``.
    """
    if judgement.verdict == Verdict.PERMANENT:
        return Decision(Action.FAIL, judgement.reason)
    if judgement.uncertain and fail_uncertain:
        return Decision(Action.FAIL, f"outcome unknown: {judgement.reason}")
    if attempts >= max_attempts:
        return Decision(Action.FAIL, f"gave up after {attempts} attempts; last: {judgement.reason}")
    at_least_ms = round(judgement.retry_after_s * 1000) if judgement.retry_after_s else 0
    delay = retry_delay(attempts, tiers, jitter, at_least_ms)
    return Decision(Action.RETRY, judgement.reason, delay_ms=delay.delay_ms, tier_ms=delay.tier_ms)


def plan_postponed(reason: str, wait_ms: int, tiers: list[int], jitter: float) -> Decision:
    """Try again later without spending an attempt: the provider refused our token, asked us
    to slow down (429), or the circuit is open. The delay covers at least ``wait_ms``."""
    delay = retry_delay(1, tiers, jitter, max(wait_ms, 0))
    return Decision(Action.RETRY, reason, delay_ms=delay.delay_ms, tier_ms=delay.tier_ms)


def _retrying(
    decision: Decision, attempts: int, now: datetime, postponed: Postponement | None = None
) -> Outcome:
    assert decision.delay_ms is not None
    assert decision.tier_ms is not None
    return Outcome(
        MessageStatus.RETRYING,
        attempts,
        error=decision.reason,
        next_attempt_at=now + timedelta(milliseconds=decision.delay_ms),
        retry=RetryDelay(tier_ms=decision.tier_ms, delay_ms=decision.delay_ms),
        postponed=postponed,
    )
