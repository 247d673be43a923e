"""The admin session: who is logged in, and the CSRF token every form carries."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True, slots=True)
class AdminUser:
    subject: str
    email: str
    name: str


class LoginRequired(Exception):
    """No one is logged in: pages redirect to the login page, JSON answers 401."""


class CsrfRefused(Exception):
    """A state-changing request without this session's CSRF token."""


def current_user(request: Request) -> AdminUser | None:
    data: Any = request.session.get("user")
    if not isinstance(data, dict):
        return None
    return AdminUser(
        str(data.get("sub", "")), str(data.get("email", "")), str(data.get("name", ""))
    )


def log_in(request: Request, user: AdminUser) -> None:
    # A new session on login: nothing a visitor planted before it (fixation) survives.
    request.session.clear()
    request.session["user"] = {"sub": user.subject, "email": user.email, "name": user.name}
    request.session["csrf"] = secrets.token_urlsafe(32)


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, given: str | None) -> None:
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not given or not hmac.compare_digest(given, expected):
        raise CsrfRefused


async def require_user(request: Request) -> AdminUser:
    """Every admin page's guard; a POST must also carry the session's CSRF token."""
    user = current_user(request)
    if user is None:
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
