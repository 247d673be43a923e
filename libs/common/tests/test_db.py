"""Every database connection gives up after a known time: connect, statement, pool, dead peer."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from herald_common.db import create_engine
from herald_common.settings import HeraldSettings


def settings(url: str, **fields: object) -> HeraldSettings:
    return HeraldSettings.model_construct(database_url=url, amqp_url="", **fields)


async def test_a_statement_running_past_the_limit_is_cancelled(migrated_db_url: str) -> None:
    engine = create_engine(settings(migrated_db_url, db_statement_timeout_ms=300))
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SHOW statement_timeout")) == "300ms"
            started = time.monotonic()
            with pytest.raises(OperationalError, match="statement timeout"):
                await conn.execute(text("SELECT pg_sleep(5)"))
            assert time.monotonic() - started < 3
    finally:
        await engine.dispose()


async def test_connections_carry_tcp_keepalives_and_the_default_statement_limit(
    migrated_db_url: str,
) -> None:
    engine = create_engine(migrated_db_url)
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SHOW statement_timeout")) == "30s"
            raw = await conn.get_raw_connection()
            params = raw.driver_connection.info.get_parameters()  # type: ignore[union-attr]
    finally:
        await engine.dispose()
    assert params["keepalives"] == "1"
    assert int(params["keepalives_idle"]) > 0
    assert params["connect_timeout"] == "5"


async def test_a_server_that_never_answers_the_connection_fails_within_the_connect_timeout() -> (
    None
):
    # A listening socket that never accepts nor speaks: the TCP handshake completes, the
    # PostgreSQL start-up never does. Without connect_timeout this hangs for good.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    port = silent.getsockname()[1]
    engine = create_engine(
        settings(f"postgresql://herald:x@127.0.0.1:{port}/herald", db_connect_timeout_s=1)
    )
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError):
            async with engine.connect():
                pass
        assert time.monotonic() - started < 5
    finally:
        await engine.dispose()
        silent.close()


async def test_a_failing_statement_never_shows_its_parameters_in_errors_or_logs(
    migrated_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Parameters are phones and mailing texts. With SQLAlchemy's own logging turned all the
    # way up, and the failure logged with its traceback as a service would.
    phone = "79161234567"
    mailing_text = "Dear Olga, your code is 4711"
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    caplog.set_level(logging.DEBUG, logger="herald.test")
    engine = create_engine(migrated_db_url)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as raised:
                # Division by zero: PostgreSQL's own message names no value, so whatever
                # holds one would come from SQLAlchemy.
                await conn.execute(
                    text(
                        "SELECT count(*) FROM client WHERE phone = :phone AND tag = :text "
                        "AND 1 / (SELECT 0) = 1"
                    ),
                    {"phone": phone, "text": mailing_text},
                )
            logging.getLogger("herald.test").error("statement_failed", exc_info=raised.value)
    finally:
        await engine.dispose()

    assert "division by zero" in str(raised.value)
    assert "parameters hidden" in str(raised.value)
    assert "SELECT count(*) FROM client" in caplog.text  # the logs were really captured
    for secret in (phone, mailing_text):
        assert secret not in str(raised.value)
        assert secret not in repr(raised.value)
        assert secret not in caplog.text
