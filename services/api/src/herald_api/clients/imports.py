"""Bulk import input: a streamed CSV or NDJSON body turned into COPY text, row by row.

Each format only reads its rows into one shape (``Record``); all of them are then checked
with exactly the rules of ``ClientCreate``: one fast path covers valid rows, and any row it
refuses is run through ``ClientCreate`` itself, so the reasons are the API's own. Nothing here
touches the database; ``service.import_clients`` writes what this yields.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from enum import StrEnum
from typing import Any, ClassVar

import orjson
from pydantic import ValidationError

from herald_api.clients.schemas import ClientCreate, ImportRowError
from herald_api.validation import (
    MAX_TAG_LENGTH,
    OPERATOR_CODE_PATTERN,
    PHONE_PATTERN,
    known_timezones,
)
from herald_common.errors import HeraldError
from herald_common.rules.audience import default_operator_code

MAX_REPORTED = 100
BLOCK_BYTES = 1 << 18  # validated and sent to COPY this much at a time: ~10 ms of the loop
CSV_COLUMNS = ("phone", "timezone", "tag", "operator_code")
REQUIRED_COLUMNS = ("phone", "timezone")

_is_phone = re.compile(PHONE_PATTERN).fullmatch
_is_operator_code = re.compile(OPERATOR_CODE_PATTERN).fullmatch
# COPY's text format: backslash escapes for the characters that delimit fields and rows.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NUL_REASON = "must not contain NUL characters"
_JSON_KEYS = frozenset(ClientCreate.model_fields)
_HINT = "a header row names the columns: phone, timezone and optionally tag, operator_code"


class ImportFormat(StrEnum):
    CSV = "text/csv"
    NDJSON = "application/x-ndjson"


# A file of either format, told apart by its first character (see detect_format): the one
# body type that client generators (openapi-python-client, openapi-generator) all send.
OCTET_STREAM = "application/octet-stream"
ACCEPTED_TYPES = (*ImportFormat, OCTET_STREAM)


class OnDuplicate(StrEnum):
    """What to do with a row whose phone a live client already has."""

    UPDATE = "update"
    SKIP = "skip"
    REJECT = "reject"


class ImportRefused(HeraldError):
    """A bulk import refused as a whole: nothing was written."""

    status_code = 400


class UnsupportedFormat(ImportRefused):
    code = "unsupported_media_type"
    status_code = 415

    def __init__(self, content_type: str) -> None:
        accepted = ", ".join(ACCEPTED_TYPES)
        super().__init__(f"content type {content_type!r} is not accepted; send {accepted}")


class UnsupportedEncoding(ImportRefused):
    code = "unsupported_media_type"
    status_code = 415

    def __init__(self, encoding: str) -> None:
        super().__init__(f"content encoding {encoding!r} is not accepted; send the file as is")


class ImportTooLarge(ImportRefused):
    code = "content_too_large"
    status_code = 413

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the file is larger than {max_bytes} bytes (HERALD_IMPORT_MAX_BYTES)")
        self.max_bytes = max_bytes


class InvalidRows(ImportRefused):
    code = "invalid_rows"
    status_code = 422

    def __init__(self, errors: list[ImportRowError], error_count: int) -> None:
        noun = "error" if error_count == 1 else "errors"
        super().__init__(f"{error_count} {noun} in the file; nothing was imported")
        self.errors = errors
        self.error_count = error_count

    def details(self) -> dict[str, Any]:
        return {
            "error_count": self.error_count,
            "errors": [error.model_dump() for error in self.errors],
        }


class PhonesExist(ImportRefused):
    code = "phones_exist"
    status_code = 409

    def __init__(self, phones: list[str], existing_count: int) -> None:
        super().__init__(
            f"{existing_count} phone(s) of the file already belong to live clients "
            "(on_duplicate=reject); nothing was imported"
        )
        self.phones = phones
        self.existing_count = existing_count

    def details(self) -> dict[str, Any]:
        return {"existing_count": self.existing_count, "phones": self.phones}


def import_format(
    content_type: str | None, content_encoding: str | None = None
) -> ImportFormat | None:
    """The format a Content-Type names, None for ``application/octet-stream`` (either, to be
    told by ``detect_format``); a charset other than UTF-8 and any compression refused."""
    if content_encoding and content_encoding.strip().lower() != "identity":
        raise UnsupportedEncoding(content_encoding)
    media_type, *params = (part.strip() for part in (content_type or "").split(";"))
    charsets = {
        value.strip('"').lower()
        for key, _, value in (param.partition("=") for param in params)
        if key.strip().lower() == "charset"
    }
    if media_type.lower() not in ACCEPTED_TYPES or not charsets <= {"utf-8", "utf8", "us-ascii"}:
        raise UnsupportedFormat(content_type or "")
    return None if media_type.lower() == OCTET_STREAM else ImportFormat(media_type.lower())


async def detect_format(chunks: AsyncIterable[bytes]) -> tuple[ImportFormat, AsyncIterator[bytes]]:
    """The format of a body sent as ``application/octet-stream``, and the whole body again.

    NDJSON when its first character other than a byte-order mark and white space is ``{``
    (a line of NDJSON is an object), CSV otherwise (its header row names the columns). At most
    the first ``BLOCK_BYTES`` are looked at (a body blank that far is read as CSV)."""
    stream = aiter(chunks)
    head: list[bytes] = []
    fmt, size, rest = ImportFormat.CSV, 0, b""
    while size < BLOCK_BYTES and (chunk := await anext(stream, None)) is not None:
        head.append(chunk)
        size += len(chunk)
        rest += chunk
        if codecs.BOM_UTF8.startswith(rest):
            continue  # nothing yet, or part of a byte-order mark
        rest = rest.removeprefix(codecs.BOM_UTF8).lstrip()
        if rest:
            fmt = ImportFormat.NDJSON if rest.startswith(b"{") else ImportFormat.CSV
            break

    async def whole() -> AsyncIterator[bytes]:
        for chunk in head:
            yield chunk
        async for chunk in stream:
            yield chunk

    return fmt, whole()


class ErrorReport:
    """The first ``MAX_REPORTED`` errors by line, and how many there are in all."""

    def __init__(self) -> None:
        self.count = 0
        self._kept: list[tuple[int, str | None, str]] = []

    def add(self, line: int, field: str | None, reason: str) -> None:
        self.count += 1
        self._kept.append((line, field, reason))
        if len(self._kept) >= 10 * MAX_REPORTED:
            self._trim()

    def count_more(self, count: int) -> None:
        """Errors found beyond the first ones, counted but not described."""
        self.count += count

    def _trim(self) -> None:
        self._kept.sort(key=lambda error: error[0])
        del self._kept[MAX_REPORTED:]

    def first(self) -> list[ImportRowError]:
        self._trim()
        return [ImportRowError(line=line, field=f, reason=r) for line, f, r in self._kept]

    def refuse(self) -> InvalidRows:
        return InvalidRows(self.first(), self.count)


# One row of either format, as the shared checks take it: its line (a CSV record's first),
# phone, time zone, tag, operator code (None for the default) and, for NDJSON, the line's
# text ("" for CSV), which ``ClientCreate`` judges whole when the fast path refuses the row.
Record = tuple[int, str, str, str, str | None, str]


class ClientRows(ABC):
    """Validated rows of one uploaded file, as blocks of COPY text; errors go to ``errors``.

    Iterate it once for the COPY text of ``client_import (line, phone, operator_code, tag,
    timezone)``; then ``rows`` counts the rows read (blank lines aside), valid or not.
    Each format only reads its rows into ``Record``s; ``parse`` checks them all alike.
    """

    format: ClassVar[ImportFormat]

    def __init__(self, chunks: AsyncIterable[bytes], max_bytes: int) -> None:
        self.errors = ErrorReport()
        self.rows = 0
        self._chunks = chunks
        self._max_bytes = max_bytes
        self._timezones = known_timezones()
        self._decoded_lines = 0
        # Tags repeat a lot: each distinct valid tag is checked and escaped once.
        self._tags: dict[str, str] = {}

    async def __aiter__(self) -> AsyncIterator[str]:
        first = True
        async for block in read_blocks(self._chunks, self._max_bytes):
            if first and block.startswith(codecs.BOM_UTF8):
                block = block[len(codecs.BOM_UTF8) :]
            first = False
            data = self.parse(self._decode(block), final=False)
            if data:
                yield data
        data = self.parse("", final=True)
        if data:
            yield data

    @abstractmethod
    def records(self, text: str, *, final: bool) -> Iterator[Record]:
        """The rows of ``text`` (whole lines), counted in ``rows``; a row that cannot be read
        (malformed, the wrong number of fields) is recorded in ``errors`` instead."""

    @abstractmethod
    def client_input(self, record: Record) -> dict[str, Any] | str:
        """What ``ClientCreate`` judges for a record the fast path refused."""

    def parse(self, text: str, *, final: bool) -> str:
        """COPY text for the valid rows of ``text`` (whole lines); errors are recorded."""
        out: list[str] = []
        append = out.append
        timezones = self._timezones
        tags = self._tags
        is_phone = _is_phone
        is_code = _is_operator_code
        default_code = default_operator_code
        # The fast path: a row that plainly passes; anything else is judged by ClientCreate.
        for line, phone, timezone, tag, code, raw in self.records(text, final=final):
            if is_phone(phone) and timezone in timezones and (code is None or is_code(code)):
                escaped = tags.get(tag)
                if escaped is None:
                    escaped = self.escaped_tag(tag)
                if escaped is not None:
                    code = code or default_code(phone)
                    append(f"{line}\t{phone}\t{code}\t{escaped}\t{timezone}\n")
                    continue
            record = (line, phone, timezone, tag, code, raw)
            append(self.check(line, self.client_input(record)))
        return "".join(out)

    def _decode(self, block: bytes) -> str:
        first_line = self._decoded_lines + 1
        self._decoded_lines += block.count(b"\n")
        try:
            return block.decode()
        except UnicodeDecodeError:
            pass
        lines = block.split(b"\n")
        for index, raw in enumerate(lines):
            try:
                raw.decode()
            except UnicodeDecodeError as error:
                reason = f"not UTF-8 text (byte {raw[error.start]:#04x} at {error.start})"
                self.errors.add(first_line + index, None, reason)
                lines[index] = b""  # a blank line: skipped, the numbering kept
        return b"\n".join(lines).decode()

    def escaped_tag(self, tag: str) -> str | None:
        """The tag in COPY text format, or None when ``ClientCreate`` (or PostgreSQL) would
        refuse it."""
        if len(tag) > MAX_TAG_LENGTH or "\x00" in tag:
            return None
        escaped = tag.translate(_COPY_ESCAPES)
        if len(self._tags) < 10_000:
            self._tags[tag] = escaped
        return escaped

    def check(self, line: int, data: dict[str, Any] | str) -> str:
        """A row the fast path refused, run through ``ClientCreate``: its errors, or its row."""
        try:
            if isinstance(data, str):
                client = ClientCreate.model_validate_json(data)
            else:
                client = ClientCreate.model_validate(data)
        except ValidationError as error:
            for item in error.errors(include_url=False):
                field = str(item["loc"][0]) if item["loc"] else None
                self.errors.add(line, field, item["msg"].removeprefix("Value error, "))
            return ""
        tag = self.escaped_tag(client.tag)
        if tag is None:  # a NUL: PostgreSQL text cannot hold it
            self.errors.add(line, "tag", _NUL_REASON)
            return ""
        code = client.operator_code or default_operator_code(client.phone)
        return f"{line}\t{client.phone}\t{code}\t{tag}\t{client.timezone}\n"


class CsvRows(ClientRows):
    """CSV with a header row naming the columns (any order); RFC 4180 quoting."""

    format = ImportFormat.CSV

    def __init__(self, chunks: AsyncIterable[bytes], max_bytes: int) -> None:
        super().__init__(chunks, max_bytes)
        self._lines_done = 0  # lines before the pending text
        self._pending = ""  # the start of a record whose end is in the next block
        self._columns: dict[str, int] | None = None

    def records(self, text: str, *, final: bool) -> Iterator[Record]:
        lines = io.StringIO(self._pending + text, newline="\n").readlines()
        if not lines and final and self._columns is None:
            self.errors.add(1, None, f"the file is empty; {_HINT}")
            raise self.errors.refuse()
        reader = csv.reader(lines, strict=True)
        base = self._lines_done
        done = 0  # lines of ``lines`` read as whole records
        rows = 0
        while True:
            try:
                if self._columns is None:
                    header = next(reader, None)
                    if header is None:
                        break
                    self._columns = self._read_header(header, base + done + 1)
                    done = reader.line_num
                columns = self._columns
                width = len(columns)
                i_phone = columns["phone"]
                i_timezone = columns["timezone"]
                i_tag = columns.get("tag", -1)
                i_code = columns.get("operator_code", -1)
                for row in reader:
                    line = base + done + 1
                    done = reader.line_num
                    if not row:
                        continue  # a blank line
                    rows += 1
                    if len(row) != width:
                        self.errors.add(
                            line, None, f"{len(row)} fields where the header has {width}"
                        )
                        continue
                    yield (
                        line,
                        row[i_phone],
                        row[i_timezone],
                        row[i_tag] if i_tag >= 0 else "",
                        # An empty cell means "the default", as an absent column does.
                        (row[i_code] or None) if i_code >= 0 else None,
                        "",
                    )
                break
            except csv.Error as error:
                if reader.line_num == len(lines) and not final:
                    break  # the block ends inside a quoted field: read it with the next one
                self.errors.add(base + done + 1, None, f"malformed CSV: {error}")
                if self._columns is None:
                    raise self.errors.refuse() from None
                rows += 1
                done = reader.line_num
        self.rows += rows
        self._pending = "".join(lines[done:])
        self._lines_done = base + done

    def client_input(self, record: Record) -> dict[str, Any]:
        _, phone, timezone, tag, code, _ = record
        data = {"phone": phone, "timezone": timezone}
        if self._columns is not None and "tag" in self._columns:
            data["tag"] = tag
        if code is not None:
            data["operator_code"] = code
        return data

    def _read_header(self, header: list[str], line: int) -> dict[str, int]:
        columns: dict[str, int] = {}
        for index, raw in enumerate(header):
            name = raw.strip()
            if name not in CSV_COLUMNS:
                self.errors.add(line, name or None, f"unknown column {raw!r}; {_HINT}")
            elif name in columns:
                self.errors.add(line, name, "the column appears twice")
            else:
                columns[name] = index
        for name in REQUIRED_COLUMNS:
            if name not in columns:
                self.errors.add(line, name, f"required column missing; {_HINT}")
        if self.errors.count:
            raise self.errors.refuse()
        return columns


class NdjsonRows(ClientRows):
    """One JSON object per line with the keys of ``ClientCreate``; blank lines ignored."""

    format = ImportFormat.NDJSON

    def __init__(self, chunks: AsyncIterable[bytes], max_bytes: int) -> None:
        super().__init__(chunks, max_bytes)
        self._lines_done = 0

    def records(self, text: str, *, final: bool) -> Iterator[Record]:
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        loads = orjson.loads
        rows = 0
        for line, raw in enumerate(lines, start=self._lines_done + 1):
            try:
                obj = loads(raw)
            except orjson.JSONDecodeError:
                if not raw or raw.isspace():
                    continue  # a blank line
                obj = None
            rows += 1
            if type(obj) is dict and obj.keys() <= _JSON_KEYS:
                phone = obj.get("phone")
                timezone = obj.get("timezone")
                tag = obj.get("tag", "")
                code = obj.get("operator_code")
                if (
                    type(phone) is str
                    and type(timezone) is str
                    and type(tag) is str
                    and (code is None or type(code) is str)
                ):
                    yield line, phone, timezone, tag, code, raw
                    continue
            # Not an object of strings: no phone for the fast path, the line for ClientCreate.
            yield line, "", "", "", None, raw
        self.rows += rows
        self._lines_done += len(lines)

    def client_input(self, record: Record) -> str:
        return record[5]


async def read_rows(
    fmt: ImportFormat | None, chunks: AsyncIterable[bytes], max_bytes: int
) -> ClientRows:
    """The rows of a body in ``fmt`` (told by ``detect_format`` when None); iterate for COPY
    text, then read ``errors`` and ``rows``."""
    if fmt is None:
        fmt, chunks = await detect_format(chunks)
    kind = CsvRows if fmt is ImportFormat.CSV else NdjsonRows
    return kind(chunks, max_bytes)


async def read_blocks(chunks: AsyncIterable[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """Blocks of whole lines of about ``BLOCK_BYTES``; the last one may lack its newline.

    Raises ``ImportTooLarge`` once more than ``max_bytes`` arrived.
    """
    buffer = bytearray()
    received = 0
    lines = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > max_bytes:
            raise ImportTooLarge(max_bytes)
        buffer += chunk
        if len(buffer) < BLOCK_BYTES:
            continue
        cut = buffer.rfind(b"\n") + 1
        if cut == 0:  # a valid row is < 200 bytes: this bounds the memory a broken file takes
            reason = f"no line break in {BLOCK_BYTES} bytes"
            raise InvalidRows([ImportRowError(line=lines + 1, field=None, reason=reason)], 1)
        block = bytes(buffer[:cut])
        del buffer[:cut]
        lines += block.count(b"\n")
        yield block
    if buffer:
        yield bytes(buffer)
