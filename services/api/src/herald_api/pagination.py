"""Keyset paging shared by the list endpoints: ``?limit=&after=<id>``."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

T = TypeVar("T")

MAX_PAGE = 1000

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size (1–1000).")]
After = Annotated[
    int,
    Query(
        ge=0, le=2**63 - 1, description="Return items with an id greater than this (next_after)."
    ),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_after: int | None = Field(
        description="Pass as `after` to get the next page; null on the last page."
    )


def next_after(ids: list[int], limit: int) -> int | None:
    return ids[-1] if len(ids) == limit else None
