"""``herald mailings …``: create, list, show, pause, resume, retry the failed, delete, watch."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from herald_cli import output
from herald_cli.api import Api, api_of
from herald_cli.bodies import TIME_HELP, mailing_body, read_mailing_file
from herald_cli.errors import ApiUnavailable, UsageProblem, WatchTimeout
from herald_cli.watching import Reading, final_counts, read_progress

app = typer.Typer(help="Mailings: create, list, show, pause, resume, retry-failed, delete, watch.")

MailingId = Annotated[int, typer.Argument(min=1, help="The mailing's id.", show_default=False)]
Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]
# While watching, the API may restart (a deploy): polls keep failing this long before giving up.
WATCH_OUTAGE_S = 60.0


class MailingState(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"


def _now() -> datetime:
    return datetime.now(UTC)


@app.command()
def create(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="The body as JSON (.json) or YAML: starts_at, ends_at, text, filter, "
            "send_window. Flags given as well override its fields.",
        ),
    ] = None,
    starts_at: Annotated[str | None, typer.Option(help=f"Default: now. {TIME_HELP}.")] = None,
    ends_at: Annotated[str | None, typer.Option(help=f"Required: {TIME_HELP}.")] = None,
    text: Annotated[str | None, typer.Option(help="The message. Required.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="Only clients with this tag; repeat for more.")
    ] = None,
    operator_code: Annotated[
        list[str] | None,
        typer.Option(help="Only clients with this operator code; repeat for more."),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            help="Send only between these local times of each client, HH:MM-HH:MM "
            "(22:00-06:00 wraps midnight)."
        ),
    ] = None,
    no_window: Annotated[
        bool, typer.Option("--no-window", help="Drop the file's send_window.")
    ] = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Retrying with the same key returns the first mailing (CI retries)."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Create a mailing, from flags or a JSON/YAML file.

    It starts by itself at starts_at (at once if that has come), for every client matching
    the filter (no --tag and no --operator-code: everybody)."""
    try:
        base = read_mailing_file(file) if file is not None else None
        body = mailing_body(
            _now(),
            base,
            starts_at=starts_at,
            ends_at=ends_at,
            text=text,
            tags=tag or (),
            operator_codes=operator_code or (),
            window=window,
            no_window=no_window,
        )
    except ValueError as error:
        raise UsageProblem(str(error)) from None
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    _show(api_of(ctx).call("POST", "/mailings", json=body, headers=headers), as_json)


