"""Plain factory functions writing test data with set-based SQL (fast for thousands of rows)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from herald_common.rules.audience import default_operator_code


def utcnow() -> datetime:
    return datetime.now(UTC)


def phone_columns(
    first_phone: int, count: int, operator_code: str | None = None
) -> dict[str, list[str]]:
    """``count`` consecutive phones from ``first_phone`` and their operator codes (the
    default one unless ``operator_code`` is given), as arrays for ``unnest``."""
    phones = [str(phone) for phone in range(first_phone, first_phone + count)]
    codes = [operator_code or default_operator_code(phone) for phone in phones]
    return {"phones": phones, "codes": codes}


async def insert_clients(
    conn: AsyncConnection,
    count: int,
    *,
    first_phone: int = 79_000_000_000,
    tag: str = "",
    timezone: str = "Europe/Moscow",
    operator_code: str | None = None,
) -> list[int]:
    """``count`` clients with consecutive phones; returns their ids in order."""
    rows = await conn.execute(
        text(
            """
            INSERT INTO client (phone, operator_code, tag, timezone)
            SELECT phone, operator_code, :tag, :tz
            FROM unnest(CAST(:phones AS text[]), CAST(:codes AS text[])) WITH ORDINALITY
                AS generated (phone, operator_code, n)
            ORDER BY n
            RETURNING id
            """
        ),
        {"tag": tag, "tz": timezone, **phone_columns(first_phone, count, operator_code)},
    )
    return [row[0] for row in rows]


async def insert_mailing(
    conn: AsyncConnection,
    *,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    text_: str = "hello",
    operator_codes: list[str] | None = None,
    tags: list[str] | None = None,
    window: tuple[time, time] | None = None,
) -> int:
    starts_at = starts_at or utcnow() - timedelta(seconds=1)
    ends_at = ends_at or starts_at + timedelta(hours=1)
    mailing_id = await conn.scalar(
        text(
            """
            INSERT INTO mailing (starts_at, ends_at, text, filter_operator_codes, filter_tags,
                                 window_start, window_end)
            VALUES (:starts_at, :ends_at, :text, :codes, :tags, :ws, :we)
            RETURNING id
            """
        ),
        {
            "starts_at": starts_at,
            "ends_at": ends_at,
            "text": text_,
            "codes": operator_codes or [],
            "tags": tags or [],
            "ws": window[0] if window else None,
            "we": window[1] if window else None,
        },
    )
    assert mailing_id is not None
    return int(mailing_id)


async def insert_pending_messages(conn: AsyncConnection, mailing_id: int) -> None:
    """One ``pending`` message of the mailing for every client, as a fan-out would leave."""
    await conn.execute(
        text(
            "INSERT INTO message (mailing_id, client_id, status) "
            "SELECT :m, id, 'pending' FROM client"
        ),
        {"m": mailing_id},
    )


async def status_counts(conn: AsyncConnection, mailing_id: int) -> dict[str, int]:
    rows = await conn.execute(
        text("SELECT status, count(*) FROM message WHERE mailing_id = :id GROUP BY status"),
        {"id": mailing_id},
    )
    return {row[0]: row[1] for row in rows}
