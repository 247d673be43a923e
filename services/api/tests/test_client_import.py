"""POST /api/v1/clients/import: CSV and NDJSON files, refused whole on any error, three
duplicate modes, limits, and a 50,000-row file."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_api.clients import imports
from herald_api.clients.imports import CsvRows, NdjsonRows
from herald_api.main import create_app
from herald_api.settings import ApiSettings
from herald_testing.factories import insert_clients, insert_mailing, utcnow

from .conftest import TOKEN, count_rows

IMPORT = "/api/v1/clients/import"
CSV = {"Content-Type": "text/csv"}
NDJSON = {"Content-Type": "application/x-ndjson"}


async def post_csv(api: httpx.AsyncClient, body: str | bytes, **params: str) -> httpx.Response:
    return await api.post(IMPORT, content=body, headers=CSV, params=params)


async def post_ndjson(api: httpx.AsyncClient, lines: Iterable[Any]) -> httpx.Response:
    body = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    return await api.post(IMPORT, content=body, headers=NDJSON)


async def clients_by_phone(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT phone, operator_code, tag, timezone, deleted_at FROM client "
                "WHERE deleted_at IS NULL"
            )
        )
        return {row.phone: dict(row._mapping) for row in rows}


def errors_of(response: httpx.Response) -> list[tuple[int, str | None]]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_rows"
    for error in body["errors"]:
        assert error["reason"], error
    return [(error["line"], error["field"]) for error in body["errors"]]


# --- happy paths ---------------------------------------------------------------------------


async def test_csv_creates_clients_with_the_operator_code_from_the_phone(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    body = "phone,timezone,tag\n79161234567,Europe/Moscow,vip\n79031234567,Asia/Vladivostok,\n"

    response = await post_csv(api, body)

    assert response.status_code == 200, response.text
    assert response.json() == {"created": 2, "updated": 0, "skipped": 0, "total": 2}
    listed = (await api.get("/api/v1/clients", params={"phone": "79161234567"})).json()
    assert [(c["operator_code"], c["tag"], c["timezone"]) for c in listed["items"]] == [
        ("916", "vip", "Europe/Moscow")
    ]
    stored = await clients_by_phone(clean_engine)
    assert stored["79031234567"]["operator_code"] == "903"
    assert stored["79031234567"]["tag"] == ""


async def test_csv_columns_in_any_order_with_optional_ones_absent_or_empty(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    with_code = "operator_code,timezone,phone\n999,UTC,79001110001\n,UTC,79161110002\n"
    without_tag = "timezone,phone\nEurope/Moscow,79031110003\n"

    first = await post_csv(api, with_code)
    second = await post_csv(api, without_tag)

    assert first.json()["created"] == 2, first.text
    assert second.json()["created"] == 1, second.text
    stored = await clients_by_phone(clean_engine)
    assert stored["79001110001"]["operator_code"] == "999"
    assert stored["79161110002"]["operator_code"] == "916"  # empty cell: the default
    assert stored["79031110003"]["operator_code"] == "903"
    assert {c["tag"] for c in stored.values()} == {""}


async def test_csv_quoting_crlf_bom_and_blank_lines(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    body = (
        '\ufeffphone,tag,timezone\r\n79001110001,"a, b",UTC\r\n\r\n'
        '79001110002,"say ""hi""\tnow\\",UTC\r\n79001110003,"two\nlines",UTC'
    ).encode()

    response = await post_csv(api, body)

    assert response.status_code == 200, response.text
    assert response.json()["created"] == 3
    stored = await clients_by_phone(clean_engine)
    assert stored["79001110001"]["tag"] == "a, b"
    assert stored["79001110002"]["tag"] == 'say "hi"\tnow\\'
    assert stored["79001110003"]["tag"] == "two\nlines"


async def test_ndjson_with_and_without_optional_keys(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    lines = [
        {"phone": "79161234567", "timezone": "Europe/Moscow", "tag": "vip"},
        "",
        {"phone": "79031234567", "timezone": "UTC", "operator_code": "777"},
        {"phone": "79001234567", "timezone": "UTC", "operator_code": None, "tag": "ü ✓"},
        "   ",
    ]

    response = await post_ndjson(api, lines)

    assert response.status_code == 200, response.text
    assert response.json() == {"created": 3, "updated": 0, "skipped": 0, "total": 3}
    stored = await clients_by_phone(clean_engine)
    assert stored["79161234567"]["operator_code"] == "916"
    assert stored["79031234567"]["operator_code"] == "777"
    assert stored["79031234567"]["tag"] == ""
    assert stored["79001234567"]["tag"] == "ü ✓"
    assert stored["79001234567"]["operator_code"] == "900"


async def test_a_file_of_only_a_header_imports_nothing(api: httpx.AsyncClient) -> None:
    response = await post_csv(api, "phone,timezone\n")

    assert response.status_code == 200
    assert response.json() == {"created": 0, "updated": 0, "skipped": 0, "total": 0}


async def test_one_clients_imported_line_is_logged_after_the_commit(
    api: httpx.AsyncClient,
) -> None:
    with structlog.testing.capture_logs() as logs:
        response = await post_csv(api, "phone,timezone\n79001110001,UTC\n79001110002,UTC\n")

    assert response.status_code == 200
    imported = [line for line in logs if line["event"] == "clients_imported"]
    assert len(imported) == 1
    assert imported[0]["created"] == 2
    assert imported[0]["total"] == 2
    assert imported[0]["duration_ms"] >= 0
    assert len(logs) < 5  # nothing per row


# --- errors: the file is refused whole -----------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("phone,timezone,colour", [(1, "colour")]),
        ("phone,tag", [(1, "timezone")]),
        ("tag,operator_code", [(1, "phone"), (1, "timezone")]),
        ("phone,timezone,phone", [(1, "phone")]),
        ("", [(1, None)]),
    ],
)
async def test_header_errors_name_line_1_and_the_column(
    api: httpx.AsyncClient,
    clean_engine: AsyncEngine,
    header: str,
    expected: list[tuple[int, str | None]],
) -> None:
    response = await post_csv(api, f"{header}\n79001110001,UTC,x\n" if header else "")

    assert errors_of(response) == expected
    assert response.json()["error_count"] == len(expected)
    assert await count_rows(clean_engine, "client") == 0


async def test_csv_field_errors_are_named_by_line_and_nothing_is_written(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    body = "\n".join(
        [
            "phone,timezone,tag,operator_code",
            "79001110001,UTC,ok,",  # 2: fine
            "89001110002,UTC,,",  # 3: phone
            "7900111000,UTC,,",  # 4: phone (10 digits)
            "79001110004,Mars/Olympus,,",  # 5: timezone
            "79001110005,UTC," + "x" * 65 + ",",  # 6: tag
            "79001110006,UTC,,12a",  # 7: operator_code
            "79001110007,UTC",  # 8: fields
            '79001110008,UTC,"a"b,',  # 9: quoting
            "79001110009,UTC,nul\x00,",  # 10: NUL in tag
            "79001110010,UTC,fine,123",  # 11: fine
        ]
    )

    response = await post_csv(api, body)

    assert errors_of(response) == [
        (3, "phone"),
        (4, "phone"),
        (5, "timezone"),
        (6, "tag"),
        (7, "operator_code"),
        (8, None),
        (9, None),
        (10, "tag"),
    ]
    assert response.json()["error_count"] == 8
    assert "Mars/Olympus" in response.json()["errors"][2]["reason"]
    assert await count_rows(clean_engine, "client") == 0


async def test_ndjson_field_errors_are_named_by_line(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    lines = [
        {"phone": "79001110001", "timezone": "UTC"},
        "{not json",
        {"phone": 79001110003, "timezone": "UTC"},
        {"phone": "79001110004", "timezone": "UTC", "colour": "red"},
        '["79001110005", "UTC"]',
        {"phone": "79001110006"},
        "",
        {"phone": "79001110008", "timezone": "UTC", "tag": None},
    ]

    response = await post_ndjson(api, lines)

    assert errors_of(response) == [
        (2, None),
        (3, "phone"),
        (4, "colour"),
        (5, None),
        (6, "timezone"),
        (8, "tag"),
    ]
    assert await count_rows(clean_engine, "client") == 0


async def test_bytes_that_are_not_utf8_are_an_error_of_their_line(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    body = b"phone,timezone,tag\n79001110001,UTC,ok\n79001110002,UTC,caf\xe9\n"

    response = await post_csv(api, body)

    assert errors_of(response) == [(3, None)]
    assert await count_rows(clean_engine, "client") == 0


async def test_phones_twice_in_the_file_name_both_lines(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    body = "phone,timezone\n79001110001,UTC\n79001110002,UTC\n79001110001,UTC\n79001110001,UTC\n"

    response = await post_csv(api, body, on_duplicate="skip")

    assert errors_of(response) == [(4, "phone"), (5, "phone")]
    assert "line 2" in response.json()["errors"][0]["reason"]
    assert await count_rows(clean_engine, "client") == 0


async def test_only_the_first_100_errors_are_listed_with_the_total(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    rows = [f"{79001110000 + i},UTC" if i % 2 else f"{79001110000 + i},Nowhere" for i in range(300)]
    duplicate = "79001110001,UTC"  # also on line 3

    response = await post_csv(api, "\n".join(["phone,timezone", *rows, duplicate]))

    errors = errors_of(response)
    assert response.json()["error_count"] == 151
    assert len(errors) == 100
    assert errors == [(line, "timezone") for line in range(2, 202, 2)]
    assert await count_rows(clean_engine, "client") == 0


async def test_an_error_after_many_valid_rows_rolls_everything_back(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    rows = [f"{79100000000 + i},UTC" for i in range(30_000)]

    response = await post_csv(api, "\n".join(["phone,timezone", *rows, "79,UTC"]))

    assert errors_of(response) == [(30_002, "phone")]
    assert await count_rows(clean_engine, "client") == 0


# --- phones of existing clients ------------------------------------------------------------


async def seed(engine: AsyncEngine) -> None:
    """79001110001 (tag old, Europe/Moscow, code 900) and a deleted client on 79001110003."""
    async with engine.begin() as conn:
        await insert_clients(conn, 1, first_phone=79001110001, tag="old", operator_code="900")
        await insert_clients(conn, 1, first_phone=79001110002, tag="same", timezone="UTC")
        await insert_clients(conn, 1, first_phone=79001110003, tag="gone")
        await conn.execute(text("UPDATE client SET deleted_at = now() WHERE tag = 'gone'"))


FILE = (
    "phone,timezone,tag\n"
    "79001110001,Asia/Tokyo,new\n"  # live, different
    "79001110002,UTC,same\n"  # live, identical
    "79001110003,UTC,back\n"  # a deleted client's phone: free
    "79001110004,UTC,fresh\n"
)


async def test_update_overwrites_live_clients_and_counts_identical_rows_as_skipped(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    await seed(clean_engine)

    response = await post_csv(api, FILE)

    assert response.status_code == 200, response.text
    assert response.json() == {"created": 2, "updated": 1, "skipped": 1, "total": 4}
    stored = await clients_by_phone(clean_engine)
    assert stored["79001110001"]["tag"] == "new"
    assert stored["79001110001"]["timezone"] == "Asia/Tokyo"
    assert stored["79001110001"]["operator_code"] == "900"  # the default from the phone
    assert stored["79001110003"]["tag"] == "back"
    assert await count_rows(clean_engine, "client") == 5  # the deleted one stays


async def test_skip_leaves_live_clients_alone(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    await seed(clean_engine)

    response = await post_csv(api, FILE, on_duplicate="skip")

    assert response.json() == {"created": 2, "updated": 0, "skipped": 2, "total": 4}
    stored = await clients_by_phone(clean_engine)
    assert stored["79001110001"]["tag"] == "old"
    assert stored["79001110001"]["timezone"] == "Europe/Moscow"
    assert stored["79001110004"]["tag"] == "fresh"


async def test_reject_is_409_listing_live_phones_and_writes_nothing(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    await seed(clean_engine)

    response = await post_csv(api, FILE, on_duplicate="reject")

    assert response.status_code == 409, response.text
    body = response.json()
    assert body["code"] == "phones_exist"
    assert body["phones"] == ["79001110001", "79001110002"]
    assert body["existing_count"] == 2
    assert await count_rows(clean_engine, "client") == 3
    assert (await clients_by_phone(clean_engine))["79001110001"]["tag"] == "old"


async def test_reject_imports_a_file_of_new_and_deleted_phones(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    await seed(clean_engine)
    body = "phone,timezone\n79001110003,UTC\n79001110005,UTC\n"

    response = await post_csv(api, body, on_duplicate="reject")

    assert response.json() == {"created": 2, "updated": 0, "skipped": 0, "total": 2}
    assert set(await clients_by_phone(clean_engine)) >= {"79001110003", "79001110005"}


async def test_an_unknown_duplicate_mode_is_422(api: httpx.AsyncClient) -> None:
    response = await post_csv(api, "phone,timezone\n", on_duplicate="merge")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "on_duplicate"]


# --- content type and size -----------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/json", "text/csv; charset=latin-1", None],
)
async def test_other_content_types_are_415(
    api: httpx.AsyncClient, clean_engine: AsyncEngine, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}

    response = await api.post(IMPORT, content=b"phone,timezone\n79001110001,UTC\n", headers=headers)

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert await count_rows(clean_engine, "client") == 0


OCTET = {"Content-Type": "application/octet-stream"}


@pytest.mark.parametrize(
    ("body", "case"),
    [
        (b"phone,timezone,tag\n79001110001,UTC,a\n79001110002,UTC,b\n", "CSV"),
        (
            b'{"phone": "79001110001", "timezone": "UTC", "tag": "a"}\n'
            b'{"phone": "79001110002", "timezone": "UTC", "tag": "b"}\n',
            "NDJSON",
        ),
        (
            b'\xef\xbb\xbf\n \r\n{"phone": "79001110001", "timezone": "UTC", "tag": "a"}\n'
            b'{"phone": "79001110002", "timezone": "UTC", "tag": "b"}\n',
            "NDJSON after a byte-order mark and blank lines",
        ),
    ],
)
async def test_an_octet_stream_is_read_as_ndjson_when_it_starts_with_a_brace_else_as_csv(
    api: httpx.AsyncClient, clean_engine: AsyncEngine, body: bytes, case: str
) -> None:
    response = await api.post(IMPORT, content=body, headers=OCTET)

    assert response.json() == {"created": 2, "updated": 0, "skipped": 0, "total": 2}, case
    listed = (await api.get("/api/v1/clients")).json()["items"]
    assert sorted((c["phone"], c["tag"]) for c in listed) == [
        ("79001110001", "a"),
        ("79001110002", "b"),
    ], case


async def test_an_octet_stream_with_bad_rows_is_refused_by_line_like_the_named_formats(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    body = b'{"phone": "79001110001", "timezone": "UTC"}\n{"phone": "1", "timezone": "UTC"}\n'

    response = await api.post(IMPORT, content=body, headers=OCTET)

    assert response.status_code == 422
    assert [(e["line"], e["field"]) for e in response.json()["errors"]] == [(2, "phone")]
    assert await count_rows(clean_engine, "client") == 0


async def test_detect_format_gives_back_every_byte_it_looked_at() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in (b"\xef\xbb", b"\xbf", b"  \n", b"\n{", b'"phone": 1}\n'):
            yield chunk

    fmt, body = await imports.detect_format(chunks())

    assert fmt is imports.ImportFormat.NDJSON
    assert b"".join([chunk async for chunk in body]) == b'\xef\xbb\xbf  \n\n{"phone": 1}\n'


async def test_a_compressed_body_is_415(api: httpx.AsyncClient) -> None:
    response = await api.post(
        IMPORT,
        content=b"\x1f\x8b\x08\x00",
        headers={**CSV, "Content-Encoding": "gzip"},
    )

    assert response.status_code == 415
    assert "gzip" in response.json()["detail"]


async def test_a_charset_parameter_of_utf8_is_accepted(api: httpx.AsyncClient) -> None:
    response = await api.post(
        IMPORT,
        content="phone,timezone\n79001110001,UTC\n",
        headers={"Content-Type": "text/csv; charset=UTF-8"},
    )

    assert response.json()["created"] == 1


async def chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_a_body_over_the_limit_is_413_with_or_without_a_length(
    app: FastAPI, api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    settings: ApiSettings = app.state.settings
    app.state.settings = settings.model_copy(update={"import_max_bytes": 1000})
    body = "\n".join(["phone,timezone"] + [f"{79001110000 + i},UTC" for i in range(100)]).encode()
    small = b"phone,timezone\n79001110001,UTC\n"

    declared = await post_csv(api, body)
    streamed = await api.post(IMPORT, content=chunks(body, 64), headers=CSV)
    fits = await api.post(IMPORT, content=chunks(small, 7), headers=CSV)

    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert streamed.json()["code"] == "content_too_large"
    assert fits.status_code == 200
    assert await count_rows(clean_engine, "client") == 1


# --- a large file --------------------------------------------------------------------------


async def test_50000_rows_import_in_seconds(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    zones = ["Europe/Moscow", "Asia/Vladivostok", "UTC", "America/New_York"]
    lines = ["tag,phone,timezone,operator_code"] + [
        f"t{i % 7},{79200000000 + i * 3},{zones[i % 4]},{'' if i % 2 else '555'}"
        for i in range(50_000)
    ]
    body = ("\n".join(lines) + "\n").encode()

    started = time.perf_counter()
    response = await api.post(IMPORT, content=chunks(body, 64 * 1024), headers=CSV)
    elapsed = time.perf_counter() - started

    assert response.status_code == 200, response.text
    assert response.json() == {"created": 50_000, "updated": 0, "skipped": 0, "total": 50_000}
    assert elapsed < 10, elapsed
    assert await count_rows(clean_engine, "client") == 50_000
    async with clean_engine.connect() as conn:
        spots = await conn.execute(
            text(
                "SELECT phone, operator_code, tag, timezone FROM client "
                "WHERE phone IN ('79200000000', '79200000003', '79200149997') ORDER BY phone"
            )
        )
        assert [tuple(row) for row in spots] == [
            ("79200000000", "555", "t0", "Europe/Moscow"),
            ("79200000003", "920", "t1", "Asia/Vladivostok"),
            ("79200149997", "920", "t5", "America/New_York"),
        ]


# --- parsing across block boundaries -------------------------------------------------------


async def test_records_and_lines_cut_anywhere_by_blocks_and_chunks_import_whole(
    api: httpx.AsyncClient, clean_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "BLOCK_BYTES", 64)  # a block ends inside most records
    rows = [f'{79300000000 + i},UTC,"tag {i}\nsecond ""line"""' for i in range(200)]
    body = "\n".join(["phone,timezone,tag", *rows, "79,UTC,x"]).encode()

    refused = await api.post(IMPORT, content=chunks(body, 7), headers=CSV)
    accepted = await api.post(IMPORT, content=chunks(body[: body.rindex(b"\n")], 5), headers=CSV)

    assert errors_of(refused) == [(402, "phone")]  # 2 lines per record after the header
    assert accepted.json()["created"] == 200, accepted.text
    stored = await clients_by_phone(clean_engine)
    assert stored["79300000199"]["tag"] == 'tag 199\nsecond "line"'