@app.command("list")
def list_mailings(
    ctx: typer.Context,
    state: Annotated[MailingState | None, typer.Option(help="Only mailings in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 100,
    after: Annotated[
        int, typer.Option(min=0, help="Start after this id (a page's next_after).")
    ] = 0,
    every: Annotated[bool, typer.Option("--all", help="Every page, not just one.")] = False,
    as_json: Json = False,
) -> None:
    """List mailings by id, a page at a time (--all: every page)."""
    params = {"state": state.value if state else None}
    page = api_of(ctx).page("/mailings", params, limit=limit, after=after, every=every)
    output.print_page(page, output.print_mailings, as_json)


@app.command()
def show(ctx: typer.Context, mailing_id: MailingId, as_json: Json = False) -> None:
    """Show a mailing and its statistics (--json: the mailing with a "stats" field)."""
    api = api_of(ctx)
    mailing = api.call("GET", f"/mailings/{mailing_id}")
    stats = api.call("GET", f"/mailings/{mailing_id}/stats")
    if as_json:
        output.print_json({**mailing, "stats": stats})
        return
    output.print_record(mailing, title=f"mailing {mailing_id}")
    _print_counts(stats)


@app.command()
def pause(ctx: typer.Context, mailing_id: MailingId, as_json: Json = False) -> None:
    """Hold a mailing: nothing more is handed to the provider.

    Calls under way finish; the end still applies. Pausing a paused mailing changes nothing."""
    _show(api_of(ctx).call("POST", f"/mailings/{mailing_id}/pause"), as_json)


@app.command()
def resume(ctx: typer.Context, mailing_id: MailingId, as_json: Json = False) -> None:
    """Queue its paused messages again, each once."""
    _show(api_of(ctx).call("POST", f"/mailings/{mailing_id}/resume"), as_json)


@app.command("retry-failed")
def retry_failed(ctx: typer.Context, mailing_id: MailingId, as_json: Json = False) -> None:
    """Give every failed message a new round of attempts (before the mailing's end)."""
    result = api_of(ctx).call("POST", f"/mailings/{mailing_id}/retry-failed")
    if as_json:
        output.print_json(result)
    else:
        output.out.print(f"mailing {mailing_id}: {result['requeued']} failed message(s) requeued")


@app.command()
def delete(ctx: typer.Context, mailing_id: MailingId) -> None:
    """Stop the mailing: messages not yet handed to the provider end cancelled."""
    api_of(ctx).call("DELETE", f"/mailings/{mailing_id}")
    output.out.print(f"mailing {mailing_id} deleted")


@app.command()
def watch(
    ctx: typer.Context,
    mailing_id: MailingId,
    interval: Annotated[
        float, typer.Option(min=0.2, help="Seconds between polls of its statistics.")
    ] = 2.0,
    timeout: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Give up (exit 5) after this many seconds. Default: wait until settled, "
            "which every mailing is soon after its end.",
            show_default=False,
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Follow a mailing with a progress bar until it has settled, then print its counts.

    Settled: the mailing is finished and every message is sent, failed, expired or cancelled.
    The bar shows done/total, the rate and the estimated time left, as the API measures them."""
    api = api_of(ctx)
    path = f"/mailings/{mailing_id}/stats"
    deadline = None if timeout is None else time.monotonic() + timeout
    stats = api.call("GET", path)  # a wrong id or URL fails at once
    with _watch_progress() as progress:
        # No total until the first reading is drawn: a made-up one would flash "0/100".
        task = progress.add_task(f"mailing {mailing_id}", total=None, percent="", rate="", eta="")
        while True:
            reading = read_progress(stats, _now())
            _show_reading(progress, task, mailing_id, reading)
            if reading.settled:
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WatchTimeout(
                    f"mailing {mailing_id} not settled after {timeout:g} s: "
                    f"{reading.done} of {reading.total} messages done, state {reading.state}"
                )
            time.sleep(interval if left is None else min(interval, left))
            stats = _poll(api, path)
    if as_json:
        output.print_json(stats)
    else:
        _print_counts(stats)


def _poll(api: Api, path: str) -> dict[str, Any]:
    """The next stats; an API out of reach for a while (a restart) is waited for, bounded."""
    outage_until = time.monotonic() + WATCH_OUTAGE_S
    while True:
        try:
            stats: dict[str, Any] = api.call("GET", path)
            return stats
        except ApiUnavailable:
            if time.monotonic() >= outage_until:
                raise
            time.sleep(1.0)


def _watch_progress() -> Progress:
    # Drawn at each poll, not on a timer: the first frame has the numbers already.
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[percent]}"),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[eta]}"),
        console=output.err,
        disable=not output.err.is_terminal,
        auto_refresh=False,
    )


def _show_reading(progress: Progress, task: TaskID, mailing_id: int, reading: Reading) -> None:
    # Rich's bar needs a total above 0: a mailing without messages is full once settled.
    total, done = (reading.total, reading.done) if reading.total else (1, int(reading.settled))
    progress.update(
        task,
        description=f"mailing {mailing_id} {reading.state}",
        total=total,
        completed=done,
        percent=f"{reading.percent:5.1f}%",
        rate=reading.rate,
        eta=reading.eta,
        refresh=True,
    )


def _print_counts(stats: dict[str, Any]) -> None:
    table = Table("status", "messages", title=f"mailing {stats.get('id')}: {stats.get('state')}")
    for status, count in final_counts(stats):
        table.add_row(status, str(count), style="bold" if status == "total" else None)
    output.out.print(table)


def _show(mailing: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.print_json(mailing)
    else:
        output.print_record(mailing, title=f"mailing {mailing.get('id')}")
