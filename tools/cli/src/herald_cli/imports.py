"""Which format a bulk import file is in, and what its progress says: pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class ImportFormat(StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"

    @property
    def content_type(self) -> str:
        return {"csv": "text/csv", "ndjson": "application/x-ndjson"}[self.value]


SUFFIXES = {
    ".csv": ImportFormat.CSV,
    ".ndjson": ImportFormat.NDJSON,
    ".jsonl": ImportFormat.NDJSON,
}


def detect_format(filename: str, given: ImportFormat | None) -> ImportFormat:
    """``--format`` if given, else the file's extension; standard input (``-``) needs
    ``--format``."""
    if given is not None:
        return given
    if filename == "-":
        raise ValueError("reading standard input: say which format with --format csv|ndjson")
    lowered = filename.lower()
    for suffix, fmt in SUFFIXES.items():
        if lowered.endswith(suffix):
            return fmt
    known = ", ".join(SUFFIXES)
    raise ValueError(
        f"cannot tell the format of {filename!r} from its extension ({known}): "
        "use --format csv|ndjson"
    )


def describe_import(result: Mapping[str, object], source: str) -> str:
    """``{"created", "updated", "skipped", "total"}`` in a sentence."""
    return (
        f"imported {source}: {result.get('total')} rows, {result.get('created')} created, "
        f"{result.get('updated')} updated, {result.get('skipped')} skipped"
    )
