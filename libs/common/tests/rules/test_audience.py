"""Mailing filters: empty lists mean "any", and both lists must accept the client."""

from __future__ import annotations

import pytest

from herald_common.rules.audience import default_operator_code, matches_filter


@pytest.mark.parametrize(
    ("codes", "tags", "code", "tag", "expected"),
    [
        pytest.param([], [], "900", "vip", True, id="empty-filter-matches-all"),
        pytest.param([], [], "999", "", True, id="empty-filter-matches-empty-tag"),
        pytest.param(["900"], [], "900", "vip", True, id="codes-only-match"),
        pytest.param(["900", "916"], [], "916", "any", True, id="codes-only-second-code"),
        pytest.param(["900"], [], "901", "vip", False, id="codes-only-other-code"),
        pytest.param([], ["vip"], "123", "vip", True, id="tags-only-match"),
        pytest.param([], ["vip", "new"], "123", "new", True, id="tags-only-second-tag"),
        pytest.param([], ["vip"], "123", "VIP", False, id="tags-are-case-sensitive"),
        pytest.param([], ["vip"], "123", "vip ", False, id="tags-match-exactly"),
        pytest.param([], ["vip"], "123", "", False, id="tags-only-empty-tag"),
        pytest.param(["900"], ["vip"], "900", "vip", True, id="both-match"),
        pytest.param(["900"], ["vip"], "900", "new", False, id="both-tag-rejects"),
        pytest.param(["900"], ["vip"], "901", "vip", False, id="both-code-rejects"),
        pytest.param(["900"], ["vip"], "901", "new", False, id="both-reject"),
        pytest.param(("900",), ("vip",), "900", "vip", True, id="tuples-work-too"),
        pytest.param(["90"], [], "900", "vip", False, id="code-is-not-a-prefix-match"),
    ],
)
def test_matches_filter(
    codes: list[str], tags: list[str], code: str, tag: str, expected: bool
) -> None:
    assert matches_filter(codes, tags, code, tag) is expected


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        pytest.param("79001234567", "900", id="beeline-like"),
        pytest.param("79161234567", "916", id="mts-like"),
        pytest.param("71234567890", "123", id="digits-two-to-four"),
        pytest.param("70000000000", "000", id="zeros-kept-as-text"),
    ],
)
def test_default_operator_code_is_digits_two_to_four(phone: str, expected: str) -> None:
    assert default_operator_code(phone) == expected
