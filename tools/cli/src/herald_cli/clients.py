"""``herald clients …``: the client directory, and bulk import from CSV or NDJSON."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack
from enum import StrEnum
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from herald_cli import output
from herald_cli.api import IMPORT_TIMEOUT, api_of
from herald_cli.bodies import client_body, client_changes
from herald_cli.errors import UsageProblem
from herald_cli.imports import ImportFormat, describe_import, detect_format

app = typer.Typer(help="The client directory: list, get, add, edit, delete, import.")

CHUNK_BYTES = 1 << 16

ClientId = Annotated[int, typer.Argument(min=1, help="The client's id.", show_default=False)]
Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]
Phone = Annotated[str | None, typer.Option(help="7XXXXXXXXXX (11 digits starting with 7).")]
TimeZone = Annotated[str | None, typer.Option(help="IANA name, e.g. Europe/Moscow.")]
Tag = Annotated[str | None, typer.Option(help="Free text, up to 64 characters.")]
OperatorCode = Annotated[
    str | None, typer.Option(help="3 digits; by default digits 2-4 of the phone.")
]


class OnDuplicate(StrEnum):
    UPDATE = "update"
    SKIP = "skip"
    REJECT = "reject"


@app.command("import")
def import_clients(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(help="A .csv, .ndjson or .jsonl file; - for standard input.")
    ],
    fmt: Annotated[
        ImportFormat | None,
        typer.Option("--format", help="The file's format, when its extension does not say."),
    ] = None,
    on_duplicate: Annotated[
        OnDuplicate,
        typer.Option(
            help="Phones of live clients: update them, skip the rows, or refuse the file."
        ),
    ] = OnDuplicate.UPDATE,
    as_json: Json = False,
) -> None:
    """Add or update many clients from a CSV or NDJSON file, all or nothing.

    One bad row and nothing is written: the errors are listed by line and field. The file is
    streamed, with a progress bar on a terminal."""
    try:
        detected = detect_format(file, fmt)
    except ValueError as error:
        raise UsageProblem(str(error)) from None
    headers = {"Content-Type": detected.content_type}
    with ExitStack() as stack:
        if file == "-":
            stream: BinaryIO = sys.stdin.buffer
            size = None
        else:
            path = Path(file)
            try:
                stream = stack.enter_context(path.open("rb"))
            except OSError as error:
                raise UsageProblem(f"cannot read {file}: {error.strerror}") from None
            size = path.stat().st_size
            # With a length, the API refuses a file over its limit before reading it.
            headers["Content-Length"] = str(size)
        progress = stack.enter_context(_upload_progress())
        task = progress.add_task(f"uploading {Path(file).name}", total=size)
        result = api_of(ctx).call(
            "POST",
            "/clients/import",
            params={"on_duplicate": on_duplicate.value},
            content=_chunks(stream, progress, task),
            headers=headers,
            timeout=IMPORT_TIMEOUT,
        )
        progress.update(task, description="imported")
    if as_json:
        output.print_json(result)
    else:
        output.out.print(describe_import(result, "standard input" if file == "-" else file))


def _upload_progress() -> Progress:
    """Bytes handed to the API: it checks and copies rows as they arrive, so this is also how
    far the import has got, until the final commit."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=output.err,
        disable=not output.err.is_terminal,
    )


def _chunks(stream: BinaryIO, progress: Progress, task: TaskID) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_BYTES):
        yield chunk
        progress.advance(task, len(chunk))
    progress.update(task, description="checking and committing")


@app.command("list")
def list_clients(
    ctx: typer.Context,
    tag: Annotated[str | None, typer.Option(help="Only clients with this tag.")] = None,
    operator_code: Annotated[
        str | None, typer.Option(help="Only clients with this operator code.")
    ] = None,
    phone: Annotated[str | None, typer.Option(help="Only the client with this phone.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 100,
    after: Annotated[
        int, typer.Option(min=0, help="Start after this id (a page's next_after).")
    ] = 0,
    every: Annotated[bool, typer.Option("--all", help="Every page, not just one.")] = False,
    as_json: Json = False,
) -> None:
    """List clients by id, a page at a time (--all: every page)."""
    page = api_of(ctx).page(
        "/clients",
        {"tag": tag, "operator_code": operator_code, "phone": phone},
        limit=limit,
        after=after,
        every=every,
    )
    output.print_page(page, output.print_clients, as_json)


@app.command()
def get(ctx: typer.Context, client_id: ClientId, as_json: Json = False) -> None:
    """Show one client."""
    _show(api_of(ctx).call("GET", f"/clients/{client_id}"), as_json)


@app.command()
def add(
    ctx: typer.Context,
    phone: Annotated[str, typer.Option(help="7XXXXXXXXXX (11 digits starting with 7).")],
    timezone: Annotated[str, typer.Option(help="IANA name, e.g. Europe/Moscow.")],
    tag: Tag = None,
    operator_code: OperatorCode = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Retrying with the same key returns the first answer (CI retries)."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Add a client."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    body = client_body(phone, timezone, tag, operator_code)
    _show(api_of(ctx).call("POST", "/clients", json=body, headers=headers), as_json)


@app.command()
def edit(
    ctx: typer.Context,
    client_id: ClientId,
    phone: Phone = None,
    timezone: TimeZone = None,
    tag: Tag = None,
    operator_code: OperatorCode = None,
    as_json: Json = False,
) -> None:
    """Change the fields given; the others stay."""
    try:
        changes = client_changes(phone, timezone, tag, operator_code)
    except ValueError as error:
        raise UsageProblem(str(error)) from None
    _show(api_of(ctx).call("PATCH", f"/clients/{client_id}", json=changes), as_json)


@app.command()
def delete(ctx: typer.Context, client_id: ClientId) -> None:
    """Delete a client: its pending messages end cancelled, its history stays."""
    api_of(ctx).call("DELETE", f"/clients/{client_id}")
    output.out.print(f"client {client_id} deleted")


def _show(client: dict[str, object], as_json: bool) -> None:
    if as_json:
        output.print_json(client)
    else:
        output.print_record(client)
