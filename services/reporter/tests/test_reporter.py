"""The reporter on a real PostgreSQL and a real SMTP server: what the mail says, and that each
day goes out once whatever races, crashes, restarts or SMTP outages happen."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_devstack.probes import free_port
from herald_devstack.smtp_sink import SmtpSink

from .conftest import (
    NOW,
    RECIPIENTS,
    STATUSES,
    TODAY,
    WINDOW_END,
    WINDOW_START,
    Clock,
    MakeReporter,
    add_mailing,
    html_table,
    parts,
    text_table,
    true_counts,
)

HOUR = timedelta(hours=1)


async def report_rows(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT * FROM daily_report ORDER BY report_day"))
        return [dict(row._mapping) for row in rows]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_mail_reports_the_mailings_of_the_window_with_their_counters(
    clean_engine: AsyncEngine, make_reporter: MakeReporter, smtp: SmtpSink
) -> None:
    async with clean_engine.begin() as conn:
        running = await add_mailing(
            conn, WINDOW_START - HOUR, WINDOW_END + HOUR, {"sent": 3, "failed": 1, "pending": 2}
        )
        hostile = await add_mailing(
            conn,
            WINDOW_END - HOUR,
            WINDOW_END + 5 * HOUR,
            {"expired": 2, "cancelled": 1},
            text_="<script>alert(1)</script> & <b>x</b>",
        )
        deleted_inside = await add_mailing(
            conn, WINDOW_START, WINDOW_START + HOUR, {"cancelled": 4}, deleted_at=WINDOW_END - HOUR
        )
        # Outside the window: ended at its start, started at its end, deleted before it.
        await add_mailing(conn, WINDOW_START - 5 * HOUR, WINDOW_START, {"sent": 7})
        await add_mailing(conn, WINDOW_END, WINDOW_END + HOUR, {"pending": 7})
        await add_mailing(
            conn, WINDOW_START - HOUR, WINDOW_END, {"sent": 7}, deleted_at=WINDOW_START - HOUR
        )
        truth = await true_counts(conn)

    assert await make_reporter().tick() == 1

    [mail] = smtp.received
    message = mail.message
    assert sorted(mail.rcpt_tos) == sorted(RECIPIENTS)
    assert mail.mail_from == "herald@reports.example.net"
    assert message["To"] == ", ".join(RECIPIENTS)
    assert message["From"] == "herald@reports.example.net"
    assert "2030-03-10" in message["Subject"]
    assert "3 mailings, 3 of 13 messages sent" in message["Subject"]
    assert message["Date"].datetime == NOW
    assert message["Message-ID"].startswith("<herald-report.2030-03-10.")
    assert message["Message-ID"].endswith("@reports.example.net>")
    plain, html = parts(message)

    expected = {
        str(running): [6, *truth[running].values()],
        str(hostile): [3, *truth[hostile].values()],
        f"{deleted_inside}*": [4, *truth[deleted_inside].values()],
    }
    assert text_table(plain) == expected
    assert "Mailings active in the window: 3" in plain
    assert "2030-03-09 08:00 CET to 2030-03-10 08:00 CET (24 hours)" in plain
    assert "<script>alert(1)</script> & <b>x</b>" in plain  # plain text is not HTML

    rows = html_table(html)
    assert set(rows) == {str(running), str(hostile), str(deleted_inside), "all"}
    for mailing_id, counts in truth.items():
        if str(mailing_id) in rows:
            assert rows[str(mailing_id)][4:] == [str(sum(counts.values()))] + [
                str(counts[s]) for s in STATUSES
            ]
    totals = {s: sum(truth[m][s] for m in (running, hostile, deleted_inside)) for s in STATUSES}
    assert rows["all"][2:] == ["13"] + [str(totals[s]) for s in STATUSES]
    assert rows[str(hostile)][1] == "<script>alert(1)</script> & <b>x</b>"  # as text
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<b>x" not in html

    [row] = await report_rows(clean_engine)
    assert (row["report_day"], row["status"], row["recipients"]) == (TODAY, "sent", 2)
    assert (row["window_start_at"], row["window_end_at"]) == (WINDOW_START, WINDOW_END)
    assert row["sent_at"] == NOW
    assert row["message_id"] == message["Message-ID"]


async def test_a_day_without_mailings_still_gets_its_report(
    make_reporter: MakeReporter, smtp: SmtpSink
) -> None:
    assert await make_reporter().tick() == 1

    plain, _ = parts(smtp.received[0].message)
    assert "No mailing was active in the window." in plain
    assert "0 mailings, 0 of 0 messages sent" in smtp.received[0].message["Subject"]


async def test_first_start_sends_only_the_latest_day_and_a_restart_sends_nothing(
    clean_engine: AsyncEngine, make_reporter: MakeReporter, smtp: SmtpSink, clock: Clock
) -> None:
    assert await make_reporter().tick() == 1
    assert await make_reporter().tick() == 0  # a new process: the day is recorded as sent

    assert [r["report_day"] for r in await report_rows(clean_engine)] == [TODAY]
    assert len(smtp.received) == 1

    clock.advance(days=1)  # the next day's report time has passed
    assert await make_reporter().tick() == 1
    assert [m.message["X-Herald-Report-Day"] for m in smtp.received] == [
        "2030-03-10",
        "2030-03-11",
    ]


async def test_after_downtime_every_missed_day_goes_out_oldest_first(
    clean_engine: AsyncEngine, make_reporter: MakeReporter, smtp: SmtpSink, clock: Clock
) -> None:
    await make_reporter().tick()
    clock.advance(days=3)

    assert await make_reporter().tick() == 3

    days = [m.message["X-Herald-Report-Day"] for m in smtp.received]
    assert days == ["2030-03-10", "2030-03-11", "2030-03-12", "2030-03-13"]
    rows = await report_rows(clean_engine)
    assert [r["status"] for r in rows] == ["sent"] * 4
    # Each window starts where the previous one ended.
    assert all(a["window_end_at"] == b["window_start_at"] for a, b in itertools.pairwise(rows))


async def test_racing_reporters_send_exactly_one_mail(
    clean_engine: AsyncEngine, make_reporter: MakeReporter, smtp: SmtpSink
) -> None:
    reporters = [make_reporter() for _ in range(4)]

    sent = await asyncio.gather(*(r.tick() for r in reporters))

    assert sorted(sent) == [0, 0, 0, 1]
    assert len(smtp.received) == 1
    [row] = await report_rows(clean_engine)
    assert row["attempts"] == 1


async def _claimed_by_a_dead_reporter(engine: AsyncEngine, claimed_at: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                """
                INSERT INTO daily_report (report_day, window_start_at, window_end_at, claimed_at,
                                          claimed_by, attempts, message_id)
                VALUES (:day, :start, :end, :claimed_at, 'dead/1/x', 1, '<first@try>')
                """
            ),
            {"day": TODAY, "start": WINDOW_START, "end": WINDOW_END, "claimed_at": claimed_at},
        )


async def test_a_claim_older_than_the_lease_is_taken_over_and_sent_once(
    clean_engine: AsyncEngine, make_reporter: MakeReporter, smtp: SmtpSink
) -> None:
    await _claimed_by_a_dead_reporter(clean_engine, NOW - timedelta(seconds=301))
    reporter = make_reporter()

    assert await reporter.tick() == 1
    assert await reporter.tick() == 0

    [mail] = smtp.received
    assert mail.message["Message-ID"] == "<first@try>"  # the same as the lost try's
    [row] = await report_rows(clean_engine)
    assert (row["status"], row["attempts"], row["claimed_by"]) == ("sent", 2, reporter.owner)


async def test_a_live_claim_is_left_to_its_owner(
    clean_engine: AsyncEngine, make_reporter: MakeReporter, smtp: SmtpSink
) -> None:
    await _claimed_by_a_dead_reporter(clean_engine, NOW - timedelta(seconds=299))

    assert await make_reporter().tick() == 0

    assert smtp.received == []
    [row] = await report_rows(clean_engine)
    assert (row["status"], row["claimed_by"]) == ("sending", "dead/1/x")


async def test_smtp_down_is_retried_with_backoff_then_sent(
    clean_engine: AsyncEngine, make_reporter: MakeReporter, clock: Clock
) -> None:
    port = free_port()  # nothing listens there yet
    reporter = make_reporter(smtp_port=port)
    failed_before = sample("herald_reporter_reports_total", result="failed")

    assert await reporter.tick() == 0

    [row] = await report_rows(clean_engine)
    assert (row["status"], row["attempts"]) == ("sending", 1)
    assert row["claimed_at"] is None  # released for whoever retries
    assert row["next_attempt_at"] == NOW + timedelta(seconds=60)
    assert "Connect" in str(row["last_error"]) or "refused" in str(row["last_error"]).lower()
    assert sample("herald_reporter_reports_total", result="failed") == failed_before + 1

    with SmtpSink(port) as smtp:
        clock.advance(seconds=59)  # the backoff has not run out
        assert await reporter.tick() == 0
        assert smtp.received == []

        clock.advance(seconds=1)
        assert await reporter.tick() == 1

        assert len(smtp.received) == 1
    [row] = await report_rows(clean_engine)
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert row["last_error"] is not None  # the last failed try stays on record


async def test_a_failing_server_backs_off_exponentially(
    clean_engine: AsyncEngine, make_reporter: MakeReporter, clock: Clock
) -> None:
    reporter = make_reporter(smtp_port=free_port())
    retries = []
    for _ in range(3):
        await reporter.tick()
        [row] = await report_rows(clean_engine)
        retry_at = row["next_attempt_at"]
        assert isinstance(retry_at, datetime)
        retries.append((retry_at - clock.now).total_seconds())
        clock.now = retry_at

    assert retries == [60, 120, 240]


# --- STARTTLS and AUTH -----------------------------------------------------------------------


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Accounts:
    """aiosmtpd authenticator accepting one login and remembering every attempt."""

    def __init__(self, login: str, password: str) -> None:
        self.expected = (login.encode(), password.encode())
        self.attempts: list[tuple[str, bool]] = []

    def __call__(
        self, server: object, session: object, envelope: object, mechanism: str, data: object
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        ok = (data.login, data.password) == self.expected
        self.attempts.append((data.login.decode(), ok))
        return AuthResult(success=ok, handled=False)


async def test_starttls_with_a_verified_certificate_and_auth(
    clean_engine: AsyncEngine, make_reporter: MakeReporter, tmp_path: Path, clock: Clock
) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    accounts = Accounts("reporter", "s3cret")
    with SmtpSink(
        free_port(),
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=accounts,
    ) as server:
        common = {
            "smtp_port": server.port,
            "smtp_security": "starttls",
            "smtp_username": "reporter",
        }
        # Without the CA the self-signed certificate is refused; with a wrong password, AUTH.
        assert await make_reporter(**common, smtp_password="s3cret").tick() == 0
        clock.advance(minutes=5)
        wrong = make_reporter(**common, smtp_ca_file=str(cert), smtp_password="wrong")
        assert await wrong.tick() == 0
        clock.advance(minutes=5)
        right = make_reporter(**common, smtp_ca_file=str(cert), smtp_password="s3cret")
        assert await right.tick() == 1

        # The wrong password was refused (aiosmtplib tries each mechanism the server offers).
        *refused, accepted = accounts.attempts
        assert refused
        assert set(refused) == {("reporter", False)}
        assert accepted == ("reporter", True)
        assert len(server.received) == 1
    [row] = await report_rows(clean_engine)
    assert (row["status"], row["attempts"]) == ("sent", 3)


async def test_tls_from_the_first_byte(
    clean_engine: AsyncEngine, make_reporter: MakeReporter, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with SmtpSink(free_port(), ssl_context=context) as server:
        reporter = make_reporter(smtp_port=server.port, smtp_security="tls", smtp_ca_file=str(cert))
        assert await reporter.tick() == 1
        assert len(server.received) == 1
