"""What follows a mailing's change once it is committed: its log line and its event."""

from __future__ import annotations

import structlog

from herald_api.deps import UnitOfWork
from herald_api.mailings.schemas import MailingCreate
from herald_common.contracts import MailingEventKind
from herald_common.metrics import MESSAGE_TRANSITIONS
from herald_common.models import Mailing
from herald_common.statuses import MessageStatus

log = structlog.get_logger()


def announce(
    uow: UnitOfWork,
    kind: MailingEventKind,
    mailing: Mailing,
    by: str | None,
    cancelled: int = 0,
    **details: object,
) -> None:
    """After the commit: log what happened and tell the scheduler. ``by`` is the operator of
    a change made in the admin UI (None through the REST API)."""
    mailing_id, starts_at, ends_at = mailing.id, mailing.starts_at, mailing.ends_at
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if by is not None:
        details["by"] = by

    def announced() -> None:
        if kind == "deleted":
            MESSAGE_TRANSITIONS.labels(MessageStatus.CANCELLED).inc(cancelled)
            details["messages_cancelled"] = cancelled
        log.info(f"mailing_{kind}", mailing_id=mailing_id, **details)
        uow.events.publish(kind, mailing_id, starts_at, ends_at, request_id)

    uow.after_commit(announced)


def announce_created(
    uow: UnitOfWork, mailing: Mailing, data: MailingCreate, by: str | None
) -> None:
    """A new mailing's line carries what was asked for: times, filter and window."""
    asked = {
        "starts_at": mailing.starts_at.isoformat(),
        "ends_at": mailing.ends_at.isoformat(),
        "filter": data.filter.model_dump(),
        "send_window": data.send_window.model_dump() if data.send_window else None,
    }
    announce(uow, "created", mailing, by, 0, **asked)
