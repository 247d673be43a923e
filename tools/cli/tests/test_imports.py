"""An import file's format: --format first, then the extension."""

from __future__ import annotations

import pytest

from herald_cli.imports import ImportFormat, describe_import, detect_format


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("clients.csv", ImportFormat.CSV),
        ("CLIENTS.CSV", ImportFormat.CSV),
        ("dir.v2/clients.ndjson", ImportFormat.NDJSON),
        ("clients.jsonl", ImportFormat.NDJSON),
    ],
)
def test_the_extension_tells_the_format(name: str, fmt: ImportFormat) -> None:
    assert detect_format(name, None) == fmt


def test_the_format_option_wins_over_the_extension() -> None:
    assert detect_format("export.csv", ImportFormat.NDJSON) == ImportFormat.NDJSON
    assert detect_format("-", ImportFormat.CSV) == ImportFormat.CSV


@pytest.mark.parametrize("name", ["clients.txt", "clients", "clients.csv.gz", "-"])
def test_without_a_known_extension_the_format_must_be_given(name: str) -> None:
    with pytest.raises(ValueError, match="--format csv"):
        detect_format(name, None)


def test_each_format_has_the_content_type_the_api_takes() -> None:
    assert ImportFormat.CSV.content_type == "text/csv"
    assert ImportFormat.NDJSON.content_type == "application/x-ndjson"


def test_a_result_reads_as_a_sentence() -> None:
    result = {"created": 2, "updated": 1, "skipped": 0, "total": 3}
    assert describe_import(result, "c.csv") == (
        "imported c.csv: 3 rows, 2 created, 1 updated, 0 skipped"
    )
