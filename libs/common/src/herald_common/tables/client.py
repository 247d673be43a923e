"""The ``client`` table: which clients are live, and which a mailing's filter selects."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, String, any_, bindparam, true
from sqlalchemy.dialects.postgresql import ARRAY

from herald_common.models import Client


def is_live() -> ColumnElement[bool]:
    """Not deleted: deleted clients keep their history but get no new message."""
    return Client.deleted_at.is_(None)


def matches(operator_codes: Sequence[str], tags: Sequence[str]) -> ColumnElement[bool]:
    """A mailing's filter: an empty list means "any"; both lists must accept the client.

    Each list is one array parameter, so a filter of any length is one statement shape."""
    condition: ColumnElement[bool] = true()
    if operator_codes:
        codes = bindparam(None, list(operator_codes), type_=ARRAY(String))
        condition = condition & (Client.operator_code == any_(codes))
    if tags:
        tag_list = bindparam(None, list(tags), type_=ARRAY(String))
        condition = condition & (Client.tag == any_(tag_list))
    return condition


def in_audience(operator_codes: Sequence[str], tags: Sequence[str]) -> ColumnElement[bool]:
    """The clients a mailing with this filter sends to: live ones that match it."""
    return is_live() & matches(operator_codes, tags)
