"""``Idempotency-Key`` on creating POSTs: a retried request gets the first answer again
instead of creating a second client or mailing.

The key is stored in the request's own transaction, together with the answer, so either both
the entity and its key are committed or neither is. A second request with the key waits on
the first one's row until that commits, then replays its answer (same status, same body). The
same key with a different body (or on another path) is a 422. Keys are scoped to the token's
name and kept for ``IDEMPOTENCY_KEEP_HOURS``; the scheduler prunes older ones.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from fastapi import Header, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.errors import IdempotencyKeyReused, InvalidInput
from herald_common.models import IDEMPOTENCY_KEEP_HOURS
from herald_common.models import IdempotencyKey as KeyRow

_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description=f"Any 1-200 visible ASCII characters, new for each new request: a retry "
        f"with the same key (within {IDEMPOTENCY_KEEP_HOURS} h) returns the first answer.",
    ),
]


def request_hash(request: Request, body: BaseModel) -> bytes:
    canonical = body.model_dump_json(exclude_unset=False).encode()
    return hashlib.sha256(
        request.method.encode() + b" " + request.url.path.encode() + b"\n" + canonical
    ).digest()


class Idempotency:
    """One request's key: ``replay`` before doing the work, ``remember`` its answer after."""

    def __init__(self, session: AsyncSession, caller: str, key: str, digest: bytes) -> None:
        self._session = session
        self._caller = caller
        self._key = key
        self._digest = digest

    @classmethod
    def of(
        cls, session: AsyncSession, request: Request, key: str | None, body: BaseModel
    ) -> Idempotency | None:
        if key is None:
            return None
        if not _VALID_KEY.match(key):
            raise InvalidInput(
                "Idempotency-Key", "must be 1-200 visible ASCII characters", location="header"
            )
        caller = getattr(request.state, "caller", "default")
        return cls(session, caller, key, request_hash(request, body))

    async def replay(self) -> Response | None:
        """The stored answer of an earlier request with this key, or None: go ahead (the key
        is then held by this transaction until it commits or rolls back)."""
        claimed = await self._session.scalar(
            insert(KeyRow)
            .values(
                caller=self._caller,
                key=self._key,
                request_hash=self._digest,
                status_code=0,
                response=b"",
            )
            .on_conflict_do_nothing(index_elements=[KeyRow.caller, KeyRow.key])
            .returning(literal(1))
        )
        if claimed:
            return None
        row = (
            await self._session.execute(
                select(
                    KeyRow.request_hash,
                    KeyRow.status_code,
                    KeyRow.response,
                ).where(self._this_key())
            )
        ).one()
        if bytes(row.request_hash) != self._digest:
            raise IdempotencyKeyReused(self._key)
        return Response(
            content=bytes(row.response),
            status_code=row.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )

    async def remember(self, status_code: int, answer: BaseModel) -> None:
        await self._session.execute(
            update(KeyRow)
            .where(self._this_key())
            .values(status_code=status_code, response=answer.model_dump_json().encode())
        )

    def _this_key(self) -> ColumnElement[bool]:
        return and_(KeyRow.caller == self._caller, KeyRow.key == self._key)
