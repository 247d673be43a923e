"""Database steps of the scheduler; each runs inside the caller's transaction.

Fan-out is set-based: one INSERT … SELECT per chunk of clients (a range of client ids), so that
a crash resumes from ``fanout_cursor`` and ``ON CONFLICT DO NOTHING`` absorbs any overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from herald_common.models import IDEMPOTENCY_KEEP_HOURS, IDLE_STATUS_PREDICATE
from herald_common.statuses import IDLE_STATUSES, TERMINAL_STATUSES, MessageStatus

IDLE = sorted(s.value for s in IDLE_STATUSES)
UNSETTLED = sorted(s.value for s in MessageStatus if s not in TERMINAL_STATUSES)


@dataclass(frozen=True, slots=True)
class DueMailing:
    id: int
    starts_at: datetime
    fanout_cursor: int
    operator_codes: list[str]
    tags: list[str]
    started: bool


@dataclass(frozen=True, slots=True)
class FanOutRange:
    """Matching clients with ``after < id <= last``, whose messages one transaction creates."""

    after: int
    last: int


@dataclass(frozen=True, slots=True)
class FanOutStep:
    ranges: list[FanOutRange]
    cursor: int | None  # the new fanout_cursor (None: no client left)
    done: bool


async def lock_due_mailing(
    conn: AsyncConnection, held_back: Sequence[int] = ()
) -> DueMailing | None:
    """The earliest due mailing whose fan-out is unfinished, locked; other replicas skip it.
    ``held_back``: mailings whose fan-out just failed, which wait their turn.

    ``NO KEY UPDATE``: the lock must not block the foreign-key checks of the transactions
    that insert the mailing's messages meanwhile (they take ``KEY SHARE``).
    """
    row = (
        await conn.execute(
            text(
                """
                SELECT id, starts_at, fanout_cursor, filter_operator_codes, filter_tags, started_at
                FROM mailing
                WHERE deleted_at IS NULL AND fanout_done_at IS NULL AND paused_at IS NULL
                  AND finished_at IS NULL AND starts_at <= now() AND ends_at > now()
                  AND id <> ALL(CAST(:held_back AS bigint[]))
                ORDER BY starts_at, id
                LIMIT 1
                FOR NO KEY UPDATE SKIP LOCKED
                """
            ),
            {"held_back": list(held_back)},
        )
    ).first()
    if row is None:
        return None
    return DueMailing(row[0], row[1], row[2], list(row[3]), list(row[4]), row[5] is not None)


_MATCHING = """
    deleted_at IS NULL
    AND (cardinality(CAST(:codes AS varchar[])) = 0
         OR operator_code = ANY(CAST(:codes AS varchar[])))
    AND (cardinality(CAST(:tags AS varchar[])) = 0
         OR tag = ANY(CAST(:tags AS varchar[])))
