"""/api/v1/clients: the client directory."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from herald_api.clients import service
from herald_api.clients.imports import OCTET_STREAM, ImportTooLarge, OnDuplicate, import_format
from herald_api.clients.schemas import (
    ClientCreate,
    ClientImportResult,
    ClientPage,
    ClientRead,
    ClientUpdate,
    ExistingPhonesBody,
    InvalidImportBody,
)
from herald_api.deps import Uow
from herald_api.errors import ERROR_RESPONSES, ErrorBody, ValidationErrorBody
from herald_api.idempotency import Idempotency, IdempotencyKey
from herald_api.observability import note_ids
from herald_api.pagination import After, Limit, next_after
from herald_api.settings import ApiSettings
from herald_api.validation import EntityId, OperatorCode, Phone, Tag

router = APIRouter(prefix="/clients", tags=["clients"], responses=ERROR_RESPONSES)


@router.post(
    "", status_code=status.HTTP_201_CREATED, summary="Add a client", response_model=ClientRead
)
async def create_client(
    body: ClientCreate, uow: Uow, request: Request, idempotency_key: IdempotencyKey = None
) -> ClientRead | Response:
    """Add a client. The operator code defaults to digits 2–4 of the phone. 409 if a live
    client already has the phone. With an `Idempotency-Key`, a retry returns the first answer."""
    idempotency = Idempotency.of(uow.session, request, idempotency_key, body)
    if idempotency is not None and (replayed := await idempotency.replay()) is not None:
        return replayed
    client = await service.create_client(uow, body)
    note_ids(client_id=client.id)
    read = ClientRead.model_validate(client)
    if idempotency is not None:
        await idempotency.remember(status.HTTP_201_CREATED, read)
    return read


IMPORT_DESCRIPTION = """
Add or update many clients from one file, streamed (chunked or with a Content-Length; it is
never held in memory whole) into PostgreSQL in one transaction. **All or nothing**: one bad
row, and nothing is written.

**Formats** (the `Content-Type`, UTF-8):

- `text/csv`: a header row (line 1) naming the columns, in any order: `phone`, `timezone`,
  and optionally `tag`, `operator_code`; any other column is refused. RFC 4180 quoting
  (`"a, b"`, `""` for a quote). An empty `operator_code` cell means the default.
- `application/x-ndjson`: one JSON object per line with the keys of `POST /clients`
  (`phone` as a string, `timezone`, optional `tag`, optional `operator_code`).

- `application/octet-stream`: either of them, told apart by the first character that is not
  blank: `{` for NDJSON, anything else for CSV. This is the body type generated clients send
  (the document names it alone, for them).

Blank lines are ignored in both. Every row follows the rules of `POST /clients`: phone
`7XXXXXXXXXX`, an IANA time zone, a tag of at most 64 characters (no NUL character), an
operator code of 3 digits, defaulting to digits 2–4 of the phone.

**Limits**: `HERALD_IMPORT_MAX_BYTES` (256 MiB by default; 413 beyond), no line longer than
256 KiB, no `Content-Encoding` (415). A million new clients take about 15 s.

**Phones already in the file** (twice or more) are always an error, named on each later line
with the line of the first one.

**Phones of live clients** (deleted clients do not count: their phones are free) follow
`on_duplicate`:

- `update` (default): the client takes the row's operator code, tag and time zone, defaults
  included (a CSV without a `tag` column clears tags). A row equal to the client changes
  nothing and is counted as `skipped`.
- `skip`: the client is left as it is; the row is counted as `skipped`.
- `reject`: 409 listing the first 100 such phones (`phones`, `existing_count`); nothing is
  written.

**Answers**: 200 `{"created", "updated", "skipped", "total"}` once committed (`total` counts
the rows of the file); 422 `{"detail", "code": "invalid_rows", "error_count", "errors"}`
with the first 100 errors by line, each `{"line", "field", "reason"}` (`line` counted from 1
as in an editor, the CSV header being line 1; `field` null when the whole line is at fault);
409 as above; 413 too large; 415 another content type (a bad `on_duplicate` gets the usual
422 of a query parameter).

Example (CSV), answered `{"created": 2, "updated": 0, "skipped": 0, "total": 2}` on an
empty directory:

```
phone,timezone,tag
79001234567,Europe/Moscow,vip
79161234567,Asia/Vladivostok,
```

