"""The reporter as a real process: today's report goes out at once when its time has passed,
and a restarted reporter sends nothing more (the database remembers the day)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from herald_common.migrate import upgrade
from herald_devstack.admin import DatabaseAdmin
from herald_devstack.probes import free_port
from herald_devstack.processes import ProcessGroup
from herald_devstack.smtp_sink import SmtpSink
from herald_testing.stack import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def database(postgres_server: DatabaseAdmin) -> Iterator[str]:
    name = f"e2e_reporter_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(name)
    url = postgres_server.url(name)
    upgrade(url)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


def last_sent_gauge(port: int) -> float | None:
    """The restarted reporter's view of the latest report, once its first round is done."""
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    for line in body.splitlines():
        if line.startswith("herald_reporter_last_sent_timestamp_seconds "):
            return float(line.split()[1]) or None
    return None


def test_reporter_sends_todays_report_once_across_a_restart(database: str, tmp_path: Path) -> None:
    # Today's report covers the 24 hours up to today's 00:00 UTC: a mailing across it counts.
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with psycopg.connect(database) as conn:
        mailing_id = conn.execute(
            "INSERT INTO mailing (starts_at, ends_at, text) VALUES (%s, %s, 'e2e <report>') "
            "RETURNING id",
            (midnight - timedelta(hours=1), midnight + timedelta(hours=1)),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO client (phone, operator_code, timezone) "
            "VALUES ('79000000001', '900', 'UTC')"
        )
        conn.execute(
            "INSERT INTO message (mailing_id, client_id, status) SELECT %s, id, 'sent' FROM client",
            (mailing_id,),
        )
    metrics_port = free_port()
    script = str(Path(sys.executable).with_name("herald-reporter"))
    with SmtpSink(free_port()) as smtp, ProcessGroup(log_dir=tmp_path / "logs") as group:
        env = {
            "HERALD_DATABASE_URL": database,
            # 00:00 UTC has always passed today: today's report is due the moment it starts.
            "HERALD_REPORT_TIME": "00:00",
            "HERALD_REPORT_TIMEZONE": "UTC",
            "HERALD_REPORT_RECIPIENTS": "ops@example.com",
            "HERALD_REPORT_FROM": "herald@example.com",
            "HERALD_SMTP_HOST": "127.0.0.1",
            "HERALD_SMTP_PORT": str(smtp.port),
            "HERALD_REPORT_POLL_INTERVAL_S": "0.2",
            "HERALD_METRICS_PORT": str(metrics_port),
            "HERALD_SERVICE_INSTANCE": "reporter-e2e",
        }
        day_before = datetime.now(UTC).date()
        first = group.start("reporter-1", [script], env=env)
        first.wait_for_line("reporter_started", timeout=30)

        [mail] = smtp.wait_for(1, timeout=15)
        day_after = datetime.now(UTC).date()
        report_day = mail.message["X-Herald-Report-Day"]
        assert report_day in {day_before.isoformat(), day_after.isoformat()}
        assert report_day in mail.message["Subject"]
        assert mail.rcpt_tos == ("ops@example.com",)
        sent_line = first.wait_for_line('"report_sent"', timeout=5)
        assert f'"report_day":"{report_day}"' in sent_line.replace(" ", "")
        first.wait_for_line(f'"mailing_id":{mailing_id}', timeout=5)
        html = mail.message.get_body(("html",))
        assert html is not None
        assert "e2e &lt;report&gt;" in str(html.get_content())

        assert first.terminate(timeout=15) == 0
        assert "reporter_stopped" in first.output()

        second = group.start("reporter-2", [script], env=env)
        second.wait_for_line("reporter_started", timeout=30)
        # Its first round is over once it has read the latest sent report from the database.
        wait_until(lambda: last_sent_gauge(metrics_port), timeout=15, what="a reporter round")
        smtp_count_after_round = len(smtp.received)
        assert second.terminate(timeout=15) == 0

    assert smtp_count_after_round == 1
    assert '"report_sent"' not in second.output()
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT report_day, status, attempts FROM daily_report").fetchall()
    assert [(str(d), s, a) for d, s, a in rows] == [(report_day, "sent", 1)]
