"""Retention (HERALD_RETENTION_DAYS): the message rows of long-finished mailings go, their
statistics stay exact."""

from __future__ import annotations

from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from herald_common.broker import Publisher
from herald_common.tables.message_count import count_messages
from herald_scheduler.scheduler import Scheduler

from .conftest import make_settings


async def finished_mailing(
    conn: AsyncConnection, finished_days_ago: int, ends_in_days: int, statuses: dict[str, int]
) -> int:
    """Started 30 days ago, finished ``finished_days_ago``, its end ``ends_in_days`` away."""
    mailing_id: int = await conn.scalar(
        text(
            """
            INSERT INTO mailing (starts_at, ends_at, text, started_at, fanout_done_at,
                                 finished_at)
            VALUES (now() - interval '30 days', now() + make_interval(days => :ends),
                    'old news', now() - interval '30 days', now() - interval '30 days',
                    now() - make_interval(days => :finished))
            RETURNING id
            """
        ),
        {"ends": ends_in_days, "finished": finished_days_ago},
    )
    for status, count in statuses.items():
        await conn.execute(
            text(
                """
                INSERT INTO message (mailing_id, client_id, status)
                SELECT :m, id, :status FROM client
                WHERE id NOT IN (SELECT client_id FROM message WHERE mailing_id = :m)
                ORDER BY id LIMIT :n
                """
            ),
            {"m": mailing_id, "status": status, "n": count},
        )
    return mailing_id


async def message_rows(engine: AsyncEngine) -> dict[int, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT mailing_id, count(*) FROM message GROUP BY 1"))
        return dict(rows.all())


async def test_retention_deletes_old_messages_and_keeps_the_statistics_exact(
    clean_engine: AsyncEngine,
    broker: AbstractRobustConnection,
    migrated_db_url: str,
    amqp_url: str,
) -> None:
    async with clean_engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO client (phone, operator_code, timezone) "
                "SELECT (79000000000 + g)::text, '900', 'UTC' FROM generate_series(1, 30) AS g"
            )
        )
        old = await finished_mailing(conn, 10, -10, {"sent": 20, "failed": 3, "expired": 2})
        recent = await finished_mailing(conn, 2, -2, {"sent": 4})
        # Settled early, its end still ahead: retry-failed could still want its messages.
        open_ended = await finished_mailing(conn, 10, 5, {"failed": 2})
    settings = make_settings(migrated_db_url, amqp_url, retention_days=7, retention_batch_size=10)
    scheduler = Scheduler(clean_engine, await Publisher.open(broker), settings)
    async with clean_engine.connect() as conn:
        before = await count_messages(conn, [old, recent, open_ended])

    for _ in range(4):  # 25 rows in batches of 10, then nothing left to do
        await scheduler.prune_old_messages()

    assert await message_rows(clean_engine) == {recent: 4, open_ended: 2}
    async with clean_engine.connect() as conn:
        assert await count_messages(conn, [old, recent, open_ended]) == before
        pruned = await conn.scalar(
            text("SELECT messages_pruned_at IS NOT NULL FROM mailing WHERE id = :m"), {"m": old}
        )
    assert pruned is True
    assert before[old]["sent"] == 20

    # Any other delete still counts: the guard holds only in retention's transaction.
    async with clean_engine.begin() as conn:
        await conn.execute(text("DELETE FROM message WHERE mailing_id = :m"), {"m": recent})
    async with clean_engine.connect() as conn:
        assert (await count_messages(conn, [recent]))[recent]["sent"] == 0


async def test_retention_is_off_by_default(scheduler: Scheduler, clean_engine: AsyncEngine) -> None:
    async with clean_engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO client (phone, operator_code, timezone) "
                "SELECT (79000000000 + g)::text, '900', 'UTC' FROM generate_series(1, 3) AS g"
            )
        )
        old = await finished_mailing(conn, 20, -20, {"sent": 3})

    await scheduler.housekeeping()

    assert await message_rows(clean_engine) == {old: 3}
