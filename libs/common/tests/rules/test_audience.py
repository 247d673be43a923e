"""A client's default operator code comes from its phone."""

from __future__ import annotations

import pytest

from herald_common.rules.audience import default_operator_code


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
