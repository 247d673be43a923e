"""Admin pages of the client directory: search, add, edit, delete, CSV import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from herald_api.admin.forms import FieldErrors, client_payload, read_form, validate
from herald_api.admin.rendering import flash, render
from herald_api.admin.session import User
from herald_api.clients import service
from herald_api.clients.imports import ImportFormat, OnDuplicate
from herald_api.clients.schemas import ClientCreate, ClientRead, ClientUpdate
from herald_api.deps import Uow
from herald_api.errors import status_of
from herald_api.observability import note_ids
from herald_api.settings import ApiSettings
from herald_api.validation import OPERATOR_CODE_PATTERN, PHONE_PATTERN
from herald_common.errors import DuplicatePhone, HeraldError

router = APIRouter()
PAGE = 50
CHUNK = 256 * 1024


@router.get("/clients", name="clients")
async def clients_page(
    request: Request,
    uow: Uow,
    user: User,
    phone: Annotated[str, Query(max_length=11)] = "",
    tag: Annotated[str, Query(max_length=64)] = "",
    operator_code: Annotated[str, Query(max_length=3)] = "",
    after: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    search = {"phone": phone.strip(), "tag": tag.strip(), "operator_code": operator_code.strip()}
    clients = await service.list_clients(
        uow,
        limit=PAGE,
        after=after,
        tag=search["tag"] or None,
        operator_code=search["operator_code"] or None,
        phone=search["phone"] or None,
    )
    return render(
        request,
        "clients.html",
        {
            "clients": [ClientRead.model_validate(c) for c in clients],
            "search": search,
            "next_after": clients[-1].id if len(clients) == PAGE else None,
        },
    )


def _form_page(
    request: Request,
    form: dict[str, str],
    errors: FieldErrors,
    client_id: int | None = None,
    status_code: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "form": form,
        "errors": errors,
        "client_id": client_id,
        "phone_pattern": PHONE_PATTERN.strip("^$"),
        "code_pattern": OPERATOR_CODE_PATTERN.strip("^$"),
    }
    return render(request, "client_form.html", context, status_code)


def _notice(request: Request, path: str, text: str) -> Response:
    flash(request, text)
    return RedirectResponse(path, status_code=303)


@router.get("/clients/new", name="client_new")
async def client_new(request: Request, user: User) -> Response:
    return _form_page(request, {"timezone": "Europe/Moscow"}, {})


@router.post("/clients/new", name="client_create")
async def client_create(request: Request, uow: Uow, user: User) -> Response:
    form = await read_form(request)
    data, errors = validate(ClientCreate, client_payload(form), {})
    if data is None:
        return _form_page(request, form, errors, status_code=422)
    try:
        # A savepoint: a phone taken meanwhile (the unique index) leaves the request's
        # transaction usable, so the form can say so instead of failing the request.
        async with uow.session.begin_nested():
            client = await service.create_client(uow, data)
    except DuplicatePhone as error:
        return _form_page(request, form, {"phone": error.message}, status_code=409)
    note_ids(client_id=client.id)
    read = ClientRead.model_validate(client)
    return _notice(request, "/admin/clients", f"Client {read.id} ({read.phone}) added.")


@router.get("/clients/{client_id:int}/edit", name="client_edit")
async def client_edit(request: Request, uow: Uow, user: User, client_id: int) -> Response:
    client = ClientRead.model_validate(await service.get_client(uow, client_id))
    form = {
        "phone": client.phone,
        "operator_code": client.operator_code,
        "tag": client.tag,
        "timezone": client.timezone,
    }
    return _form_page(request, form, {}, client_id)


@router.post("/clients/{client_id:int}/edit", name="client_update")
async def client_update(request: Request, uow: Uow, user: User, client_id: int) -> Response:
    form = await read_form(request)
    payload = client_payload(form)
    data, errors = validate(ClientUpdate, payload, {})
    if data is None:
        return _form_page(request, form, errors, client_id, 422)
    try:
        async with uow.session.begin_nested():
            await service.update_client(uow, client_id, data)
    except DuplicatePhone as error:
        return _form_page(request, form, {"phone": error.message}, client_id, 409)
    note_ids(client_id=client_id)
    return _notice(request, "/admin/clients", f"Client {client_id} saved.")


@router.post("/clients/{client_id:int}/delete", name="client_delete")
async def client_delete(request: Request, uow: Uow, user: User, client_id: int) -> Response:
    cancelled = await service.delete_client(uow, client_id)
    note_ids(client_id=client_id)
    return _notice(
        request,
        "/admin/clients",
        f"Client {client_id} deleted; {cancelled} pending messages cancelled.",
    )


@router.get("/clients/import", name="clients_import_form")
async def import_form(request: Request, user: User) -> Response:
    return render(request, "clients_import.html", {"result": None, "errors": None})


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK):
        yield chunk


@router.post("/clients/import", name="clients_import")
async def import_upload(request: Request, uow: Uow, user: User) -> Response:
    """The REST import's rules, from an uploaded file; all or nothing, errors by line."""
    settings: ApiSettings = request.app.state.settings
    form = await request.form(max_part_size=1024 * 1024)
    upload = form.get("file")
    raw_mode = form.get("on_duplicate")
    mode = raw_mode if isinstance(raw_mode, str) else OnDuplicate.UPDATE.value
    context: dict[str, Any] = {"result": None, "errors": None, "on_duplicate": mode}
    if not isinstance(upload, UploadFile) or not upload.filename:
        context["errors"] = [{"line": None, "field": "file", "reason": "choose a file"}]
        return render(request, "clients_import.html", context, 422)
    try:
        on_duplicate = OnDuplicate(mode)
    except ValueError:
        context["errors"] = [
            {"line": None, "field": "on_duplicate", "reason": "update, skip or reject"}
        ]
        return render(request, "clients_import.html", context, 422)
    ndjson = upload.filename.lower().endswith((".ndjson", ".jsonl"))
    try:
        # A savepoint: a refused file rolls back whole, and the page still answers.
        async with uow.session.begin_nested():
            result = await service.import_clients(
                uow,
                ImportFormat.NDJSON if ndjson else ImportFormat.CSV,
                _chunks(upload),
                on_duplicate,
                max_bytes=settings.import_max_bytes,
                by=user.operator,
            )
    except HeraldError as error:
        details = error.details()
        context["errors"] = details.get("errors") or [
            {"line": None, "field": getattr(error, "field", None), "reason": error.message}
        ]
        context["summary"] = error.message
        context["phones"] = details.get("phones")
        return render(request, "clients_import.html", context, status_of(error))
    context["result"] = result
    return render(request, "clients_import.html", context)
