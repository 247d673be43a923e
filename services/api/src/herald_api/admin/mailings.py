"""Admin pages: the dashboard and mailings (list, detail, create, edit, controls)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from herald_api.admin.charts import column_chart, settled_per_bucket
from herald_api.admin.forms import (
    FieldErrors,
    mailing_payload,
    read_form,
    validate,
)
from herald_api.admin.rendering import flash, render
from herald_api.admin.session import User
from herald_api.deps import Uow
from herald_api.idempotency import Idempotency, request_hash
from herald_api.mailings import service
from herald_api.mailings.schemas import MailingCreate, MailingRead, MailingUpdate, MessageRead
from herald_api.observability import note_ids
from herald_common.errors import Conflict, IdempotencyKeyReused, InvalidInput
from herald_common.models import MailingProgress
from herald_common.rules.mailings import has_started
from herald_common.statuses import ALL_STATUSES, MailingState, MessageStatus
from herald_common.tables import mailing as mailing_table

router = APIRouter()
PAGE = 50
RUNNING_SHOWN = 20
CHART_SPAN = timedelta(minutes=15)
# The form's times, to the second, as <input type="datetime-local" step="1"> shows them.
FORM_TIME = "%Y-%m-%dT%H:%M:%S"


def _now() -> datetime:
    return datetime.now(UTC)


def _status_rows(by_status: dict[str, int]) -> list[tuple[str, int]]:
    return [(status.value, by_status.get(status.value, 0)) for status in ALL_STATUSES]


@router.get("/", name="dashboard")
async def dashboard(request: Request, uow: Uow, user: User) -> Response:
    now = _now()
    totals = await service.totals_by_status(uow.session)
    states = await mailing_table.count_by_state(uow.session, now)
    running = await service.list_mailings(
        uow.session, limit=RUNNING_SHOWN, after=0, state=MailingState.RUNNING, now=now
    )
    running_stats = await service.stats_of(uow.session, running, now)
    # A sample from before the span too: the growth into its first minute needs a baseline.
    samples = (
        await uow.session.execute(
            select(
                MailingProgress.mailing_id, MailingProgress.sampled_at, MailingProgress.done
            ).where(MailingProgress.sampled_at >= now - CHART_SPAN - timedelta(minutes=1))
        )
    ).all()
    per_minute = settled_per_bucket(
        [(row.mailing_id, row.sampled_at, row.done) for row in samples], now, span=CHART_SPAN
    )
    return render(
        request,
        "dashboard.html",
        {
            "mailing_count": sum(states.values()),
            "message_count": sum(totals.values()),
            "totals": totals,
            "status_rows": _status_rows(totals),
            "running": [running_stats[m.id] for m in running],
            "chart": column_chart([(at.strftime("%H:%M"), count) for at, count in per_minute]),
            "chart_total": sum(count for _, count in per_minute),
            "states": states,
        },
    )


@router.get("/mailings", name="mailings")
async def mailings_page(
    request: Request,
    uow: Uow,
    user: User,
    state: MailingState | None = None,
    after: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    now = _now()
    mailings = await service.list_mailings(
        uow.session, limit=PAGE, after=after, state=state, now=now
    )
    return render(
        request,
        "mailings.html",
        {
            "mailings": [service.to_read(m, now) for m in mailings],
            "stats": await service.stats_of(uow.session, mailings, now),
            "state": state.value if state else "",
            "states": [s.value for s in MailingState],
            "next_after": mailings[-1].id if len(mailings) == PAGE else None,
        },
    )


def _form_page(
    request: Request,
    form: dict[str, str],
    errors: FieldErrors,
    mailing_id: int | None = None,
    *,
    started: bool = False,
    status_code: int = 200,
) -> Response:
    context = {"form": form, "errors": errors, "mailing_id": mailing_id, "started": started}
    return render(request, "mailing_form.html", context, status_code)


@router.get("/mailings/new", name="mailing_new")
async def mailing_new(request: Request, user: User) -> Response:
    # A key of this form's own: a double click or a resubmitted page creates one mailing.
    return _form_page(request, {"tz": "UTC", "form_key": secrets.token_urlsafe(18)}, {})


@router.post("/mailings/new", name="mailing_create")
async def mailing_create(request: Request, uow: Uow, user: User) -> Response:
    form = await read_form(request)
    payload, errors = mailing_payload(form)
    data, errors = validate(MailingCreate, payload, errors)
    if data is None:
        return _form_page(request, form, errors, status_code=422)
    idempotency = None
    if key := form.get("form_key"):
        idempotency = Idempotency(
            uow.session, f"admin:{user.subject}"[:64], key, request_hash(request, data)
        )
        try:
            replayed = await idempotency.replay()
        except IdempotencyKeyReused:
            message = "this form already created a mailing: open a new form for another one"
            return _form_page(request, form, {"form": message}, status_code=409)
        if replayed is not None:
            first = orjson.loads(bytes(replayed.body))
            return RedirectResponse(f"/admin/mailings/{first['id']}", status_code=303)
    mailing = await service.create_mailing(uow, data, by=user.operator)
    note_ids(mailing_id=mailing.id)
    if idempotency is not None:
        await idempotency.remember(201, service.to_read(mailing, _now()))
    flash(request, f"Mailing {mailing.id} created.")
    return RedirectResponse(f"/admin/mailings/{mailing.id}", status_code=303)


@router.get("/mailings/{mailing_id:int}", name="mailing")
async def mailing_page(
    request: Request,
    uow: Uow,
    user: User,
    mailing_id: int,
    status: MessageStatus | None = None,
    after: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    now = _now()
    mailing = await service.get_mailing(uow.session, mailing_id)
    note_ids(mailing_id=mailing.id)
    stats = await service.mailing_stats(uow.session, mailing_id, now)
    messages = await service.list_messages(
        uow.session, mailing_id, limit=PAGE, after=after, status=status
    )
    read = service.to_read(mailing, now)
    return render(
        request,
        "mailing.html",
        {
            "mailing": read,
            "stats": stats,
            "status_rows": _status_rows(stats.by_status),
            # The end, not "finished": all settled, failed ones may be retried until it.
            "can_retry": stats.by_status[MessageStatus.FAILED] > 0
            and not mailing_table.is_past_end_at(now, mailing.ends_at),
            "can_pause": read.state in (MailingState.RUNNING, MailingState.SCHEDULED),
            "can_resume": read.state == MailingState.PAUSED,
            "messages": [MessageRead.model_validate(m) for m in messages],
            "status": status.value if status else "",
            "statuses": [s.value for s in ALL_STATUSES],
            "next_after": messages[-1].id if len(messages) == PAGE else None,
        },
    )


def _form_of(mailing: MailingRead) -> dict[str, str]:
    return {
        "tz": "UTC",
        "starts_at": mailing.starts_at.astimezone(UTC).strftime(FORM_TIME),
        "ends_at": mailing.ends_at.astimezone(UTC).strftime(FORM_TIME),
        "text": mailing.text,
        "operator_codes": ", ".join(mailing.filter.operator_codes),
        "tags": ", ".join(mailing.filter.tags),
        "window_start": mailing.send_window.start if mailing.send_window else "",
        "window_end": mailing.send_window.end if mailing.send_window else "",
    }


@router.get("/mailings/{mailing_id:int}/edit", name="mailing_edit")
async def mailing_edit(request: Request, uow: Uow, user: User, mailing_id: int) -> Response:
    now = _now()
    mailing = await service.get_mailing(uow.session, mailing_id)
    started = has_started(now, mailing.starts_at, mailing.started_at)
    return _form_page(
        request, _form_of(service.to_read(mailing, now)), {}, mailing_id, started=started
    )


@router.post("/mailings/{mailing_id:int}/edit", name="mailing_update")
async def mailing_update(request: Request, uow: Uow, user: User, mailing_id: int) -> Response:
    now = _now()
    mailing = await service.get_mailing(uow.session, mailing_id)
    started = has_started(now, mailing.starts_at, mailing.started_at)
    form = await read_form(request)
    payload, errors = mailing_payload(form, partial=True)
    # Only what the operator changed is sent: a field shown and sent back as it was is no
    # change, even to what can no longer change once started.
    stored, _ = mailing_payload(_form_of(service.to_read(mailing, now)), partial=True)
    for name in ("starts_at", "ends_at", "text", "filter", "send_window"):
        if name in payload and name in stored and payload[name] == stored[name]:
            del payload[name]
    data, errors = validate(MailingUpdate, payload, errors)
    if data is None:
        return _form_page(request, form, errors, mailing_id, started=started, status_code=422)
    try:
        await service.update_mailing(uow, mailing_id, data, by=user.operator)
    except (Conflict, InvalidInput) as error:
        field = getattr(error, "field", "form")
        code = 409 if isinstance(error, Conflict) else 422
        return _form_page(
            request, form, {field: error.message}, mailing_id, started=started, status_code=code
        )
    flash(request, "Saved." if data.model_fields_set else "Nothing changed.")
    return RedirectResponse(f"/admin/mailings/{mailing_id}", status_code=303)


def _back(request: Request, mailing_id: int, notice: str) -> Response:
    flash(request, notice)
    return RedirectResponse(f"/admin/mailings/{mailing_id}", status_code=303)


@router.post("/mailings/{mailing_id:int}/pause", name="mailing_pause")
async def mailing_pause(request: Request, uow: Uow, user: User, mailing_id: int) -> Response:
    await service.pause_mailing(uow, mailing_id, by=user.operator)
    return _back(request, mailing_id, "Paused.")


@router.post("/mailings/{mailing_id:int}/resume", name="mailing_resume")
async def mailing_resume(request: Request, uow: Uow, user: User, mailing_id: int) -> Response:
    await service.resume_mailing(uow, mailing_id, by=user.operator)
    return _back(request, mailing_id, "Resumed.")


@router.post("/mailings/{mailing_id:int}/retry-failed", name="mailing_retry_failed")
async def mailing_retry_failed(request: Request, uow: Uow, user: User, mailing_id: int) -> Response:
    moved = await service.retry_failed(uow, mailing_id, by=user.operator)
    return _back(request, mailing_id, f"{moved} failed messages queued again.")


@router.post("/mailings/{mailing_id:int}/cancel", name="mailing_cancel")
async def mailing_cancel(request: Request, uow: Uow, user: User, mailing_id: int) -> Response:
    """The REST API's DELETE: delivery stops, messages not yet handed over end cancelled."""
    cancelled = await service.delete_mailing(uow, mailing_id, by=user.operator)
    flash(request, f"Mailing {mailing_id} cancelled and deleted: {cancelled} messages cancelled.")
    return RedirectResponse("/admin/mailings", status_code=303)
