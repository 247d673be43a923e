"""A client's operator code when none is given. (Which clients a mailing's filter selects is
``herald_common.tables.client.matches``.)"""

from __future__ import annotations


def default_operator_code(phone: str) -> str:
    """Digits 2–4 of a ``7XXXXXXXXXX`` phone, the operator code when none is given."""
    return phone[1:4]
