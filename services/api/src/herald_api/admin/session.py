"""The admin session: who is logged in, and the CSRF token every form carries.

The cookie (signed, http-only) holds a random session id; PostgreSQL holds its SHA-256 with
the expiry, so that logging out ends the session everywhere, also for a copied cookie."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.models import AdminSession

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
# Ended or expired sessions are kept this long (who logged in when), then pruned at a login.
KEEP_ENDED = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class AdminUser:
    subject: str
    email: str
    name: str

    @property
    def operator(self) -> str:
        """Who made a change, as its log line's ``by`` names them."""
        return self.email or self.subject


class LoginRequired(Exception):
    """No one is logged in: pages redirect to the login page, JSON answers 401."""


class CsrfRefused(Exception):
    """A state-changing request without this session's CSRF token."""


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return maker


def current_user(request: Request) -> AdminUser | None:
    """Who the cookie says is logged in (``require_user`` also checks the server's record)."""
    data: Any = request.session.get("user")
    if not isinstance(data, dict):
        return None
    return AdminUser(
        str(data.get("sub", "")), str(data.get("email", "")), str(data.get("name", ""))
    )


async def log_in(request: Request, user: AdminUser, lifetime: timedelta) -> None:
    # A new session on login: nothing a visitor planted before it (fixation) survives.
    request.session.clear()
    session_id = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    async with _sessions(request)() as db, db.begin():
        await db.execute(delete(AdminSession).where(AdminSession.expires_at < now - KEEP_ENDED))
        await db.execute(
            insert(AdminSession).values(
                id_hash=_hash(session_id), email=user.email, expires_at=now + lifetime
            )
        )
    request.session["sid"] = session_id
    request.session["user"] = {"sub": user.subject, "email": user.email, "name": user.name}
    request.session["csrf"] = secrets.token_urlsafe(32)


async def log_out(request: Request) -> None:
    session_id = request.session.get("sid")
    request.session.clear()
    if isinstance(session_id, str):
        async with _sessions(request)() as db, db.begin():
            await db.execute(
                update(AdminSession)
                .where(AdminSession.id_hash == _hash(session_id), AdminSession.ended_at.is_(None))
                .values(ended_at=datetime.now(UTC))
            )


async def _is_live(request: Request) -> bool:
    session_id = request.session.get("sid")
    if not isinstance(session_id, str):
        return False
    async with _sessions(request)() as db:
        found = await db.scalar(
            select(AdminSession.id_hash).where(
                AdminSession.id_hash == _hash(session_id),
                AdminSession.ended_at.is_(None),
                AdminSession.expires_at > datetime.now(UTC),
            )
        )
    return found is not None


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, given: str | None) -> None:
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not given:
        raise CsrfRefused
    # As bytes: compare_digest refuses str holding non-ASCII (a TypeError, so a 500), and a
    # header or form field may hold anything. surrogatepass encodes every str there is.
    if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode()):
        raise CsrfRefused


async def require_user(request: Request) -> AdminUser:
    """Every admin page's guard; a POST must also carry the session's CSRF token."""
    user = current_user(request)
    if user is None:
        raise LoginRequired
    if not await _is_live(request):
        request.session.clear()
        raise LoginRequired
    if request.method not in ("GET", "HEAD"):
        given = request.headers.get(CSRF_HEADER)
        if given is None:
            form = await request.form()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
        check_csrf(request, given)
    return user


# Every admin route's guard, as a parameter type.
User = Annotated[AdminUser, Depends(require_user)]