"""


async def plan_fan_out_step(
    conn: AsyncConnection, mailing: DueMailing, size: int, parallel: int
) -> FanOutStep:
    """Split the next ``parallel`` chunks of ``size`` matching clients into id ranges."""
    row = (
        await conn.execute(
            text(
                f"""
                SELECT count(*), max(id),
                       coalesce(array_agg(id ORDER BY id) FILTER (WHERE n % :size = 0), '{{}}')
                FROM (
                    SELECT id, row_number() OVER (ORDER BY id) AS n FROM (
                        SELECT id FROM client
                        WHERE id > :cursor AND {_MATCHING}
                        ORDER BY id LIMIT :total
                    ) AS next_clients
                ) AS numbered
                """
            ),
            {
                "cursor": mailing.fanout_cursor,
                "codes": mailing.operator_codes,
                "tags": mailing.tags,
                "size": size,
                "total": size * parallel,
            },
        )
    ).one()
    count, last, bounds = int(row[0]), row[1], list(row[2])
    if count == 0:
        return FanOutStep([], None, True)
    if not bounds or bounds[-1] != last:
        bounds.append(last)
    ranges = []
    after = mailing.fanout_cursor
    for bound in bounds:
        ranges.append(FanOutRange(after, bound))
        after = bound
    return FanOutStep(ranges, last, count < size * parallel)


async def create_messages(
    conn: AsyncConnection, mailing: DueMailing, rng: FanOutRange
) -> list[int]:
    """Messages for the matching clients in ``rng``; ids of those created (a redo after a crash
    finds most of them there already: ``ON CONFLICT DO NOTHING``)."""
    row = (
        await conn.execute(
            text(
                f"""
                WITH created AS (
                    INSERT INTO message (mailing_id, client_id, status)
                    SELECT :mailing_id, id, :pending FROM client
                    WHERE id > :after AND id <= :last AND {_MATCHING}
                    ON CONFLICT (mailing_id, client_id) DO NOTHING
                    RETURNING id
                )
                SELECT coalesce(array_agg(id ORDER BY id), '{{}}') FROM created
                """
            ),
            {
                "after": rng.after,
                "last": rng.last,
                "codes": mailing.operator_codes,
                "tags": mailing.tags,
                "mailing_id": mailing.id,
                "pending": MessageStatus.PENDING.value,
            },
        )
    ).one()
    return list(row[0])


async def advance_fan_out(conn: AsyncConnection, mailing: DueMailing, step: FanOutStep) -> None:
    """Move the cursor past the ranges whose messages are committed; mark the start and end."""
    # The first step also records "nothing settled yet" as the mailing's first progress
    # sample: rates and the dashboard's per-minute chart then count from the real start, also
    # for a mailing that is over before the next periodic sample. (Every part of the WITH
    # sees the row as it was, started_at still NULL on the first step.)
    await conn.execute(
        text(
            """
            WITH before AS (SELECT started_at FROM mailing WHERE id = :id),
            moved AS (
                UPDATE mailing SET
                    fanout_cursor = coalesce(:cursor, fanout_cursor),
                    started_at = coalesce(started_at, now()),
                    fanout_done_at = CASE WHEN :done THEN now() END
                WHERE id = :id
            )
            INSERT INTO mailing_progress (mailing_id, sampled_at, done)
            SELECT :id, now(), 0 FROM before WHERE before.started_at IS NULL
            ON CONFLICT DO NOTHING
            """
        ),
        {"cursor": step.cursor, "done": step.done, "id": mailing.id},
    )


async def requeue_deferred(conn: AsyncConnection, limit: int) -> list[tuple[int, int]]:
    """Deferred messages whose window has opened go back to ``pending``: (message, mailing)."""
    rows = await conn.execute(
        text(
            """
            UPDATE message SET status = :pending, next_attempt_at = NULL, updated_at = now()
            WHERE id IN (
                SELECT id FROM message
                WHERE status = :deferred AND next_attempt_at <= now()
                ORDER BY next_attempt_at LIMIT :limit
                FOR UPDATE SKIP LOCKED
            )
            RETURNING id, mailing_id
            """
        ),
        {
            "pending": MessageStatus.PENDING.value,
            "deferred": MessageStatus.DEFERRED.value,
            "limit": limit,
        },
    )
    return [(r[0], r[1]) for r in rows]


async def recover_expired_leases(conn: AsyncConnection, limit: int) -> list[tuple[int, int]]:
    """Messages a sender claimed and never settled (it died): back to ``pending``.

    The provider may have seen them: this is the at-least-once case of rule 4.
    """
    rows = await conn.execute(
        text(
            """
            UPDATE message SET status = :pending, lease_until = NULL, updated_at = now(),
                last_error = 'the sender handling it stopped; sending again'
            WHERE id IN (
                SELECT id FROM message
                WHERE status = :sending AND lease_until < now()
                ORDER BY lease_until LIMIT :limit
                FOR UPDATE SKIP LOCKED
            )
            RETURNING id, mailing_id
            """
        ),
        {
            "pending": MessageStatus.PENDING.value,
            "sending": MessageStatus.SENDING.value,
            "limit": limit,
        },
    )
    return [(r[0], r[1]) for r in rows]


async def requeue_lost_jobs(
    conn: AsyncConnection, limit: int, stale_after: timedelta
) -> list[tuple[int, int]]:
    """Messages whose delivery job is gone (a purged queue, a broker that lost its data) get
    one again: ``pending`` ones unchanged for ``stale_after``, and ``retrying`` ones that
    many seconds past their ``next_attempt_at`` beyond the lateness a retry queue allows.

    A retry job's delay is at least 3/4 of its queue's TTL and a queue expires from its head,
    so a job can come back at most a third of its delay late: ``(next_attempt_at -
    updated_at) / 3``. Both become ``pending`` with ``updated_at = now()``, so a message gets
    at most one new job per ``stale_after``. Call this only when the delivery queue holds no
    ready job: otherwise a message may just be waiting its turn behind a backlog, and a second
    job per message would only grow it. Duplicate jobs are harmless (the claim skips a
    message that is no longer claimable). Paused, deleted and ended mailings are left to
    their own sweeps.
    """
    # The live mailings first (a few rows, on ix_mailing_unfinished), then their messages
    # on ix_message_mailing_id_status: no index of its own, which every fan-out insert would
    # have to maintain for a sweep that runs only when the queue is empty.
    live = list(
        (
            await conn.execute(
                text(
                    """
                    SELECT id FROM mailing
                    WHERE finished_at IS NULL AND ends_at > now()
                      AND deleted_at IS NULL AND paused_at IS NULL AND started_at IS NOT NULL
                    """
                )
            )
        ).scalars()
    )
    if not live:
        return []
    rows = await conn.execute(
        text(
            """
            UPDATE message SET status = :pending, next_attempt_at = NULL, updated_at = now()
            WHERE id IN (
                SELECT m.id FROM message m
                WHERE m.mailing_id = ANY(CAST(:live AS bigint[]))
                  AND m.status IN (:pending, :retrying)
                  AND ((m.status = :pending AND m.updated_at < now() - :stale)
                    OR (m.status = :retrying AND m.next_attempt_at
                        < now() - :stale - (m.next_attempt_at - m.updated_at) / 3))
                LIMIT :limit
                FOR UPDATE SKIP LOCKED
            )
            RETURNING id, mailing_id
            """
        ),
        {
            "pending": MessageStatus.PENDING.value,
            "retrying": MessageStatus.RETRYING.value,
            "stale": stale_after,
            "live": live,
            "limit": limit,
        },
    )
    return [(r[0], r[1]) for r in rows]


async def expire_ended(conn: AsyncConnection, limit: int) -> int:
    """Idle messages of mailings whose end has passed become ``expired``. Returns a count.

    The end decides, whatever ``finished_at`` says: the mailings are those past their end
    whose counters still show idle messages (a partial index holds just the idle counter
    rows, which only unfinished mailings have). They are looked up first: a single statement
    joining them to ``message`` let the planner walk the whole message table in id order
    every second, looking for rows that are almost never there.
    """
    ended = list(
        (
            await conn.execute(
                text(
                    f"""
                    SELECT c.mailing_id FROM mailing_message_count c
                    JOIN mailing ml ON ml.id = c.mailing_id
                    WHERE c.{IDLE_STATUS_PREDICATE} AND ml.ends_at <= now()
                    GROUP BY c.mailing_id HAVING sum(c.count) > 0
                    """
                )
            )
        ).scalars()
    )
    if not ended:
        return 0
    result = await conn.execute(
        text(
            """
            UPDATE message SET status = :expired, updated_at = now(), next_attempt_at = NULL,
                last_error = coalesce(last_error || '; ', '') || 'the mailing ended first'
            WHERE id IN (
                SELECT m.id FROM message m
                WHERE m.mailing_id = ANY(CAST(:ended AS bigint[]))
                  AND m.status = ANY(CAST(:idle AS varchar[]))
                ORDER BY m.id
                LIMIT :limit
                FOR UPDATE OF m SKIP LOCKED
            )
            """
        ),
        {"expired": MessageStatus.EXPIRED.value, "ended": ended, "idle": IDLE, "limit": limit},
    )
    return result.rowcount


_SETTLED = """
    NOT EXISTS (
        SELECT 1 FROM mailing_message_count c
        WHERE c.mailing_id = ml.id AND c.status = ANY(CAST(:unsettled AS varchar[]))
        GROUP BY c.status HAVING sum(c.count) > 0
    )
