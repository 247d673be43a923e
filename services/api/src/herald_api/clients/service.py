"""Client use cases; they flush, the request's unit of work commits."""

from __future__ import annotations

from herald_common.errors import DuplicatePhone, NotFound
from herald_common.models import Client, Message
from herald_common.rules.audience import default_operator_code
from herald_common.statuses import IDLE_STATUSES, MessageStatus
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.clients.schemas import ClientCreate, ClientUpdate


async def get_client(session: AsyncSession, client_id: int, *, lock: bool = False) -> Client:
    query = select(Client).where(Client.id == client_id, Client.deleted_at.is_(None))
    if lock:
        query = query.with_for_update()
    client = await session.scalar(query)
    if client is None:
        raise NotFound("client", client_id)
    return client


async def _ensure_phone_free(session: AsyncSession, phone: str, except_id: int | None) -> None:
    query = select(Client.id).where(Client.phone == phone, Client.deleted_at.is_(None))
    if except_id is not None:
        query = query.where(Client.id != except_id)
    if await session.scalar(query) is not None:
        raise DuplicatePhone(phone)


async def _flush(session: AsyncSession, phone: str) -> None:
    try:
        await session.flush()
    except IntegrityError as error:
        # Lost a race with a concurrent create of the same phone.
        if "uq_client_phone_live" in str(error.orig):
            raise DuplicatePhone(phone) from error
        raise


async def create_client(session: AsyncSession, data: ClientCreate) -> Client:
    await _ensure_phone_free(session, data.phone, None)
    client = Client(
        phone=data.phone,
        operator_code=data.operator_code or default_operator_code(data.phone),
        tag=data.tag,
        timezone=data.timezone,
    )
    session.add(client)
    await _flush(session, data.phone)
    await session.refresh(client)
    return client


async def update_client(session: AsyncSession, client_id: int, data: ClientUpdate) -> Client:
    client = await get_client(session, client_id, lock=True)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if "phone" in changes and changes["phone"] != client.phone:
        await _ensure_phone_free(session, changes["phone"], client.id)
        changes.setdefault("operator_code", default_operator_code(changes["phone"]))
    for field, value in changes.items():
        setattr(client, field, value)
    client.updated_at = func.now()
    await _flush(session, client.phone)
    await session.refresh(client)
    return client


async def delete_client(session: AsyncSession, client_id: int) -> int:
    """Soft delete: history stays; messages not yet in a provider call are cancelled.

    Returns how many messages were cancelled."""
    client = await get_client(session, client_id, lock=True)
    client.deleted_at = func.now()
    client.updated_at = func.now()
    result = await session.execute(
        update(Message)
        .where(Message.client_id == client_id, Message.status.in_(IDLE_STATUSES))
        .values(
            status=MessageStatus.CANCELLED,
            last_error="the client was deleted",
            updated_at=func.now(),
            next_attempt_at=None,
        )
    )
    await session.flush()
    cancelled: int = result.rowcount  # type: ignore[attr-defined]
    return cancelled


async def list_clients(
    session: AsyncSession,
    *,
    limit: int,
    after: int,
    tag: str | None,
    operator_code: str | None,
    phone: str | None,
) -> list[Client]:
    query = (
        select(Client)
        .where(Client.deleted_at.is_(None), Client.id > after)
        .order_by(Client.id)
        .limit(limit)
    )
    if tag is not None:
        query = query.where(Client.tag == tag)
    if operator_code is not None:
        query = query.where(Client.operator_code == operator_code)
    if phone is not None:
        query = query.where(Client.phone == phone)
    return list((await session.scalars(query)).all())
