"""Log lines of a client's changes, written once committed (REST API and admin UI alike)."""

from __future__ import annotations

import structlog

from herald_api.clients.schemas import ClientRead
from herald_api.deps import UnitOfWork
from herald_common.metrics import MESSAGE_TRANSITIONS
from herald_common.statuses import MessageStatus

log = structlog.get_logger()


def client_created(uow: UnitOfWork, read: ClientRead) -> None:
    uow.after_commit(
        lambda: log.info(
            "client_created",
            client_id=read.id,
            operator_code=read.operator_code,
            tag=read.tag,
            timezone=read.timezone,
        )
    )


def client_updated(uow: UnitOfWork, client_id: int, fields: list[str]) -> None:
    uow.after_commit(lambda: log.info("client_updated", client_id=client_id, fields=fields))


def client_deleted(uow: UnitOfWork, client_id: int, cancelled: int) -> None:
    def deleted() -> None:
        MESSAGE_TRANSITIONS.labels(MessageStatus.CANCELLED).inc(cancelled)
        log.info("client_deleted", client_id=client_id, messages_cancelled=cancelled)

    uow.after_commit(deleted)
