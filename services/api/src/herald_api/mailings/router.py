"""/api/v1/mailings: mailings, their messages and statistics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from herald_api.deps import Uow
from herald_api.errors import ERROR_RESPONSES
from herald_api.idempotency import Idempotency, IdempotencyKey
from herald_api.mailings import service
from herald_api.mailings.schemas import (
    AllMailingStats,
    MailingCreate,
    MailingDetailStats,
    MailingPage,
    MailingRead,
    MailingUpdate,
    MessagePage,
    MessageRead,
    RetryFailedResult,
)
from herald_api.observability import note_ids
from herald_api.pagination import After, Limit, next_after
from herald_api.validation import EntityId
from herald_common.statuses import MailingState, MessageStatus

router = APIRouter(prefix="/mailings", tags=["mailings"], responses=ERROR_RESPONSES)


def _now() -> datetime:
    return datetime.now(UTC)


@router.post(
    "", status_code=status.HTTP_201_CREATED, summary="Create a mailing", response_model=MailingRead
)
async def create_mailing(
    body: MailingCreate, uow: Uow, request: Request, idempotency_key: IdempotencyKey = None
) -> MailingRead | Response:
    """Create a mailing. If its start has come (and its end has not) it starts at once;
    otherwise it starts by itself at `starts_at`. One message per matching client. With an
    `Idempotency-Key`, a retry returns the first answer instead of a second mailing."""
    idempotency = Idempotency.of(uow.session, request, idempotency_key, body)
    if idempotency is not None and (replayed := await idempotency.replay()) is not None:
        return replayed
    mailing = await service.create_mailing(uow, body, by=None)
    note_ids(mailing_id=mailing.id)
    read = service.to_read(mailing, _now())
    if idempotency is not None:
        await idempotency.remember(status.HTTP_201_CREATED, read)
    return read


@router.get("", summary="List mailings")
async def list_mailings(
    uow: Uow,
    limit: Limit = 100,
    after: After = 0,
    state: Annotated[MailingState | None, Query(description="Only mailings in this state.")] = None,
) -> MailingPage:
    now = _now()
    mailings = await service.list_mailings(
        uow.session, limit=limit, after=after, state=state, now=now
    )
    return MailingPage(
        items=[service.to_read(m, now) for m in mailings],
        next_after=next_after([m.id for m in mailings], limit),
    )


@router.get("/stats", summary="Statistics of every mailing")
async def get_all_mailing_stats(uow: Uow) -> AllMailingStats:
    """Every mailing with its message count per status, and the totals over all of them."""
    return await service.all_stats(uow.session, _now())


@router.get("/{mailing_id:int}", summary="Get a mailing")
async def get_mailing(mailing_id: EntityId, uow: Uow) -> MailingRead:
    return service.to_read(await service.get_mailing(uow.session, mailing_id), _now())


@router.patch("/{mailing_id:int}", summary="Change a mailing")
async def update_mailing(mailing_id: EntityId, body: MailingUpdate, uow: Uow) -> MailingRead:
    """Change the given fields. After the start, `starts_at` and `filter` are fixed (409);
    new text, end or window apply to every message not yet sent."""
    mailing = await service.update_mailing(uow, mailing_id, body, by=None)
    return service.to_read(mailing, _now())


@router.delete(
    "/{mailing_id:int}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a mailing"
)
async def delete_mailing(mailing_id: EntityId, uow: Uow) -> Response:
    """Stop the mailing: messages not yet handed to the provider end `cancelled`."""
    await service.delete_mailing(uow, mailing_id, by=None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{mailing_id:int}/pause", summary="Pause a mailing")
async def pause_mailing(mailing_id: EntityId, uow: Uow) -> MailingRead:
    """Stop handing this mailing's messages to the provider (calls already under way finish).
    Its messages wait as `paused`; the end still applies. Pausing a paused mailing changes
    nothing; an ended one is 409, and so is a finished one (every message settled: nothing is
    left to hold; `retry-failed` reopens it)."""
    mailing = await service.pause_mailing(uow, mailing_id, by=None)
    return service.to_read(mailing, _now())


@router.post("/{mailing_id:int}/resume", summary="Resume a paused mailing")
async def resume_mailing(mailing_id: EntityId, uow: Uow) -> MailingRead:
    """Queue every paused message again, once: nobody is skipped or sent twice. Resuming a
    mailing that is not paused changes nothing; an ended one is 409."""
    mailing = await service.resume_mailing(uow, mailing_id, by=None)
    return service.to_read(mailing, _now())


@router.post("/{mailing_id:int}/retry-failed", summary="Send the failed messages again")
async def retry_failed_messages(mailing_id: EntityId, uow: Uow) -> RetryFailedResult:
    """Give every `failed` message of the mailing a new round of attempts (before its end;
    after it, 409). Sent, expired and cancelled messages are not touched."""
    return RetryFailedResult(requeued=await service.retry_failed(uow, mailing_id, by=None))


@router.get("/{mailing_id:int}/stats", summary="Statistics of one mailing")
async def get_mailing_stats(mailing_id: EntityId, uow: Uow) -> MailingDetailStats:
    """Counts per status (every status present), and progress: done/total, the rate over
    about the last minute, and the estimated finish at that rate."""
    return await service.mailing_stats(uow.session, mailing_id, _now())


@router.get("/{mailing_id:int}/messages", summary="Messages of a mailing")
async def list_mailing_messages(
    mailing_id: EntityId,
    uow: Uow,
    limit: Limit = 100,
    after: After = 0,
    status: Annotated[MessageStatus | None, Query(description="Only this status.")] = None,
) -> MessagePage:
    messages = await service.list_messages(
        uow.session, mailing_id, limit=limit, after=after, status=status
    )
    return MessagePage(
        items=[MessageRead.model_validate(m) for m in messages],
        next_after=next_after([m.id for m in messages], limit),
    )