"""


async def finish_settled(conn: AsyncConnection) -> list[int]:
    """Mark finished the mailings with nothing left to do: ended, deleted, or all settled.

    In two statements. The first locks the candidates (``SKIP LOCKED``: a mailing that
    retry-failed, pause or resume holds right now is left for the next round). The second
    counts again and marks: it runs on a snapshot taken after the locks were granted, so it
    sees what a retry-failed that committed meanwhile moved out of ``failed``. A single
    UPDATE re-checks a row changed under it against its own older snapshot of the counters,
    and could finish a mailing that had just been given work again.
    """
    candidates = list(
        (
            await conn.execute(
                text(
                    f"""
                    SELECT ml.id FROM mailing ml
                    WHERE ml.finished_at IS NULL
                      AND (ml.ends_at <= now() OR ml.deleted_at IS NOT NULL
                           OR ml.fanout_done_at IS NOT NULL)
                      AND {_SETTLED}
                    ORDER BY ml.id
                    FOR NO KEY UPDATE SKIP LOCKED
                    """
                ),
                {"unsettled": UNSETTLED},
            )
        ).scalars()
    )
    if not candidates:
        return []
    rows = await conn.execute(
        text(
            f"""
            UPDATE mailing ml SET finished_at = now()
            WHERE ml.id = ANY(CAST(:ids AS bigint[])) AND ml.finished_at IS NULL AND {_SETTLED}
            RETURNING ml.id
            """
        ),
        {"ids": candidates, "unsettled": UNSETTLED},
    )
    return sorted(r[0] for r in rows)


@dataclass(frozen=True, slots=True)
class Pruned:
    mailing_id: int
    messages: int
    done: bool  # the mailing has no message rows left


async def prune_finished_messages(conn: AsyncConnection, days: int, batch: int) -> Pruned | None:
    """Retention: delete up to ``batch`` message rows of the oldest mailing finished, and
    ended, more than ``days`` days ago; its counters (folded when it finished) are left as
    they are, so its statistics stay exact. Marks it ``messages_pruned_at`` once empty."""
    mailing_id = await conn.scalar(
        text(
            """
            SELECT id FROM mailing
            WHERE messages_pruned_at IS NULL AND finished_at < now() - make_interval(days => :days)
              AND ends_at < now()
            ORDER BY finished_at, id LIMIT 1
            FOR NO KEY UPDATE SKIP LOCKED
            """
        ),
        {"days": days},
    )
    if mailing_id is None:
        return None
    # The delete trigger leaves the counters alone in this transaction only.
    await conn.execute(text("SET LOCAL herald.keep_counts = 'on'"))
    deleted = (
        await conn.execute(
            text(
                """
                DELETE FROM message WHERE id IN (
                    SELECT id FROM message WHERE mailing_id = :m LIMIT :batch
                )
                """
            ),
            {"m": mailing_id, "batch": batch},
        )
    ).rowcount
    done = deleted < batch
    if done:
        await conn.execute(
            text("UPDATE mailing SET messages_pruned_at = now() WHERE id = :m"), {"m": mailing_id}
        )
    return Pruned(mailing_id, deleted, done)


async def fold_counters(conn: AsyncConnection, mailing_ids: list[int]) -> None:
    """Fold finished mailings' counter shards into shard 0: their counts stop changing, and
    statistics then read one row per status instead of one per shard."""
    if not mailing_ids:
        return
    await conn.execute(
        text(
            """
            WITH gone AS (
                DELETE FROM mailing_message_count
                WHERE mailing_id = ANY(CAST(:ids AS bigint[])) AND shard <> 0
                RETURNING mailing_id, status, count
            )
            INSERT INTO mailing_message_count AS c (mailing_id, status, shard, count)
            SELECT mailing_id, status, 0, sum(count) FROM gone
            GROUP BY mailing_id, status
            ORDER BY mailing_id, status
            ON CONFLICT (mailing_id, status, shard) DO UPDATE SET count = c.count + excluded.count
            """
        ),
        {"ids": mailing_ids},
    )
    await conn.execute(
        text(
            "DELETE FROM mailing_message_count "
            "WHERE mailing_id = ANY(CAST(:ids AS bigint[])) AND count = 0"
        ),
        {"ids": mailing_ids},
    )


async def prune_idempotency_keys(
    conn: AsyncConnection, keep_hours: int = IDEMPOTENCY_KEEP_HOURS
) -> int:
    """Forget the API's idempotency keys once a retry of their request is no longer expected."""
    result = await conn.execute(
        text(
            "DELETE FROM idempotency_key WHERE created_at < now() - make_interval(hours => :hours)"
        ),
        {"hours": keep_hours},
    )
    return result.rowcount


