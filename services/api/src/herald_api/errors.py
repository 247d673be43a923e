"""One place mapping Herald's errors to HTTP; expected errors never become a 500.

Error bodies: ``{"detail": "<reason>", "code": "<machine code>"}``; validation errors keep
FastAPI's shape ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`` so every 422
names the field and the reason.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

import psycopg
import sqlalchemy.exc
import structlog
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.utils import is_body_allowed_for_status_code
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from herald_common.errors import Conflict, HeraldError, InvalidInput, NotFound

log = structlog.get_logger()


class ErrorBody(BaseModel):
    detail: str
    code: str


class FieldError(BaseModel):
    loc: list[str | int] = Field(description='Where: e.g. ["body", "phone"], ["query", "limit"].')
    msg: str = Field(description="Why, in words a person can act on.")
    type: str


class ValidationErrorBody(BaseModel):
    """422: the request was refused as a whole; each entry names a field and the reason."""

    detail: list[FieldError]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid bearer token."},
    404: {"model": ErrorBody, "description": "No such entity."},
    409: {"model": ErrorBody, "description": "Conflicts with the current state."},
    413: {"model": ErrorBody, "description": "Request body over HERALD_MAX_BODY_BYTES."},
    503: {
        "model": ErrorBody,
        "description": "The database cannot be reached for the moment; retry after the "
        "Retry-After seconds (a create with the same Idempotency-Key).",
    },
}

DATABASE_UNAVAILABLE = "the database cannot be reached for the moment; retry shortly"
RETRY_AFTER_S = 2
# What a database that is down, restarting or out of connections raises. A broken statement
# raises other DBAPIErrors (ProgrammingError, IntegrityError...): those stay 500s, bugs to fix.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection within pool_timeout
    psycopg.OperationalError,  # raw psycopg, as the bulk import's COPY uses
    psycopg.InterfaceError,
)


def is_database_unavailable(error: BaseException) -> bool:
    if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, UNAVAILABLE_ERRORS)


def status_of(error: HeraldError) -> int:
    if error.status_code is not None:
        return error.status_code
    if isinstance(error, NotFound):
        return status.HTTP_404_NOT_FOUND
    if isinstance(error, Conflict):
        return status.HTTP_409_CONFLICT
    if isinstance(error, InvalidInput):
        return status.HTTP_422_UNPROCESSABLE_CONTENT
    return status.HTTP_400_BAD_REQUEST


async def handle_herald_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HeraldError)
    code = status_of(error)
    if isinstance(error, InvalidInput):
        detail = [{"loc": [error.location, error.field], "msg": error.reason, "type": error.code}]
        return JSONResponse({"detail": detail}, status_code=code)
    body = {"detail": error.message, "code": error.code, **error.details()}
    return JSONResponse(body, status_code=code)


# FastAPI's answer to a body it could not even decode (bytes that are not UTF-8 JSON).
_UNPARSEABLE_BODY = "There was an error parsing the body"


def allowed_methods(request: Request) -> list[str]:
    """Every method the API documents at this path: a 405's ``Allow`` header. (Starlette's
    own names only the methods of the first route that matched the path.)"""
    methods: set[str] = set()
    for pattern, path_methods in _documented_paths(request.app):
        if pattern.fullmatch(request.url.path):
            methods |= path_methods
    return sorted(methods)


def _documented_paths(app: FastAPI) -> list[tuple[re.Pattern[str], set[str]]]:
    cached: list[tuple[re.Pattern[str], set[str]]] | None = getattr(
        app.state, "documented_paths", None
    )
    if cached is None:
        cached = []
        for path, operations in app.openapi().get("paths", {}).items():
            integers = {
                param["name"]
                for operation in operations.values()
                for param in operation.get("parameters", [])
                if param.get("in") == "path" and param.get("schema", {}).get("type") == "integer"
            }

            def placeholder(match: re.Match[str], integers: set[str] = integers) -> str:
                # /mailings/stats is not /mailings/{mailing_id}: ids are digits.
                return "[0-9]+" if match.group(1) in integers else "[^/]+"

            template = re.sub(r"\\\{([^/]+?)\\\}", placeholder, re.escape(path))
            cached.append((re.compile(template), {method.upper() for method in operations}))
        app.state.documented_paths = cached
    return cached


async def handle_http_error(request: Request, error: Exception) -> Response:
    """FastAPI's own errors (401 from auth, 404/405 routing) in the same documented shape."""
    assert isinstance(error, HTTPException)
    if error.status_code == status.HTTP_400_BAD_REQUEST and error.detail == _UNPARSEABLE_BODY:
        # Same shape as any other unreadable body: a 422 naming the body and the reason.
        detail = [{"loc": ["body"], "msg": "the body is not UTF-8 JSON", "type": "json_invalid"}]
        return JSONResponse({"detail": detail}, status_code=422)
    headers = dict(error.headers or {})
    if error.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        documented = allowed_methods(request)
        if documented:
            headers["Allow"] = ", ".join(documented)
    if not is_body_allowed_for_status_code(error.status_code):
        return Response(status_code=error.status_code, headers=headers)
    try:
        code = HTTPStatus(error.status_code).phrase.lower().replace(" ", "_")
    except ValueError:
        code = "error"
    return JSONResponse(
        {"detail": error.detail, "code": code}, status_code=error.status_code, headers=headers
    )


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def handle_validation_error(request: Request, error: Exception) -> JSONResponse:
    """422 in the documented shape: where and why, without echoing the input. The input may
    be what no JSON response can carry (an unpaired surrogate), or a secret pasted in the
    wrong field."""
    assert isinstance(error, RequestValidationError)
    detail = [
        {"loc": list(item.get("loc", ())), "msg": item.get("msg", ""), "type": item.get("type")}
        for item in error.errors()
    ]
    content_type = request.headers.get("content-type", "")
    if not _is_json(content_type):
        # FastAPI reads a body that is not declared JSON as raw bytes, and pydantic's own
        # words for that ("a valid dictionary or object to extract fields from") hide the cause.
        sent = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
        for item in detail:
            if item["loc"] == ["body"] and item["type"] == "model_attributes_type":
                item["msg"] = (
                    f"the body must be JSON, sent as Content-Type: application/json ({sent})"
                )
                item["type"] = "content_type"
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def log_database_unavailable(error: BaseException) -> None:
    log.error("database_unavailable", error=_first_line(error))


async def handle_database_unavailable(_: Request, error: Exception) -> JSONResponse:
    log_database_unavailable(error)
    return JSONResponse(
        {"detail": DATABASE_UNAVAILABLE, "code": "unavailable"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def _first_line(error: BaseException) -> str:
    # SQLAlchemy appends the statement and its parameters, which may hold personal data.
    return str(error.orig if isinstance(error, sqlalchemy.exc.DBAPIError) else error).split(
        "\n", 1
    )[0]


async def handle_unexpected(request: Request, error: Exception) -> JSONResponse:
    if is_database_unavailable(error):
        return await handle_database_unavailable(request, error)
    log.exception("unhandled_error", error=repr(error))
    return JSONResponse(
        {"detail": "internal error; it has been logged", "code": "internal"},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HeraldError, handle_herald_error)
    app.add_exception_handler(HTTPException, handle_http_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    for unavailable in UNAVAILABLE_ERRORS:
        app.add_exception_handler(unavailable, handle_database_unavailable)
    # Other DBAPIErrors: an invalidated connection is unavailability too, the rest are bugs.
    app.add_exception_handler(sqlalchemy.exc.DBAPIError, handle_unexpected)
    app.add_exception_handler(Exception, handle_unexpected)
