"""The ``mailing_message_count`` table: messages per mailing and status, summed from the
trigger-kept counter shards.

The API's statistics and the reporter's daily e-mail read the same numbers this way; a shard
alone means nothing (migration 0004), only sums do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Select,
    any_,
    bindparam,
    delete,
    func,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from herald_common.models import IDLE_STATUS_PREDICATE, MailingMessageCount
from herald_common.statuses import ALL_STATUSES
from herald_common.tables import message


def empty_counts() -> dict[str, int]:
    """Every status at zero, in the vocabulary's order."""
    return {status.value: 0 for status in ALL_STATUSES}


def summed_by_mailing_and_status() -> Select[int, str, int]:
    return select(
        MailingMessageCount.mailing_id,
        MailingMessageCount.status,
        func.sum(MailingMessageCount.count).label("messages"),
    ).group_by(MailingMessageCount.mailing_id, MailingMessageCount.status)


def settled(by_status: Mapping[str, int]) -> int:
    """How many of these per-status counts are settled (terminal): a mailing's "done"."""
    return sum(by_status[status] for status in message.SETTLED)


async def count_messages(
    db: AsyncConnection | AsyncSession, mailing_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    """Per-status counts of each mailing (every status present, zeros included)."""
    counts: dict[int, dict[str, int]] = {mid: empty_counts() for mid in mailing_ids}
    if not counts:
        return counts
    # One array parameter, not one parameter per id: any number of ids fits.
    rows = await db.execute(
        summed_by_mailing_and_status().where(
            MailingMessageCount.mailing_id
            == any_(bindparam("ids", list(counts), type_=ARRAY(BigInteger)))
        )
    )
    for row in rows:
        counts[row.mailing_id][row.status] = int(row.messages)
    return counts


def is_unsettled() -> ColumnElement[bool]:
    """Counter rows of statuses not yet settled (sum them: a shard alone means nothing)."""
    return MailingMessageCount.status.in_(message.UNSETTLED)


def is_idle() -> ColumnElement[bool]:
    """Counter rows of idle statuses, spelt as ix_mailing_message_count_idle's predicate so
    that a query can use that partial index (a bound list would not match it)."""
    return literal_column(f"mailing_message_count.{IDLE_STATUS_PREDICATE}", Boolean)


def is_settled() -> ColumnElement[bool]:
    """Counter rows of settled (terminal) statuses."""
    return MailingMessageCount.status.in_(message.SETTLED)


async def keep_counts_in_this_transaction(conn: AsyncConnection) -> None:
    """Deletes of messages leave the counters alone until the commit (the delete trigger
    obeys ``herald.keep_counts``): retention keeps a finished mailing's statistics exact."""
    await conn.execute(text("SET LOCAL herald.keep_counts = 'on'"))


async def fold_shards(conn: AsyncConnection, mailing_ids: list[int]) -> None:
    """Fold finished mailings' counter shards into shard 0: their counts stop changing, and
    statistics then read one row per status instead of one per shard."""
    if not mailing_ids:
        return
    gone = (
        delete(MailingMessageCount)
        .where(MailingMessageCount.mailing_id.in_(mailing_ids), MailingMessageCount.shard != 0)
        .returning(
            MailingMessageCount.mailing_id, MailingMessageCount.status, MailingMessageCount.count
        )
        .cte("gone")
    )
    folded = insert(MailingMessageCount).from_select(
        [
            MailingMessageCount.mailing_id,
            MailingMessageCount.status,
            MailingMessageCount.shard,
            MailingMessageCount.count,
        ],
        select(gone.c.mailing_id, gone.c.status, literal(0), func.sum(gone.c.count))
        .group_by(gone.c.mailing_id, gone.c.status)
        # Upserted in (mailing, status) order, as the triggers do: no deadlock between them.
        .order_by(gone.c.mailing_id, gone.c.status),
    )
    await conn.execute(
        folded.on_conflict_do_update(
            index_elements=[
                MailingMessageCount.mailing_id,
                MailingMessageCount.status,
                MailingMessageCount.shard,
            ],
            set_={"count": MailingMessageCount.count + folded.excluded.count},
        ).add_cte(gone)
    )
    await conn.execute(
        delete(MailingMessageCount).where(
            MailingMessageCount.mailing_id.in_(mailing_ids), MailingMessageCount.count == 0
        )
    )
