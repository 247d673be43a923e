"""Request-scoped dependencies: the unit of work (one transaction per request) and auth."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.events import EventPublisher
from herald_api.observability import note_caller
from herald_api.security import identify


class UnitOfWork:
    """A session in one transaction, plus what to do once it has committed."""

    def __init__(self, session: AsyncSession, events: EventPublisher) -> None:
        self.session = session
        self.events = events
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, action: Callable[[], None]) -> None:
        self._after_commit.append(action)

    def committed(self) -> None:
        for action in self._after_commit:
            action()


async def get_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        uow = UnitOfWork(session, request.app.state.events)
        async with session.begin():
            yield uow
        uow.committed()


# scope="function": commit before the response is sent, so a 201 means it is stored.
Uow = Annotated[UnitOfWork, Depends(get_uow, scope="function")]

bearer = HTTPBearer(auto_error=False, description="The API token (HERALD_API_TOKEN).")


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    # async def on purpose: a plain def would cost every request a hop to the thread pool.
    given = credentials.credentials.encode() if credentials else b""
    caller = identify(request.app.state.tokens, given) if given else None
    if caller is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # The token's name, never the token, joins the request's log line (and scopes its
    # idempotency keys).
    request.state.caller = caller
    note_caller(caller)
