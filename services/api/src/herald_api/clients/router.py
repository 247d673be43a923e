"""/api/v1/clients: the client directory."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Query, Response, status
from herald_common.metrics import MESSAGE_TRANSITIONS
from herald_common.statuses import MessageStatus

from herald_api.clients import service
from herald_api.clients.schemas import ClientCreate, ClientRead, ClientUpdate
from herald_api.deps import Uow
from herald_api.errors import ERROR_RESPONSES
from herald_api.observability import note_ids
from herald_api.pagination import After, Limit, Page, next_after
from herald_api.validation import EntityId, OperatorCode, Phone, Tag

log = structlog.get_logger()
router = APIRouter(prefix="/clients", tags=["clients"], responses=ERROR_RESPONSES)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Add a client")
async def create_client(body: ClientCreate, uow: Uow) -> ClientRead:
    """Add a client. The operator code defaults to digits 2–4 of the phone. 409 if a live
    client already has the phone."""
    client = await service.create_client(uow.session, body)
    note_ids(client_id=client.id)
    read = ClientRead.model_validate(client)
    uow.after_commit(
        lambda: log.info(
            "client_created",
            client_id=read.id,
            operator_code=read.operator_code,
            tag=read.tag,
            timezone=read.timezone,
        )
    )
    return read


@router.get("", summary="List clients")
async def list_clients(
    uow: Uow,
    limit: Limit = 100,
    after: After = 0,
    tag: Annotated[Tag | None, Query(description="Only clients with this tag.")] = None,
    operator_code: Annotated[OperatorCode | None, Query()] = None,
    phone: Annotated[Phone | None, Query()] = None,
) -> Page[ClientRead]:
    clients = await service.list_clients(
        uow.session, limit=limit, after=after, tag=tag, operator_code=operator_code, phone=phone
    )
    return Page(
        items=[ClientRead.model_validate(c) for c in clients],
        next_after=next_after([c.id for c in clients], limit),
    )


@router.get("/{client_id}", summary="Get a client")
async def get_client(client_id: EntityId, uow: Uow) -> ClientRead:
    return ClientRead.model_validate(await service.get_client(uow.session, client_id))


@router.patch("/{client_id}", summary="Change a client")
async def update_client(client_id: EntityId, body: ClientUpdate, uow: Uow) -> ClientRead:
    """Change the given fields. Messages already created keep going to this client."""
    client = await service.update_client(uow.session, client_id, body)
    fields = sorted(body.model_dump(exclude_unset=True))
    uow.after_commit(lambda: log.info("client_updated", client_id=client_id, fields=fields))
    return ClientRead.model_validate(client)


@router.delete("/{client_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a client")
async def delete_client(client_id: EntityId, uow: Uow) -> Response:
    """Remove the client from the directory; its pending messages end `cancelled`, its
    history stays in the statistics."""
    cancelled = await service.delete_client(uow.session, client_id)

    def deleted() -> None:
        MESSAGE_TRANSITIONS.labels(MessageStatus.CANCELLED).inc(cancelled)
        log.info("client_deleted", client_id=client_id, messages_cancelled=cancelled)

    uow.after_commit(deleted)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
