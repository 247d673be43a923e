"""Mailing use cases; they flush, the request's unit of work commits.

Each change registers its own announcement (log line, scheduler event) with the unit of work,
so the REST API and the admin UI only translate between HTTP and these calls. ``by`` names
the admin UI's operator behind a change (None through the REST API)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.deps import UnitOfWork
from herald_api.mailings.announce import announce, announce_created
from herald_api.mailings.schemas import (
    AllMailingStats,
    MailingCreate,
    MailingDetailStats,
    MailingFilter,
    MailingRead,
    MailingStats,
    MailingUpdate,
    ProgressRead,
    SendWindow,
    StatsTotals,
)
from herald_common.errors import Conflict, InvalidInput, MailingEnded, MailingStarted, NotFound
from herald_common.models import Mailing, MailingMessageCount, MailingProgress, Message
from herald_common.rules.mailings import end_move_refusal, has_started
from herald_common.rules.progress import Sample, estimate_progress
from herald_common.statuses import (
    IDLE_STATUSES,
    MailingState,
    MessageStatus,
)
from herald_common.tables import mailing as mailing_table
from herald_common.tables import message as message_table
from herald_common.tables.message_count import count_messages, empty_counts, settled

# Rates are measured against the progress sample nearest a minute ago, at least 10 s old.
PROGRESS_WINDOW = timedelta(seconds=60)
PROGRESS_MIN_AGE = timedelta(seconds=10)


def to_read(mailing: Mailing, now: datetime) -> MailingRead:
    return MailingRead(
        id=mailing.id,
        starts_at=mailing.starts_at,
        ends_at=mailing.ends_at,
        text=mailing.text,
        filter=MailingFilter(
            operator_codes=mailing.filter_operator_codes, tags=mailing.filter_tags
        ),
        send_window=SendWindow.from_times(mailing.window_start, mailing.window_end),
        state=_state(mailing, now),
        created_at=mailing.created_at,
        updated_at=mailing.updated_at,
        started_at=mailing.started_at,
        finished_at=mailing.finished_at,
        paused_at=mailing.paused_at,
    )


def _state(mailing: Mailing, now: datetime) -> MailingState:
    return mailing_table.state(
        now, mailing.starts_at, mailing.ends_at, mailing.finished_at, mailing.paused_at
    )


async def get_mailing(session: AsyncSession, mailing_id: int, *, lock: bool = False) -> Mailing:
    query = select(Mailing).where(Mailing.id == mailing_id, mailing_table.is_live())
    if lock:
        # NO KEY UPDATE: the id never changes, and this lock must not wait for (or hold up)
        # the foreign-key checks of messages being inserted for this mailing meanwhile.
        query = query.with_for_update(key_share=True)
    mailing = await session.scalar(query)
    if mailing is None:
        raise NotFound("mailing", mailing_id)
    return mailing


async def get_mailings(session: AsyncSession, ids: list[int]) -> list[Mailing]:
    """The live mailings among ``ids`` (others are left out, not refused)."""
    found = await session.scalars(
        select(Mailing).where(Mailing.id.in_(ids), mailing_table.is_live())
    )
    return list(found.all())


async def create_mailing(uow: UnitOfWork, data: MailingCreate, *, by: str | None) -> Mailing:
    session = uow.session
    window = data.send_window.times() if data.send_window else (None, None)
    mailing = Mailing(
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        text=data.text,
        filter_operator_codes=data.filter.operator_codes,
        filter_tags=data.filter.tags,
        window_start=window[0],
        window_end=window[1],
    )
    session.add(mailing)
    await session.flush()
    await session.refresh(mailing)
    announce_created(uow, mailing, data, by)
    return mailing


async def database_now(session: AsyncSession) -> datetime:
    """PostgreSQL's time, now (after any lock wait): whether a mailing has ended is decided on
    the clock the scheduler and the senders use, not on this host's."""
    now = await session.scalar(select(func.clock_timestamp()))
    assert isinstance(now, datetime)
    return now


