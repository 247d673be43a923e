"""One place mapping Herald's errors to HTTP; expected errors never become a 500.

Error bodies: ``{"detail": "<reason>", "code": "<machine code>"}``; validation errors keep
FastAPI's shape ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`` so every 422
names the field and the reason.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse, Response
from fastapi.utils import is_body_allowed_for_status_code
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from herald_common.errors import Conflict, HeraldError, InvalidInput, NotFound

log = structlog.get_logger()


class ErrorBody(BaseModel):
    detail: str
    code: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid bearer token."},
    404: {"model": ErrorBody, "description": "No such entity."},
    409: {"model": ErrorBody, "description": "Conflicts with the current state."},
}


def _status_of(error: HeraldError) -> int:
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
    code = _status_of(error)
    if isinstance(error, InvalidInput):
        detail = [{"loc": ["body", error.field], "msg": error.reason, "type": error.code}]
        return JSONResponse({"detail": detail}, status_code=code)
    body = {"detail": error.message, "code": error.code, **error.details()}
    return JSONResponse(body, status_code=code)


async def handle_http_error(_: Request, error: Exception) -> Response:
    """FastAPI's own errors (401 from auth, 404/405 routing) in the same documented shape."""
    assert isinstance(error, HTTPException)
    if not is_body_allowed_for_status_code(error.status_code):
        return Response(status_code=error.status_code, headers=error.headers)
    try:
        code = HTTPStatus(error.status_code).phrase.lower().replace(" ", "_")
    except ValueError:
        code = "error"
    return JSONResponse(
        {"detail": error.detail, "code": code}, status_code=error.status_code, headers=error.headers
    )


async def handle_unexpected(_: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled_error", error=repr(error))
    return JSONResponse(
        {"detail": "internal error; it has been logged", "code": "internal"},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HeraldError, handle_herald_error)
    app.add_exception_handler(HTTPException, handle_http_error)
    app.add_exception_handler(Exception, handle_unexpected)
