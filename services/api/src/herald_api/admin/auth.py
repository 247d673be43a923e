"""Login through an external OpenID Connect provider (Authlib), and logout."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import structlog
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from herald_api.admin.access import AccessPolicy, judge, safe_next
from herald_api.admin.rendering import render
from herald_api.admin.session import AdminUser, User, current_user, log_in, log_out
from herald_api.settings import ApiSettings

log = structlog.get_logger()
router = APIRouter()
NextPath = Annotated[str | None, Query(alias="next", max_length=2000)]


def oidc_client(settings: ApiSettings) -> StarletteOAuth2App:
    oauth = OAuth()
    issuer = settings.oidc_issuer.rstrip("/")
    client: StarletteOAuth2App = oauth.register(
        "oidc",
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret.get_secret_value() or None,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256"},
    )
    return client


def _client(request: Request) -> StarletteOAuth2App:
    client: StarletteOAuth2App = request.app.state.oidc
    return client


@router.get("/login", name="login")
async def login_page(request: Request, target: NextPath = None) -> Response:
    # The reason of a refused login travels in the session, not the URL: a link cannot put
    # words of its own on this page.
    error = request.session.pop("login_error", None)
    if current_user(request) is not None and not error:
        return RedirectResponse(safe_next(target), status_code=303)
    return render(
        request,
        "login.html",
        {
            "next": safe_next(target),
            "error": error,
            "issuer": request.app.state.settings.oidc_issuer,
        },
        status_code=403 if error else 200,
    )


@router.get("/login/start", name="login_start")
async def login_start(request: Request, target: NextPath = None) -> Response:
    request.session["next"] = safe_next(target)
    settings: ApiSettings = request.app.state.settings
    redirect_uri = settings.oidc_redirect_url or str(request.url_for("auth_callback"))
    response: Response = await _client(request).authorize_redirect(request, redirect_uri)
    return response


@router.get("/auth", name="auth_callback")
async def auth_callback(request: Request) -> Response:
    target = safe_next(request.session.pop("next", None))
    try:
        token: dict[str, Any] = await _client(request).authorize_access_token(request)
    except OAuthError as error:
        log.warning("admin_login_failed", reason=error.error, description=error.description)
        return _back_to_login(request, f"the identity provider refused the login ({error.error})")
    claims: dict[str, Any] = dict(token.get("userinfo") or {})
    policy: AccessPolicy = request.app.state.access
    if policy.groups_claim not in claims and policy.groups:
        # Some providers put groups only in the userinfo answer, not in the ID token.
        claims.update(await _client(request).userinfo(token=token))
    verdict = judge(policy, claims)
    email = str(claims.get("email") or "")
    if not verdict.allowed:
        log.warning("admin_login_refused", email=email, reason=verdict.reason)
        return _back_to_login(request, verdict.reason)
    user = AdminUser(str(claims.get("sub", "")), email, str(claims.get("name") or email))
    settings: ApiSettings = request.app.state.settings
    await log_in(request, user, timedelta(hours=settings.admin_session_hours))
    log.info("admin_login", email=email, reason=verdict.reason)
    return RedirectResponse(target, status_code=303)


def _back_to_login(request: Request, reason: str) -> Response:
    request.session.clear()
    request.session["login_error"] = reason
    return RedirectResponse(request.url_for("login"), status_code=303)


@router.post("/logout", name="logout")
async def logout(request: Request, user: User) -> Response:
    await log_out(request)
    log.info("admin_logout", email=user.email)
    return RedirectResponse("/admin/login", status_code=303)