async def no_chunks() -> AsyncIterator[bytes]:
    return
    yield b""


def test_a_csv_record_cut_by_a_block_boundary_is_parsed_whole() -> None:
    rows = CsvRows(no_chunks(), 1)
    text_ = 'phone,tag,timezone\n79001110001,"one\ntwo",UTC\n79001110002,x,UTC\n'
    cut = text_.index("two")  # inside the quoted field, right after its line break

    first = rows.parse(text_[:cut], final=False)
    second = rows.parse(text_[cut:], final=True)

    assert first == ""
    assert second == "2\t79001110001\t900\tone\\ntwo\tUTC\n4\t79001110002\t900\tx\tUTC\n"
    assert rows.rows == 2
    assert rows.errors.count == 0


def test_an_unterminated_quote_at_the_end_is_an_error() -> None:
    rows = CsvRows(no_chunks(), 1)

    rows.parse('phone,tag,timezone\n79001110001,"open\n', final=False)
    rows.parse("", final=True)

    assert [(e.line, e.field) for e in rows.errors.first()] == [(2, None)]


def test_ndjson_lines_are_counted_across_blocks() -> None:
    rows = NdjsonRows(no_chunks(), 1)

    rows.parse('{"phone": "79001110001", "timezone": "UTC"}\n\n', final=False)
    rows.parse('{"phone": "7", "timezone": "UTC"}\n', final=True)

    assert [(e.line, e.field) for e in rows.errors.first()] == [(3, "phone")]