@dataclass(frozen=True, slots=True)
class Overview:
    """What the scheduler's gauges show."""

    mailings: dict[str, int]
    overdue: int
    active_messages: dict[str, int]
    outbox: int
    outbox_quarantined: int


async def overview(conn: AsyncConnection) -> Overview:
    mailings = (
        await conn.execute(
            text(
                """
                SELECT
                  count(*) FILTER (WHERE finished_at IS NULL AND ends_at > now()
                                   AND paused_at IS NULL AND starts_at > now()),
                  count(*) FILTER (WHERE finished_at IS NULL AND ends_at > now()
                                   AND paused_at IS NULL AND starts_at <= now()),
                  count(*) FILTER (WHERE finished_at IS NOT NULL OR ends_at <= now()),
                  count(*) FILTER (WHERE started_at IS NULL AND ends_at > now()
                                   AND paused_at IS NULL
                                   AND starts_at <= now() - interval '1 minute'),
                  count(*) FILTER (WHERE finished_at IS NULL AND ends_at > now()
                                   AND paused_at IS NOT NULL)
                FROM mailing WHERE deleted_at IS NULL
                """
            )
        )
    ).one()
    active = await conn.execute(
        text(
            """
            SELECT c.status, sum(c.count) FROM mailing_message_count c
            JOIN mailing ml ON ml.id = c.mailing_id
            WHERE ml.finished_at IS NULL
            GROUP BY c.status
            """
        )
    )
    outbox = (
        await conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE quarantined_at IS NULL), "
                "count(*) FILTER (WHERE quarantined_at IS NOT NULL) FROM outbox"
            )
        )
    ).one()
    return Overview(
        mailings={
            "scheduled": mailings[0],
            "running": mailings[1],
            "paused": mailings[4],
            "finished": mailings[2],
        },
        overdue=mailings[3],
        active_messages={status: int(count) for status, count in active},
        outbox=int(outbox[0]),
        outbox_quarantined=int(outbox[1]),
    )


