"""Login through an external OpenID Connect provider (Authlib), and logout."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import httpx2
import structlog
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from joserfc.errors import JoseError

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
    # Configured, never derived from the request: its Host header is whatever the client sent.
    redirect_uri = settings.oidc_redirect_url
    response: Response = await _client(request).authorize_redirect(request, redirect_uri)
    return response


# What a refused login says: fixed words for the provider's standard error codes (RFC 6749
# 4.1.2.1, OIDC Core 3.1.2.6), never the text of the callback URL, which anyone can write.
_PROVIDER_ERRORS = {
    "access_denied": "the login was cancelled or denied at the identity provider",
    "login_required": "the identity provider needs you to log in first",
    "consent_required": "the identity provider needs your consent first",
    "interaction_required": "the identity provider needs you to complete the login there",
    "mismatching_state": "the login took too long or was started elsewhere; try again",
}
_GENERIC_FAILURE = "the login could not be completed; try again"


@router.get("/auth", name="auth_callback")
async def auth_callback(request: Request) -> Response:
    if not any(key.startswith("_state_") for key in request.session):
        # No login of ours is under way in this browser: a stray or crafted callback. It
        # changes nothing, not even a session already open here.
        log.warning("admin_login_failed", reason="callback without a login under way")
        return RedirectResponse(request.url_for("login"), status_code=303)
    target = safe_next(request.session.pop("next", None))
    client = _client(request)
    try:
        token: dict[str, Any] = await client.authorize_access_token(request)
        claims: dict[str, Any] = dict(token.get("userinfo") or {})
        if not claims.get("sub"):
            raise OAuthError(error="no_id_token", description="the answer had no ID token")
        policy: AccessPolicy = request.app.state.access
        if policy.groups and policy.groups_claim not in claims:
            # Some providers put groups only in the userinfo answer. Only the groups are taken
            # from it, and only if it is about the same user as the validated ID token.
            info = dict(await client.userinfo(token=token))
            if info.get("sub") != claims["sub"]:
                raise OAuthError(error="userinfo_mismatch", description="userinfo sub differs")
            claims[policy.groups_claim] = info.get(policy.groups_claim)
    except OAuthError as error:
        log.warning("admin_login_failed", reason=error.error, description=error.description)
        return _back_to_login(request, _PROVIDER_ERRORS.get(error.error, _GENERIC_FAILURE))
    except (httpx2.HTTPError, JoseError, ValueError) as error:
        # The provider unreachable, or an ID token that fails its checks (signature,
        # audience, expiry): no login, and the reason in the log, not on the page.
        log.warning("admin_login_failed", reason=type(error).__name__, description=str(error))
        return _back_to_login(request, _GENERIC_FAILURE)
    verdict = judge(policy, claims)
    email = str(claims.get("email") or "")
    if not verdict.allowed:
        log.warning("admin_login_refused", email=email, sub=claims["sub"], reason=verdict.reason)
        return _back_to_login(request, verdict.reason)
    user = AdminUser(str(claims["sub"]), email, str(claims.get("name") or email or claims["sub"]))
    settings: ApiSettings = request.app.state.settings
    await log_in(request, user, timedelta(hours=settings.admin_session_hours))
    log.info("admin_login", email=email, sub=user.subject, reason=verdict.reason)
    return RedirectResponse(target, status_code=303)


def _back_to_login(request: Request, reason: str) -> Response:
    request.session.clear()
    request.session["login_error"] = reason
    return RedirectResponse(request.url_for("login"), status_code=303)


@router.post("/logout", name="logout")
async def logout(request: Request, user: User) -> Response:
    await log_out(request)
    log.info("admin_logout", email=user.email, sub=user.subject)
    return RedirectResponse("/admin/login", status_code=303)