async def update_mailing(
    uow: UnitOfWork, mailing_id: int, data: MailingUpdate, *, by: str | None
) -> Mailing:
    session = uow.session
    # The row lock orders this against the scheduler starting the mailing.
    mailing = await get_mailing(session, mailing_id, lock=True)
    now = await database_now(session)
    given = data.model_fields_set
    if mailing_table.is_past_end_at(now, mailing.ends_at):
        raise MailingEnded(mailing.id, mailing.ends_at)
    if data.ends_at is not None:
        refusal = end_move_refusal(now, mailing.ends_at, data.ends_at)
        if refusal is not None:
            raise InvalidInput("ends_at", refusal)
    if has_started(now, mailing.starts_at, mailing.started_at):
        frozen = []
        if data.starts_at is not None and data.starts_at != mailing.starts_at:
            frozen.append("starts_at")
        if data.filter is not None and (
            data.filter.operator_codes != sorted(mailing.filter_operator_codes)
            or data.filter.tags != sorted(mailing.filter_tags)
        ):
            frozen.append("filter")
        if frozen:
            raise MailingStarted(mailing.id, frozen)
    starts_at = data.starts_at or mailing.starts_at
    ends_at = data.ends_at or mailing.ends_at
    if ends_at <= starts_at:
        field = "ends_at" if data.ends_at is not None else "starts_at"
        raise InvalidInput(field, "ends_at must be later than starts_at")
    mailing.starts_at = starts_at
    mailing.ends_at = ends_at
    if data.text is not None:
        mailing.text = data.text
    if data.filter is not None:
        mailing.filter_operator_codes = data.filter.operator_codes
        mailing.filter_tags = data.filter.tags
    if "send_window" in given:
        start, end = data.send_window.times() if data.send_window else (None, None)
        if (start, end) != (mailing.window_start, mailing.window_end):
            mailing.window_start, mailing.window_end = start, end
            # Deferred messages waited for the old window; let the senders judge them anew.
            await message_table.rejudge_deferred(session, Message.mailing_id == mailing.id)
    mailing.updated_at = func.now()
    await session.flush()
    await session.refresh(mailing)
    announce(uow, "updated", mailing, by, fields=sorted(given))
    return mailing


async def delete_mailing(uow: UnitOfWork, mailing_id: int, *, by: str | None) -> int:
    """Soft delete: delivery stops; messages not in a provider call right now are cancelled.

    Returns how many messages were cancelled."""
    session = uow.session
    mailing = await get_mailing(session, mailing_id, lock=True)
    mailing.deleted_at = func.now()
    mailing.updated_at = func.now()
    cancelled = await message_table.move(
        session,
        Message.mailing_id == mailing_id,
        IDLE_STATUSES,
        MessageStatus.CANCELLED,
        last_error="the mailing was deleted",
        next_attempt_at=None,
    )
    await session.flush()
    await session.refresh(mailing)
    announce(uow, "deleted", mailing, by, cancelled=cancelled)
    return cancelled


async def list_mailings(
    session: AsyncSession, *, limit: int, after: int, state: MailingState | None, now: datetime
) -> list[Mailing]:
    query = (
        select(Mailing)
        .where(mailing_table.is_live(), Mailing.id > after)
        .order_by(Mailing.id)
        .limit(limit)
    )
    if state is not None:
        query = query.where(mailing_table.in_state(state, now))
    return list((await session.scalars(query)).all())


async def totals_by_status(session: AsyncSession) -> dict[str, int]:
    """Messages per status over every live mailing."""
    rows = await session.execute(
        select(MailingMessageCount.status, func.sum(MailingMessageCount.count).label("messages"))
        .join(Mailing, Mailing.id == MailingMessageCount.mailing_id)
        .where(mailing_table.is_live())
        .group_by(MailingMessageCount.status)
    )
    totals = empty_counts()
    for row in rows:
        totals[row.status] = int(row.messages)
    return totals


async def stats_of(
    session: AsyncSession, mailings: list[Mailing], now: datetime
) -> dict[int, MailingStats]:
    """Statistics of the given mailings only (a page of them)."""
    counts = await count_messages(session, [m.id for m in mailings])
    return {m.id: _stats(m, counts[m.id], now) for m in mailings}


def _ensure_not_over(mailing: Mailing, now: datetime, action: str) -> None:
    # The end, not "finished": a mailing whose messages are all settled may still retry.
    if mailing_table.is_past_end_at(now, mailing.ends_at):
        raise Conflict(f"mailing {mailing.id} has ended: it cannot {action}")


async def pause_mailing(uow: UnitOfWork, mailing_id: int, *, by: str | None) -> Mailing:
    """Nothing more is handed to the provider; calls already under way finish."""
    session = uow.session
    mailing = await get_mailing(session, mailing_id, lock=True)
    _ensure_not_over(mailing, await database_now(session), "be paused")
    if mailing.paused_at is None and mailing.finished_at is not None:
        # Nothing left to hold; retry-failed reopens it, and then it can be paused.
        raise Conflict(f"mailing {mailing.id} has finished: every message is settled")
    if mailing.paused_at is None:
        mailing.paused_at = func.now()
        mailing.updated_at = func.now()
        await message_table.move(
            session,
            Message.mailing_id == mailing.id,
            message_table.PAUSABLE,
            MessageStatus.PAUSED,
            next_attempt_at=None,
        )
        await session.flush()
        await session.refresh(mailing)
    announce(uow, "updated", mailing, by, action="paused")
    return mailing