async def sample_progress(conn: AsyncConnection) -> None:
    """Record how many messages each running mailing has settled, for its current rate; a
    mailing finished in the last minute gets its final count in too."""
    await conn.execute(
        text(
            """
            INSERT INTO mailing_progress (mailing_id, sampled_at, done)
            SELECT ml.id, now(), coalesce(sum(c.count) FILTER (
                       WHERE c.status IN ('sent', 'failed', 'expired', 'cancelled')), 0)
            FROM mailing ml LEFT JOIN mailing_message_count c ON c.mailing_id = ml.id
            WHERE (ml.finished_at IS NULL OR ml.finished_at > now() - interval '1 minute')
              AND ml.started_at IS NOT NULL
              AND ml.deleted_at IS NULL
            GROUP BY ml.id
            ON CONFLICT DO NOTHING
            """
        )
    )
    await conn.execute(
        text("DELETE FROM mailing_progress WHERE sampled_at < now() - interval '15 minutes'")
    )


async def next_start_in_s(conn: AsyncConnection) -> float | None:
    """Seconds until the next not-yet-due mailing starts, to sleep exactly that long."""
    value = await conn.scalar(
        text(
            """
            SELECT extract(epoch FROM min(starts_at) - now()) FROM mailing
            WHERE deleted_at IS NULL AND fanout_done_at IS NULL AND finished_at IS NULL
              AND starts_at > now()
            """
        )
    )
    return float(value) if value is not None else None
