"""Messages per mailing and status, summed from the trigger-kept counter shards.

The API's statistics and the reporter's daily e-mail read the same numbers this way; a shard
alone means nothing (migration 0004), only sums do.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, Select, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from herald_common.models import Mailing, MailingMessageCount
from herald_common.statuses import ALL_STATUSES


def empty_counts() -> dict[str, int]:
    """Every status at zero, in the vocabulary's order."""
    return {status.value: 0 for status in ALL_STATUSES}


def _summed_by_mailing_and_status() -> Select[int, str, int]:
    return select(
        MailingMessageCount.mailing_id,
        MailingMessageCount.status,
        func.sum(MailingMessageCount.count),
    ).group_by(MailingMessageCount.mailing_id, MailingMessageCount.status)


async def count_messages(
    db: AsyncConnection | AsyncSession, mailing_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    """Per-status counts of each mailing (every status present, zeros included)."""
    counts: dict[int, dict[str, int]] = {mid: empty_counts() for mid in mailing_ids}
    if not counts:
        return counts
    # One array parameter, not one parameter per id: any number of ids fits.
    rows = await db.execute(
        _summed_by_mailing_and_status().where(
            MailingMessageCount.mailing_id
            == any_(bindparam("ids", list(counts), type_=ARRAY(BigInteger)))
        )
    )
    for mailing_id, status, count in rows:
        counts[mailing_id][status] = int(count)
    return counts


async def count_live_messages(db: AsyncConnection | AsyncSession) -> dict[int, dict[str, int]]:
    """Per-status counts of every mailing not deleted that has messages, in one query (no
    list of ids at all)."""
    rows = await db.execute(
        _summed_by_mailing_and_status()
        .join(Mailing, Mailing.id == MailingMessageCount.mailing_id)
        .where(Mailing.deleted_at.is_(None))
    )
    counts: dict[int, dict[str, int]] = {}
    for mailing_id, status, count in rows:
        counts.setdefault(mailing_id, empty_counts())[status] = int(count)
    return counts
