"""Pages rendered with Jinja2, each with the admin UI's own content security policy."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from herald_api.admin.session import CSRF_FIELD, csrf_token, current_user

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

# Everything from this origin, nothing inline, no framing, forms post only here.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _number(value: int | float) -> str:
    return f"{value:,}".replace(",", "\u202f")


templates.env.filters["when"] = _when
templates.env.filters["number"] = _number


def flash(request: Request, notice: str) -> None:
    """A line for the next page shown (kept in the session: a link cannot write it)."""
    request.session["notice"] = notice


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    # With the admin UI off there is no session at all (nothing to sign it with).
    has_session = "session" in request.scope
    user = current_user(request) if has_session else None
    context = {
        "user": user,
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_token(request) if user else "",
        "notice": request.session.pop("notice", None) if has_session else None,
        **context,
    }
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["content-security-policy"] = CSP
    response.headers["cache-control"] = "no-store"
    return response
