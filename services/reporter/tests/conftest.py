"""Reporter test fixtures: a real database, a real SMTP server (aiosmtpd), a fixed clock."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from herald_common.statuses import ALL_STATUSES
from herald_devstack.probes import free_port
from herald_devstack.smtp_sink import SmtpSink
from herald_reporter.reporter import Reporter
from herald_reporter.settings import ReporterSettings
from herald_testing.factories import insert_clients

# 09:00 UTC is 10:00 in Berlin: the 08:00 report of 2030-03-10 (07:00 UTC) is due, the next
# one is not. Its window: [2030-03-09 07:00 UTC, 2030-03-10 07:00 UTC).
NOW = datetime(2030, 3, 10, 9, 0, tzinfo=UTC)
TODAY = date(2030, 3, 10)
WINDOW_START = datetime(2030, 3, 9, 7, 0, tzinfo=UTC)
WINDOW_END = datetime(2030, 3, 10, 7, 0, tzinfo=UTC)
RECIPIENTS = ["ops@example.com", "boss@example.org"]
STATUSES = [status.value for status in ALL_STATUSES]


MakeReporter = Callable[..., Reporter]


class Clock:
    """A clock that only moves when told to."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def make_settings(db_url: str, smtp_port: int, **overrides: object) -> ReporterSettings:
    values: dict[str, object] = {
        "database_url": db_url,
        "report_time": "08:00",
        "report_timezone": "Europe/Berlin",
        "report_recipients": ",".join(RECIPIENTS),
        "report_from": "herald@reports.example.net",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_timeout_s": 5,
        "report_retry_base_s": 60,
        "report_lease_s": 300,
        "metrics_port": 0,
        **overrides,
    }
    return ReporterSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink(free_port()) as sink:
        yield sink


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_reporter(
    clean_engine: AsyncEngine, migrated_db_url: str, smtp: SmtpSink, clock: Clock
) -> MakeReporter:
    def make(**overrides: object) -> Reporter:
        port = overrides.pop("smtp_port", smtp.port)
        settings = make_settings(migrated_db_url, port, **overrides)  # type: ignore[arg-type]
        return Reporter(clean_engine, settings, clock=clock)

    return make


# --- data ------------------------------------------------------------------------------------


_PHONES = itertools.count(79_000_000_000, 1_000)


async def add_mailing(
    conn: AsyncConnection,
    starts_at: datetime,
    ends_at: datetime,
    statuses: dict[str, int],
    text_: str = "hello",
    deleted_at: datetime | None = None,
) -> int:
    """A mailing with one client per message, ``statuses`` saying how many are in each."""
    mailing_id = await conn.scalar(
        text(
            "INSERT INTO mailing (starts_at, ends_at, text, deleted_at) "
            "VALUES (:s, :e, :t, :d) RETURNING id"
        ),
        {"s": starts_at, "e": ends_at, "t": text_, "d": deleted_at},
    )
    assert mailing_id is not None
    for status, count in statuses.items():
        client_ids = await insert_clients(conn, count, first_phone=next(_PHONES))
        await conn.execute(
            text(
                "INSERT INTO message (mailing_id, client_id, status) "
                "SELECT :m, unnest(CAST(:ids AS bigint[])), :status"
            ),
            {"m": mailing_id, "ids": client_ids, "status": status},
        )
    return int(mailing_id)


async def true_counts(conn: AsyncConnection) -> dict[int, dict[str, int]]:
    """Counted from the messages themselves, not from the counters the reporter reads."""
    counts: dict[int, dict[str, int]] = {}
    rows = await conn.execute(
        text("SELECT mailing_id, status, count(*) FROM message GROUP BY mailing_id, status")
    )
    for mailing_id, status, count in rows:
        counts.setdefault(mailing_id, dict.fromkeys(STATUSES, 0))[status] = count
    return counts


# --- reading the mail ------------------------------------------------------------------------


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML bodies of a multipart/alternative message."""
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None
    assert html is not None
    return str(plain.get_content()), str(html.get_content())


ROW = re.compile(rf"^\s*(\d+\*?)((?:\s+\d+){{{len(STATUSES) + 1}}})\s")


def text_table(body: str) -> dict[str, list[int]]:
    """The plain-text table: mailing id (``*`` when deleted) → [total, *counts by status]."""
    lines = body.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["mailing", "total"])
    assert lines[header].split()[2 : 2 + len(STATUSES)] == STATUSES
    rows: dict[str, list[int]] = {}
    for line in lines[header + 1 :]:
        match = ROW.match(line)
        if match is None:
            break
        rows[match[1]] = [int(n) for n in match[2].split()]
    return rows


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self._current: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            key = dict(attrs).get("data-mailing-id")
            self._current = [] if key else None
            if key:
                self.rows[key] = self._current  # type: ignore[assignment]
        elif tag in ("td", "th") and self._current is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._current is not None:
            self._current.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_table(body: str) -> dict[str, list[str]]:
    """The HTML table's rows by ``data-mailing-id`` (``all`` for the totals), cell texts."""
    parser = _Rows()
    parser.feed(body)
    return parser.rows
