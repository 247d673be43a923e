"""What a provider reply means for a message: sent, worth retrying, or failed for good.

Judged by the status code first; the body is parsed leniently and only a 200 carrying
``code == 0`` counts as sent. A garbage 200 is not proof of delivery, so it is retried.

Some failures leave the outcome unknown (``uncertain``): the provider may have taken the
message. A 200 whose body cannot be read is one; the HTTP client marks the others (a timeout
or a dropped connection after the request was written). By default they are sent again, and
the provider, seeing the same message id, can drop the duplicate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import StrEnum


class Verdict(StrEnum):
    SENT = "sent"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class ReplyJudgement:
    verdict: Verdict
    reason: str
    retry_after_s: float | None = None
    uncertain: bool = False  # the provider may have taken the message


# The request itself is wrong: sending it again cannot succeed.
PERMANENT_STATUSES = frozenset({400, 404, 405, 409, 410, 413, 414, 415, 422})
BODY_EXCERPT = 200


def excerpt(body: bytes) -> str:
    return body[:BODY_EXCERPT].decode("utf-8", errors="replace")


def parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 86_400 else None


def judge_reply(status: int, body: bytes, retry_after: str | None = None) -> ReplyJudgement:
    if status == 200:
        return _judge_ok_body(body)
    if status in PERMANENT_STATUSES:
        return ReplyJudgement(Verdict.PERMANENT, f"HTTP {status}: {excerpt(body)}")
    # A provider asking to be left alone for a while (429, 503 Retry-After) is obeyed.
    return ReplyJudgement(
        Verdict.TRANSIENT, f"HTTP {status}: {excerpt(body)}", parse_retry_after(retry_after)
    )


def _judge_ok_body(body: bytes) -> ReplyJudgement:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # deeply nested garbage overflows the decoder
        return ReplyJudgement(
            Verdict.TRANSIENT, f"HTTP 200 with unparseable body: {excerpt(body)}", uncertain=True
        )
    if not isinstance(data, dict) or "code" not in data:
        # Not the contract's answer: we cannot tell whether the message was taken.
        return ReplyJudgement(
            Verdict.TRANSIENT, f"HTTP 200 without success code: {excerpt(body)}", uncertain=True
        )
    code = data["code"]
    # Lenient: a numeric string "0" is still the provider's success code.
    if (type(code) is int and code == 0) or code == "0":
        return ReplyJudgement(Verdict.SENT, "OK")
    # A code of its own: the provider says it did not take the message.
    return ReplyJudgement(Verdict.TRANSIENT, f"HTTP 200 without success code: {excerpt(body)}")


def cap_retry_after(judgement: ReplyJudgement, max_s: float) -> ReplyJudgement:
    """A provider's Retry-After, at most ``max_s`` (HERALD_RETRY_MAX_MS): a provider asking
    for a day's pause must not stall every sender for a day."""
    asked = judgement.retry_after_s
    if asked is None or asked <= max_s:
        return judgement
    return replace(judgement, retry_after_s=max_s)