The same as NDJSON:

```
{"phone": "79001234567", "timezone": "Europe/Moscow", "tag": "vip"}
{"phone": "79161234567", "timezone": "Asia/Vladivostok"}
```

With `curl`: `curl -H "Authorization: Bearer $TOKEN" -H "Content-Type: text/csv"
--data-binary @clients.csv "$API/api/v1/clients/import?on_duplicate=skip"`.
"""

CSV_EXAMPLE = "phone,timezone,tag\n79001234567,Europe/Moscow,vip\n79161234567,Asia/Vladivostok,\n"
NDJSON_EXAMPLE = (
    '{"phone": "79001234567", "timezone": "Europe/Moscow", "tag": "vip"}\n'
    '{"phone": "79161234567", "timezone": "Asia/Vladivostok", "operator_code": "916"}\n'
)
# Documented as one binary body of either format: what openapi-python-client and
# openapi-generator both generate a call for (neither knows text/csv or NDJSON, and
# openapi-python-client drops an operation whose body has a type it does not know).
IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file, CSV or NDJSON. Sent as `text/csv` or `application/x-ndjson`, "
        "or as `application/octet-stream` (NDJSON when its first non-blank character is `{`).",
        "content": {
            OCTET_STREAM: {
                "schema": {"type": "string", "format": "binary"},
                "examples": {
                    "csv": {"summary": "CSV", "value": CSV_EXAMPLE},
                    "ndjson": {"summary": "NDJSON", "value": NDJSON_EXAMPLE},
                },
            },
        },
    }
}
IMPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"model": ExistingPhonesBody, "description": "`reject`: phones of live clients."},
    413: {"model": ErrorBody, "description": "Larger than HERALD_IMPORT_MAX_BYTES."},
    415: {
        "model": ErrorBody,
        "description": "Not text/csv, application/x-ndjson or application/octet-stream.",
    },
    422: {
        "model": InvalidImportBody | ValidationErrorBody,
        "description": "Errors in the file (first shape) or in the query string (second); "
        "nothing written.",
    },
}


@router.post(
    "/import",
    summary="Import clients in bulk (CSV or NDJSON)",
    description=IMPORT_DESCRIPTION,
    responses=IMPORT_RESPONSES,
    openapi_extra=IMPORT_BODY,
)
async def import_clients(
    request: Request,
    uow: Uow,
    on_duplicate: Annotated[
        OnDuplicate, Query(description="What to do with phones of live clients.")
    ] = OnDuplicate.UPDATE,
) -> ClientImportResult:
    settings: ApiSettings = request.app.state.settings
    fmt = import_format(
        request.headers.get("content-type"), request.headers.get("content-encoding")
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > settings.import_max_bytes:
        raise ImportTooLarge(settings.import_max_bytes)
    return await service.import_clients(
        uow, fmt, request.stream(), on_duplicate, max_bytes=settings.import_max_bytes
    )


@router.get("", summary="List clients")
async def list_clients(
    uow: Uow,
    limit: Limit = 100,
    after: After = 0,
    tag: Annotated[Tag | None, Query(description="Only clients with this tag.")] = None,
    operator_code: Annotated[OperatorCode | None, Query()] = None,
    phone: Annotated[Phone | None, Query()] = None,
) -> ClientPage:
    clients = await service.list_clients(
        uow, limit=limit, after=after, tag=tag, operator_code=operator_code, phone=phone
    )
    return ClientPage(
        items=[ClientRead.model_validate(c) for c in clients],
        next_after=next_after([c.id for c in clients], limit),
    )


@router.get("/{client_id:int}", summary="Get a client")
async def get_client(client_id: EntityId, uow: Uow) -> ClientRead:
    return ClientRead.model_validate(await service.get_client(uow, client_id))


@router.patch("/{client_id:int}", summary="Change a client")
async def update_client(client_id: EntityId, body: ClientUpdate, uow: Uow) -> ClientRead:
    """Change the given fields. Messages already created keep going to this client."""
    client = await service.update_client(uow, client_id, body)
    return ClientRead.model_validate(client)


@router.delete(
    "/{client_id:int}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a client"
)
async def delete_client(client_id: EntityId, uow: Uow) -> Response:
    """Remove the client from the directory; its pending messages end `cancelled`, its
    history stays in the statistics."""
    await service.delete_client(uow, client_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
