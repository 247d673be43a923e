"""The admin sub-application mounted at /admin: sessions, login, pages, their errors."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from herald_api.admin import auth, clients, json_routes, mailings
from herald_api.admin.access import AccessPolicy
from herald_api.admin.json_routes import JsonRoute
from herald_api.admin.rendering import HERE, render
from herald_api.admin.session import CsrfRefused, LoginRequired
from herald_api.errors import (
    DATABASE_UNAVAILABLE,
    RETRY_AFTER_S,
    UNAVAILABLE_ERRORS,
    handle_database_unavailable,
    log_database_unavailable,
    status_of,
)
from herald_api.settings import ApiSettings
from herald_common.errors import HeraldError

MOUNT = "/admin"
SESSION_COOKIE = "herald_admin"


def _answers_json(request: Request) -> bool:
    # The JSON router's routes answer errors in JSON; a page does when the client asks for it.
    return isinstance(request.scope.get("route"), JsonRoute) or "application/json" in (
        request.headers.get("accept", "")
    )


async def _login_required(request: Request, _: Exception) -> Response:
    if _answers_json(request):
        return JSONResponse({"detail": "log in first", "code": "login_required"}, 401)
    if request.method != "GET":
        # Back to a form's action after login would be a GET of a POST-only route.
        return RedirectResponse(f"{MOUNT}/login", status_code=303)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{MOUNT}/login?" + urlencode({"next": target}), status_code=303)


async def _csrf_refused(request: Request, _: Exception) -> Response:
    message = "The form was stale or came from another site; reload the page and try again."
    return render(request, "error.html", {"status": 403, "message": message}, 403)


async def _herald_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HeraldError)
    status = status_of(error)
    if _answers_json(request):
        return JSONResponse({"detail": error.message, "code": error.code}, status)
    return render(request, "error.html", {"status": status, "message": error.message}, status)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    message = "No such page." if error.status_code == 404 else str(error.detail)
    return render(
        request, "error.html", {"status": error.status_code, "message": message}, error.status_code
    )


async def _database_unavailable(request: Request, error: Exception) -> Response:
    if _answers_json(request):
        return await handle_database_unavailable(request, error)
    log_database_unavailable(error)
    message = DATABASE_UNAVAILABLE.capitalize() + "."
    response = render(request, "error.html", {"status": 503, "message": message}, 503)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


async def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    if _answers_json(request):
        return JSONResponse(
            {"detail": "invalid request", "code": "invalid_input", "fields": _named(error)}, 422
        )
    messages = [f"{field}: {reason}" for field, reason in _named(error).items()]
    return render(request, "error.html", {"status": 422, "message": "; ".join(messages)}, 422)


def _named(error: RequestValidationError) -> dict[str, str]:
    named: dict[str, str] = {}
    for item in error.errors():
        loc = [str(part) for part in item.get("loc", ()) if part not in ("query", "path")]
        named.setdefault(".".join(loc) or "request", str(item.get("msg", "invalid")))
    return named


def create_admin_app(settings: ApiSettings) -> FastAPI:
    """Pages when an OIDC issuer is configured; otherwise one page saying how to turn it on."""
    admin = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    admin.state.settings = settings
    admin.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    if not settings.admin_enabled:

        @admin.get("/{path:path}", include_in_schema=False)
        async def off(request: Request, path: str) -> Response:
            return render(request, "off.html", {}, 404)

        return admin
    admin.state.oidc = auth.oidc_client(settings)
    admin.state.access = AccessPolicy.parse(
        settings.admin_emails,
        settings.admin_domains,
        settings.admin_groups,
        settings.oidc_groups_claim,
    )
    admin.add_middleware(
        SessionMiddleware,
        secret_key=settings.admin_session_secret.get_secret_value(),
        session_cookie=SESSION_COOKIE,
        max_age=round(settings.admin_session_hours * 3600),
        path=MOUNT,
        same_site="lax",
        https_only=settings.admin_cookie_secure,
    )
    admin.add_exception_handler(LoginRequired, _login_required)
    admin.add_exception_handler(CsrfRefused, _csrf_refused)
    admin.add_exception_handler(HeraldError, _herald_error)
    admin.add_exception_handler(StarletteHTTPException, _http_error)
    admin.add_exception_handler(RequestValidationError, _validation_error)
    for unavailable in UNAVAILABLE_ERRORS:
        admin.add_exception_handler(unavailable, _database_unavailable)
    admin.include_router(auth.router)
    admin.include_router(mailings.router)
    admin.include_router(json_routes.router)
    admin.include_router(clients.router)
    return admin
