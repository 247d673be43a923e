"""Which clients a mailing's filter selects (the scheduler runs the same rule in SQL)."""

from __future__ import annotations

from collections.abc import Sequence


def matches_filter(
    operator_codes: Sequence[str], tags: Sequence[str], operator_code: str, tag: str
) -> bool:
    """An empty list means "any"; both lists must accept the client."""
    return (not operator_codes or operator_code in operator_codes) and (not tags or tag in tags)


def default_operator_code(phone: str) -> str:
    """Digits 2–4 of a ``7XXXXXXXXXX`` phone, the operator code when none is given."""
    return phone[1:4]
