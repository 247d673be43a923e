"""What the commands print: results on stdout (a Rich table, or JSON for scripts), progress
and errors on stderr, so that ``herald … --json | jq`` reads only the result."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from herald_cli.errors import CliError
from herald_cli.watching import TERMINAL_STATUSES, done_of

# Rich reads TTY_COMPATIBLE, FORCE_COLOR, NO_COLOR and COLUMNS from the environment itself.
out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # an error line stays one line


def print_json(data: object) -> None:
    # Plain, uncoloured text whatever the terminal: it is for jq and scripts.
    print(json.dumps(data, indent=2, ensure_ascii=False))


def report_error(error: CliError) -> None:
    first, *rest = error.lines or ["failed"]
    err.print(f"[bold red]error:[/] {escape(first)}")
    for line in rest:
        err.print(escape(line))


def note(message: str) -> None:
    """A remark for the person at the terminal (stderr): a result line for scripts goes to
    stdout instead."""
    err.print(escape(message))


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def print_record(record: Mapping[str, Any], title: str | None = None) -> None:
    table = Table(show_header=False, title=title, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in record.items():
        table.add_row(key, escape(_cell(value)))
    out.print(table)


def print_rows(columns: Sequence[str], items: Iterable[Mapping[str, Any]]) -> None:
    table = Table(*columns)
    for item in items:
        table.add_row(*(escape(_cell(item.get(column))) for column in columns))
    out.print(table)


CLIENT_COLUMNS = ("id", "phone", "operator_code", "tag", "timezone", "created_at")
MAILING_COLUMNS = ("id", "state", "starts_at", "ends_at", "text", "filter", "send_window")


def print_page(
    page: Mapping[str, Any],
    print_items: Callable[[Sequence[Mapping[str, Any]]], None],
    as_json: bool,
) -> None:
    """A list command's answer: the page as JSON, or its items and how to get the next page."""
    if as_json:
        print_json(page)
        return
    print_items(page["items"])
    if page["next_after"] is not None:
        note(f"more: --after {page['next_after']} (or --all)")


def print_clients(items: Sequence[Mapping[str, Any]]) -> None:
    print_rows(CLIENT_COLUMNS, items)


def print_mailings(items: Sequence[Mapping[str, Any]]) -> None:
    shortened = [{**m, "text": _shorten(str(m.get("text", "")), 40)} for m in items]
    print_rows(MAILING_COLUMNS, shortened)


def _shorten(text: str, width: int) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


def print_stats(stats: Mapping[str, Any]) -> None:
    """``GET /mailings/stats``: a row per mailing and the totals."""
    table = Table("id", "state", *TERMINAL_STATUSES, "unsettled", "total")
    for item in stats.get("mailings") or []:
        table.add_row(*_stats_cells(str(item.get("id")), str(item.get("state")), item))
    totals = stats.get("totals") or {}
    table.add_section()
    table.add_row(*_stats_cells(f"all {totals.get('mailings', 0)}", "", totals), style="bold")
    out.print(table)


def _stats_cells(label: str, state: str, counts: Mapping[str, Any]) -> list[str]:
    by_status: Mapping[str, int] = counts.get("by_status") or {}
    total = int(counts.get("total", 0))
    terminal = [str(by_status.get(status, 0)) for status in TERMINAL_STATUSES]
    return [label, state, *terminal, str(total - done_of(counts)), str(total)]
