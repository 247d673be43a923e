"""Client use cases: they flush, the request's unit of work commits, and each registers
its own log line (and metric) to be written once committed, for the REST API and the admin
UI alike.

A use case registers its after-commit work last, once nothing more can fail: the admin UI
runs some in a savepoint, whose rollback the unit of work does not see.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.clients import staging
from herald_api.clients.imports import (
    ClientRows,
    ImportFormat,
    OnDuplicate,
    PhonesExist,
    read_rows,
)
from herald_api.clients.schemas import ClientCreate, ClientImportResult, ClientUpdate
from herald_api.deps import UnitOfWork
from herald_common.errors import DuplicatePhone, NotFound
from herald_common.metrics import MESSAGE_TRANSITIONS
from herald_common.models import Client, Message
from herald_common.rules.audience import default_operator_code
from herald_common.statuses import IDLE_STATUSES, MessageStatus
from herald_common.tables import client as client_table
from herald_common.tables import message

log = structlog.get_logger()


async def get_client(uow: UnitOfWork, client_id: int, *, lock: bool = False) -> Client:
    query = select(Client).where(Client.id == client_id, client_table.is_live())
    if lock:
        # NO KEY UPDATE: the id never changes, and this lock must not wait for (or hold up)
        # the foreign-key checks of messages being inserted for this client meanwhile.
        query = query.with_for_update(key_share=True)
    client = await uow.session.scalar(query)
    if client is None:
        raise NotFound("client", client_id)
    return client


async def _ensure_phone_free(session: AsyncSession, phone: str, except_id: int | None) -> None:
    query = select(Client.id).where(Client.phone == phone, client_table.is_live())
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


async def create_client(uow: UnitOfWork, data: ClientCreate) -> Client:
    session = uow.session
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
    # Read now: once committed, the row's attributes are expired.
    created = {
        "client_id": client.id,
        "operator_code": client.operator_code,
        "tag": client.tag,
        "timezone": client.timezone,
    }
    uow.after_commit(lambda: log.info("client_created", **created))
    return client


async def update_client(uow: UnitOfWork, client_id: int, data: ClientUpdate) -> Client:
    session = uow.session
    client = await get_client(uow, client_id, lock=True)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if "phone" in changes and changes["phone"] != client.phone:
        await _ensure_phone_free(session, changes["phone"], client.id)
        changes.setdefault("operator_code", default_operator_code(changes["phone"]))
    if "timezone" in changes and changes["timezone"] != client.timezone:
        # Its deferred messages wait for an opening in the old zone: judge them anew.
        await message.rejudge_deferred(session, Message.client_id == client.id)
    for field, value in changes.items():
        setattr(client, field, value)
    client.updated_at = func.now()
    await _flush(session, client.phone)
    await session.refresh(client)
    fields = sorted(data.model_dump(exclude_unset=True))
    uow.after_commit(lambda: log.info("client_updated", client_id=client_id, fields=fields))
    return client


async def delete_client(uow: UnitOfWork, client_id: int) -> int:
    """Soft delete: history stays; messages not yet in a provider call are cancelled.

    Returns how many messages were cancelled."""
    session = uow.session
    client = await get_client(uow, client_id, lock=True)
    client.deleted_at = func.now()
    client.updated_at = func.now()
    cancelled = await message.move(
        session,
        Message.client_id == client_id,
        IDLE_STATUSES,
        MessageStatus.CANCELLED,
        last_error="the client was deleted",
        next_attempt_at=None,
    )
    await session.flush()

    def deleted() -> None:
        MESSAGE_TRANSITIONS.labels(MessageStatus.CANCELLED).inc(cancelled)
        log.info("client_deleted", client_id=client_id, messages_cancelled=cancelled)

    uow.after_commit(deleted)
    return cancelled


async def list_clients(
    uow: UnitOfWork,
    *,
    limit: int,
    after: int,
    tag: str | None,
    operator_code: str | None,
    phone: str | None,
) -> list[Client]:
    query = (
        select(Client)
        .where(client_table.is_live(), Client.id > after)
        .order_by(Client.id)
        .limit(limit)
    )
    if tag is not None:
        query = query.where(Client.tag == tag)
    if operator_code is not None:
        query = query.where(Client.operator_code == operator_code)
    if phone is not None:
        query = query.where(Client.phone == phone)
    return list((await uow.session.scalars(query)).all())


@dataclass(frozen=True)
class ImportOutcome:
    """What an import did, and where its time went (for the log)."""

    result: ClientImportResult
    copy_ms: float  # receiving, parsing and validating the file, COPY into the staging table
    check_ms: float  # phones twice in the file, sorting; for ``reject``, phones of live clients
    write_ms: float  # the set-based writes into ``client``


async def import_clients(
    uow: UnitOfWork,
    fmt: ImportFormat | None,
    chunks: AsyncIterable[bytes],
    on_duplicate: OnDuplicate,
    *,
    max_bytes: int,
    by: str | None = None,
) -> ClientImportResult:
    """Import a file of ``fmt`` (told from its first character when None) streamed as
    ``chunks``, all or nothing; one ``clients_imported`` line once committed (with ``by``,
    who did it, when given).

    Raises ``ImportRefused`` (``InvalidRows``, ``PhonesExist``, ``ImportTooLarge``): the
    transaction then rolls back, writing nothing."""
    started = time.perf_counter()
    rows = await read_rows(fmt, chunks, max_bytes)
    outcome = await _merge(uow.session, rows, on_duplicate)
    fields = {
        "format": rows.format.name.lower(),
        "on_duplicate": on_duplicate.value,
        **outcome.result.model_dump(),
    }
    if by is not None:
        fields["by"] = by

    def imported() -> None:
        log.info(
            "clients_imported",
            **fields,
            duration_ms=_ms(time.perf_counter() - started),
            copy_ms=outcome.copy_ms,
            check_ms=outcome.check_ms,
            write_ms=outcome.write_ms,
        )

    uow.after_commit(imported)
    return outcome.result


async def _merge(
    session: AsyncSession, rows: ClientRows, on_duplicate: OnDuplicate
) -> ImportOutcome:
    """Stream the valid rows into a temporary table with COPY, then merge it into ``client``
    set-based. Raises ``InvalidRows`` (row errors, phones twice in the file) or
    ``PhonesExist`` (``reject``).

    ``update`` is an UPDATE of the live clients that differ, then an INSERT of the rest: an
    ``ON CONFLICT DO UPDATE`` would lock (and write) every existing row, even unchanged ones.
    """
    started = time.perf_counter()
    # Hashing and sorting a million rows in memory rather than in temporary files.
    await session.execute(text("SET LOCAL work_mem = '128MB'"))
    await session.execute(staging.CREATE_RECEIVED)
    connection = await session.connection()
    driver: Any = (await connection.get_raw_connection()).driver_connection
    async with driver.cursor() as cursor, cursor.copy(staging.COPY_RECEIVED) as copy:
        async for block in rows:
            await copy.write(block)
    copied = time.perf_counter()
    await _refuse_duplicates_in_file(session, rows)
    await session.execute(staging.SORT)
    await session.execute(staging.DROP_RECEIVED)
    await session.execute(staging.ANALYZE_SORTED)
    if on_duplicate is OnDuplicate.REJECT:
        await _refuse_existing(session)
    checked = time.perf_counter()
    result = await _write(session, rows.rows, on_duplicate)
    return ImportOutcome(
        result=result,
        copy_ms=_ms(copied - started),
        check_ms=_ms(checked - copied),
        write_ms=_ms(time.perf_counter() - checked),
    )


async def _write(
    session: AsyncSession, total: int, on_duplicate: OnDuplicate
) -> ClientImportResult:
    if on_duplicate is OnDuplicate.REJECT:
        try:
            async with session.begin_nested():
                await session.execute(staging.INSERT_ALL)
        except IntegrityError as error:
            # A phone of the file was given to a client concurrently, after the check.
            if "uq_client_phone_live" not in str(error.orig):
                raise
            await _refuse_existing(session)
            raise
        return ClientImportResult(created=total, updated=0, skipped=0, total=total)
    updated = 0
    if on_duplicate is OnDuplicate.UPDATE:
        await session.execute(staging.REPLAN_MOVED)
        updated = _rowcount(await session.execute(staging.UPDATE_EXISTING))
    # Existing phones are skipped here: those updated above, those equal, and any that a
    # concurrent request took meanwhile.
    created = _rowcount(await session.execute(staging.INSERT_NEW))
    return ClientImportResult(
        created=created, updated=updated, skipped=total - created - updated, total=total
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _rowcount(result: Any) -> int:
    count: int = result.rowcount
    return count


async def _refuse_duplicates_in_file(session: AsyncSession, rows: ClientRows) -> None:
    found = (await session.execute(staging.DUPLICATES_IN_FILE)).all()
    for row in found:
        rows.errors.add(row.line, "phone", f"{row.phone} is also on line {row.first_line}")
    if found:
        rows.errors.count_more(found[0].total - len(found))
    if rows.errors.count:
        raise rows.errors.refuse()


async def _refuse_existing(session: AsyncSession) -> None:
    found = (await session.execute(staging.EXISTING)).all()
    if found:
        raise PhonesExist([row.phone for row in found], found[0].total)


async def audience_size(session: AsyncSession, operator_codes: list[str], tags: list[str]) -> int:
    """How many live clients a mailing with this filter would reach now."""
    query = (
        select(func.count())
        .select_from(Client)
        .where(client_table.in_audience(operator_codes, tags))
    )
    return int(await session.scalar(query) or 0)
