"""The per-mailing status counters (migration 0002) always equal a count of the messages."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from herald_common.statuses import ALL_STATUSES
from herald_testing.factories import insert_clients, insert_mailing, insert_pending_messages

STATUSES = [s.value for s in ALL_STATUSES]


async def counters_and_truth(engine: AsyncEngine) -> tuple[dict[tuple[int, str], int], ...]:
    async with engine.connect() as conn:
        kept = await conn.execute(
            text(
                "SELECT mailing_id, status, sum(count) FROM mailing_message_count "
                "GROUP BY mailing_id, status HAVING sum(count) <> 0"
            )
        )
        truth = await conn.execute(
            text("SELECT mailing_id, status, count(*) FROM message GROUP BY mailing_id, status")
        )
        return {(m, s): c for m, s, c in kept}, {(m, s): c for m, s, c in truth}


async def test_counters_follow_inserts_updates_and_deletes(clean_engine: AsyncEngine) -> None:
    rng = random.Random(42)
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 300)
        mailings = [await insert_mailing(conn) for _ in range(3)]
        for mailing_id in mailings:
            await conn.execute(
                text(
                    "INSERT INTO message (mailing_id, client_id, status) "
                    "SELECT :m, id, 'pending' FROM client WHERE id % 3 <> :skip"
                ),
                {"m": mailing_id, "skip": mailing_id % 3},
            )
    for _ in range(60):
        async with clean_engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE message SET status = :to WHERE id IN "
                    "(SELECT id FROM message WHERE status = :from ORDER BY random() LIMIT :n)"
                ),
                {"to": rng.choice(STATUSES), "from": rng.choice(STATUSES), "n": rng.randint(1, 50)},
            )
    async with clean_engine.begin() as conn:
        # A statement that changes nothing of the counts must leave them alone.
        await conn.execute(text("UPDATE message SET attempts = attempts + 1"))
        await conn.execute(text("DELETE FROM message WHERE id % 17 = 0"))

    kept, truth = await counters_and_truth(clean_engine)
    assert kept == truth
    assert sum(truth.values()) > 500


async def test_counters_stay_exact_under_concurrent_writers(clean_engine: AsyncEngine) -> None:
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 2000)
        mailing_id = await insert_mailing(conn)
        await insert_pending_messages(conn, mailing_id)

    async def writer(offset: int) -> None:
        # Like the senders: claim a slice, then settle it, many small transactions at once.
        for start in range(offset, 2000, 200):
            ids = list(range(start + 1, start + 101))
            async with clean_engine.begin() as conn:
                await conn.execute(
                    text("UPDATE message SET status = 'sending' WHERE id = ANY(:ids)"), {"ids": ids}
                )
            async with clean_engine.begin() as conn:
                await conn.execute(
                    text(
                        "UPDATE message SET status = CASE WHEN id % 2 = 0 THEN 'sent' "
                        "ELSE 'retrying' END WHERE id = ANY(:ids)"
                    ),
                    {"ids": ids},
                )

    await asyncio.gather(writer(0), writer(100))

    kept, truth = await counters_and_truth(clean_engine)
    assert kept == truth == {(mailing_id, "sent"): 1000, (mailing_id, "retrying"): 1000}


async def test_writers_of_one_mailing_do_not_queue_on_its_counters(
    clean_engine: AsyncEngine,
) -> None:
    """Two sessions changing different messages of one mailing proceed side by side: neither
    waits for the other's commit (each writes its own counter shard)."""
    async with clean_engine.begin() as conn:
        await insert_clients(conn, 10)
        mailing_id = await insert_mailing(conn)
        await insert_pending_messages(conn, mailing_id)
    # Sessions whose backend pids fall in different shards (pid % 16), as a sender pool's do.
    held: list[AsyncConnection] = []
    try:
        shards: list[int] = []
        # Pids are the kernel's: keep connecting until two sessions land in different shards.
        while len(set(shards)) < 2 and len(held) < 10:
            held.append(await clean_engine.connect())
            shards.append(int(await held[-1].scalar(text("SELECT pg_backend_pid()"))) % 16)
        assert len(set(shards)) == 2, f"ten sessions, all in shard {shards[0]}"
        first, second = held[0], held[-1]
        await first.execute(text("UPDATE message SET status = 'sending' WHERE id <= 5"))
        # Without shards this statement waits for `first` to commit: the lock timeout fails it.
        await second.execute(text("SET LOCAL lock_timeout = '2s'"))
        await second.execute(text("UPDATE message SET status = 'sending' WHERE id > 5"))
        await second.commit()
        await first.commit()
    finally:
        for conn in held:
            await conn.close()

    kept, truth = await counters_and_truth(clean_engine)
    assert kept == truth == {(mailing_id, "sending"): 10}