# --- documentation -------------------------------------------------------------------------


async def test_openapi_documents_the_import() -> None:
    settings = ApiSettings(
        database_url="postgresql://nobody@127.0.0.1:1/none",
        amqp_url="amqp://nobody@127.0.0.1:1/",
        api_token=SecretStr(TOKEN),
    )
    transport = httpx.ASGITransport(create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        spec = (await client.get("/openapi.json")).json()

    operation = spec["paths"][IMPORT]["post"]
    # One binary body type, which client generators handle; text/csv and NDJSON are described.
    assert set(operation["requestBody"]["content"]) == {"application/octet-stream"}
    assert {"200", "401", "409", "413", "415", "422"} <= set(operation["responses"])
    assert "on_duplicate" in {param["name"] for param in operation["parameters"]}
    for word in (
        "HERALD_IMPORT_MAX_BYTES",
        "reject",
        "skip",
        "line",
        "Example",
        "text/csv",
        "application/x-ndjson",
    ):
        assert word in operation["description"], word


async def test_an_import_that_moves_clients_to_another_zone_replans_their_deferred_messages(
    api: httpx.AsyncClient, clean_engine: AsyncEngine
) -> None:
    later = utcnow() + timedelta(hours=5)
    async with clean_engine.begin() as conn:
        moving, staying = await insert_clients(
            conn, 2, first_phone=79_161_000_000, timezone="Europe/Moscow"
        )
        mailing_id = await insert_mailing(conn)
        rows = await conn.execute(
            text(
                "INSERT INTO message (mailing_id, client_id, status, next_attempt_at) "
                "VALUES (:m, :a, 'deferred', :later), (:m, :b, 'deferred', :later) RETURNING id"
            ),
            {"m": mailing_id, "a": moving, "b": staying, "later": later},
        )
        moved_message, stayed_message = (r[0] for r in rows)

    response = await post_csv(
        api, "phone,timezone\n79161000000,Asia/Vladivostok\n79161000001,Europe/Moscow\n"
    )

    assert response.json()["updated"] == 1, response.text
    async with clean_engine.connect() as conn:
        due = dict((await conn.execute(text("SELECT id, next_attempt_at FROM message"))).all())
    assert due[moved_message] <= utcnow()
    assert due[stayed_message] == later
