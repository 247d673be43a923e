"""The migrations go down and up again without losing the counters they reshape."""

from __future__ import annotations

import uuid

from alembic import command
from sqlalchemy import text

from herald_common.db import create_engine
from herald_common.migrate import alembic_config, upgrade
from herald_devstack.admin import DatabaseAdmin
from herald_testing.factories import insert_clients, insert_mailing, insert_pending_messages


async def test_counter_shards_fold_on_downgrade_and_spread_again_on_upgrade(
    postgres_server: DatabaseAdmin,
) -> None:
    name = f"herald_migrations_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(name)
    url = postgres_server.url(name)
    upgrade(url)
    engine = create_engine(url, pool_size=3)
    try:
        async with engine.begin() as conn:
            await insert_clients(conn, 30)
            mailing_id = await insert_mailing(conn)
            await insert_pending_messages(conn, mailing_id)
        sessions = [await engine.connect() for _ in range(3)]
        for low, conn in zip((0, 10, 20), sessions, strict=True):
            await conn.execute(
                text("UPDATE message SET status = 'sent' WHERE id > :low AND id <= :low + 7"),
                {"low": low},
            )
            await conn.commit()
            await conn.close()

        async def counts() -> dict[str, int]:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    text(
                        "SELECT status, sum(count) FROM mailing_message_count "
                        "GROUP BY status HAVING sum(count) <> 0"
                    )
                )
                return {status: int(count) for status, count in rows}

        assert await counts() == {"pending": 9, "sent": 21}
        await engine.dispose()
        command.downgrade(alembic_config(url), "0003")
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT status, count FROM mailing_message_count"))
            assert sorted(tuple(r) for r in rows) == [("pending", 9), ("sent", 21)]
        await engine.dispose()
        upgrade(url)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE message SET status = 'failed' WHERE id = 30"))
        assert await counts() == {"pending": 8, "sent": 21, "failed": 1}
    finally:
        await engine.dispose()
        postgres_server.drop_database(name)