async def resume_mailing(uow: UnitOfWork, mailing_id: int, *, by: str | None) -> Mailing:
    """Everyone paused is queued again, once: the scheduler re-queues them within a second."""
    session = uow.session
    mailing = await get_mailing(session, mailing_id, lock=True)
    _ensure_not_over(mailing, await database_now(session), "be resumed")
    if mailing.paused_at is not None:
        mailing.paused_at = None
        mailing.updated_at = func.now()
        await message_table.move(
            session,
            Message.mailing_id == mailing.id,
            (MessageStatus.PAUSED,),
            MessageStatus.DEFERRED,
            next_attempt_at=func.now(),
        )
        await session.flush()
        await session.refresh(mailing)
    announce(uow, "updated", mailing, by, action="resumed")
    return mailing


async def retry_failed(uow: UnitOfWork, mailing_id: int, *, by: str | None) -> int:
    """Give the failed messages a new round of attempts, before the mailing's end.

    Returns how many messages were queued again."""
    session = uow.session
    mailing = await get_mailing(session, mailing_id, lock=True)
    _ensure_not_over(mailing, await database_now(session), "retry messages")
    paused = mailing.paused_at is not None
    moved = await message_table.move(
        session,
        Message.mailing_id == mailing.id,
        (MessageStatus.FAILED,),
        MessageStatus.PAUSED if paused else MessageStatus.DEFERRED,
        attempts=0,
        next_attempt_at=None if paused else func.now(),
    )
    if moved and mailing.finished_at is not None:
        mailing.finished_at = None  # it has work again
    mailing.updated_at = func.now()
    await session.flush()
    announce(uow, "updated", mailing, by, action="retry_failed", requeued=moved)
    return moved


def _stats(mailing: Mailing, counts: dict[str, int], now: datetime) -> MailingStats:
    return MailingStats(
        id=mailing.id,
        state=_state(mailing, now),
        starts_at=mailing.starts_at,
        ends_at=mailing.ends_at,
        total=sum(counts.values()),
        by_status=counts,
    )


async def mailing_stats(
    session: AsyncSession, mailing_id: int, now: datetime
) -> MailingDetailStats:
    mailing = await get_mailing(session, mailing_id)
    counts = (await count_messages(session, [mailing.id]))[mailing.id]
    stats = _stats(mailing, counts, now)
    sample = (
        await session.execute(
            select(MailingProgress.sampled_at, MailingProgress.done)
            .where(
                MailingProgress.mailing_id == mailing.id,
                MailingProgress.sampled_at <= now - PROGRESS_MIN_AGE,
            )
            .order_by(
                func.abs(func.extract("epoch", now - PROGRESS_WINDOW - MailingProgress.sampled_at))
            )
            .limit(1)
        )
    ).first()
    progress = estimate_progress(
        now,
        total=stats.total,
        done=settled(counts),
        sample=Sample(sample.sampled_at, sample.done) if sample else None,
        started_at=mailing.started_at,
        running=stats.state == MailingState.RUNNING,
        deferred=counts[MessageStatus.DEFERRED],
    )
    return MailingDetailStats(
        **stats.model_dump(), progress=ProgressRead.model_validate(progress, from_attributes=True)
    )


async def all_stats(session: AsyncSession, now: datetime) -> AllMailingStats:
    mailings = list(
        (
            await session.scalars(
                select(Mailing).where(mailing_table.is_live()).order_by(Mailing.id)
            )
        ).all()
    )
    counts = await mailing_table.count_live_messages(session)
    stats = [_stats(m, counts.get(m.id) or empty_counts(), now) for m in mailings]
    totals = empty_counts()
    for item in stats:
        for status, count in item.by_status.items():
            totals[status] += count
    return AllMailingStats(
        mailings=stats,
        totals=StatsTotals(mailings=len(stats), total=sum(totals.values()), by_status=totals),
    )


async def list_messages(
    session: AsyncSession,
    mailing_id: int,
    *,
    limit: int,
    after: int,
    status: MessageStatus | None,
) -> list[Message]:
    await get_mailing(session, mailing_id)
    query = (
        select(Message)
        .where(Message.mailing_id == mailing_id, Message.id > after)
        .order_by(Message.id)
        .limit(limit)
    )
    if status is not None:
        query = query.where(Message.status == status)
    return list((await session.scalars(query)).all())
