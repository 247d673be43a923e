"""What can end a command early, its exit code, and the API's error bodies put into words.

    CliError            any failure a command reports in words (never a traceback)
    ├── UsageProblem    bad local input: flags, a file that cannot be read      exit 2
    ├── ApiError        the API answered with an error status
    │   ├── (4xx)       the API refused the request                             exit 1
    │   ├── (404)       no such client or mailing                               exit 3
    │   └── (5xx)       the API failed                                          exit 4
    ├── ApiUnavailable  no answer: refused connection, timeout, not Herald       exit 4
    │                   (a 404 for a path the API does not have: a wrong URL)
    └── WatchTimeout    ``mailings watch`` gave up before the mailing settled   exit 5

The API's error bodies (services/api/src/herald_api/errors.py) come in three shapes, each
turned into lines that name the field and the reason:

- ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``: bad input (422);
- ``{"detail": "...", "code": "...", ...}``: a business error, with extra fields for some
  (an import's ``errors`` by line, ``phones`` of ``on_duplicate=reject``);
- anything else (a proxy's HTML page): its status and first line.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any

# Of the (up to 100) phones a refused `on_duplicate=reject` import lists, shown this many.
SHOWN_PHONES = 20


class ExitCode(IntEnum):
    OK = 0
    REFUSED = 1  # the API refused the request (4xx but 404)
    USAGE = 2  # bad flags or local input; Typer's own usage errors exit 2 as well
    NOT_FOUND = 3
    UNAVAILABLE = 4  # cannot reach the API, or it failed (5xx)
    TIMEOUT = 5  # `mailings watch --timeout` ran out


class CliError(Exception):
    exit_code: ExitCode = ExitCode.REFUSED

    def __init__(self, *lines: str) -> None:
        super().__init__(lines[0] if lines else "")
        self.lines: list[str] = list(lines)


class UsageProblem(CliError):
    exit_code = ExitCode.USAGE


class ApiUnavailable(CliError):
    exit_code = ExitCode.UNAVAILABLE


class WatchTimeout(CliError):
    exit_code = ExitCode.TIMEOUT


class ApiError(CliError):
    def __init__(self, status: int, body: object) -> None:
        super().__init__(*describe_error(status, body))
        self.status = status
        self.body = body
        self.exit_code = exit_code_for_status(status)


def exit_code_for_status(status: int) -> ExitCode:
    if status == 404:
        return ExitCode.NOT_FOUND
    if status >= 500:
        return ExitCode.UNAVAILABLE
    return ExitCode.REFUSED


def names_missing_entity(body: object) -> bool:
    """Whether a 404's body is Herald's "no such client/mailing". A path the API does not
    have at all (a wrong --api-url, another server) answers Starlette's bare "Not Found", or
    no JSON: that is exit 4, not "no such mailing", which a script would act on."""
    return (
        isinstance(body, dict)
        and body.get("code") == "not_found"
        and isinstance(body.get("detail"), str)
        and body["detail"] != "Not Found"
    )


def field_name(loc: Sequence[object]) -> str:
    """A 422's ``loc`` as a person names it: ``["body", "filter", "tags", 0]`` is
    ``filter.tags[0]``, ``["query", "limit"]`` is ``limit (query parameter)``."""
    where, *path = loc or ["body"]
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    if where == "body":
        return name or "the body"
    if where in ("query", "path", "header"):
        kind = {"query": "query parameter", "path": "path parameter", "header": "header"}[where]
        return f"{name} ({kind})" if name else kind
    return ".".join(str(part) for part in loc)


def describe_error(status: int, body: object) -> list[str]:
    """Lines saying why the API answered ``status``: the first sums up, the rest are details."""
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        return [_summary(status, None), *_field_lines(body["detail"])]
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        lines = [_summary(status, body["detail"], body.get("code"))]
        if body.get("code") == "invalid_rows":
            lines += _row_lines(body)
        elif isinstance(body.get("phones"), list):
            lines += _phone_lines(body)
        if status == 401:
            lines.append(
                "set HERALD_API_TOKEN or pass --token (under `make run`: .herald/api-token)"
            )
        return lines
    text = body.strip() if isinstance(body, str) else ""
    first = text.splitlines()[0][:200] if text else "(no readable body)"
    return [f"the API answered HTTP {status}, not one of its JSON errors: {first}"]


def _summary(status: int, reason: str | None, code: object = None) -> str:
    """``reason`` None: the reasons follow, one line each."""
    label = f"{status} {code}" if code else str(status)
    if status == 404:
        what = f"not found ({label})"
    elif status >= 500:
        what = f"the API failed ({label})"
    else:
        what = f"the API refused the request ({label})"
    return f"{what}: {reason}" if reason is not None else f"{what}:"


def _field_lines(entries: list[Any]) -> list[str]:
    lines = []
    for entry in entries:
        if isinstance(entry, dict):
            loc = entry.get("loc")
            where = field_name(loc if isinstance(loc, list) else [])
            lines.append(f"  {where}: {entry.get('msg', '')}")
        else:
            lines.append(f"  {entry}")
    return lines


def _row_lines(body: dict[str, Any]) -> list[str]:
    errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
    lines = []
    for error in errors:
        field = error.get("field")
        where = f"line {error.get('line')}" + (f", {field}" if field else "")
        lines.append(f"  {where}: {error.get('reason', '')}")
    total = body.get("error_count")
    if isinstance(total, int) and total > len(errors):
        lines.append(
            f"  … and {total - len(errors)} more (the API reports the first {len(errors)})"
        )
    return lines


def _phone_lines(body: dict[str, Any]) -> list[str]:
    phones = [str(p) for p in body["phones"]]
    lines = [f"  {phone}" for phone in phones[:SHOWN_PHONES]]
    total = body.get("existing_count")
    count = total if isinstance(total, int) else len(phones)
    if count > len(lines):
        lines.append(f"  … {count} in all")
    return lines
