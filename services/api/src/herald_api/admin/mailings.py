"""Admin pages: the dashboard, mailings (list, detail, create, edit, controls) and the JSON
the pages poll for live progress and the audience preview."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import func, select

from herald_api.admin.charts import column_chart, settled_per_bucket
from herald_api.admin.forms import FieldErrors, mailing_payload, split_codes, split_tags, validate
from herald_api.admin.rendering import render
from herald_api.admin.session import User
from herald_api.deps import Uow
from herald_api.mailings import service
from herald_api.mailings.announce import announce
from herald_api.mailings.schemas import MailingCreate, MailingUpdate, MessageRead
from herald_api.observability import note_ids
from herald_common.errors import Conflict, InvalidInput
from herald_common.models import Client, Mailing, MailingProgress
from herald_common.stats import count_messages
from herald_common.statuses import ALL_STATUSES, TERMINAL_STATUSES, MailingState, MessageStatus

router = APIRouter()
PAGE = 50
RUNNING_SHOWN = 20


def _now() -> datetime:
    return datetime.now(UTC)


def _status_rows(by_status: dict[str, int]) -> list[tuple[str, int]]:
    return [(status.value, by_status.get(status.value, 0)) for status in ALL_STATUSES]


@router.get("/", name="dashboard")
async def dashboard(request: Request, uow: Uow, user: User) -> Response:
    now = _now()
    stats = await service.all_stats(uow.session, now)
    running = [m for m in stats.mailings if m.state == MailingState.RUNNING][:RUNNING_SHOWN]
    samples = (
        await uow.session.execute(
            select(MailingProgress.mailing_id, MailingProgress.sampled_at, MailingProgress.done)
        )
    ).all()
    per_minute = settled_per_bucket([(m, s, d) for m, s, d in samples], now)
    chart = column_chart([(at.strftime("%H:%M"), count) for at, count in per_minute])
    return render(
        request,
        "dashboard.html",
        {
            "totals": stats.totals,
            "status_rows": _status_rows(stats.totals.by_status),
            "running": running,
            "chart": chart,
            "chart_total": sum(count for _, count in per_minute),
            "states": _count_states(stats.mailings),
        },
    )


def _count_states(mailings: list[Any]) -> dict[str, int]:
    counts = {state.value: 0 for state in MailingState}
    for mailing in mailings:
        counts[mailing.state.value] += 1
    return counts


@router.get("/mailings", name="mailings")
async def mailings_page(
    request: Request,
    uow: Uow,
    user: User,
    state: MailingState | None = None,
    after: Annotated[int, Query(ge=0)] = 0,
    notice: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    now = _now()
    mailings = await service.list_mailings(
        uow.session, limit=PAGE, after=after, state=state, now=now
    )
    stats = await service.all_stats(uow.session, now)
    by_id = {m.id: m for m in stats.mailings}
    return render(
        request,
        "mailings.html",
        {
            "mailings": [service.to_read(m, now) for m in mailings],
            "stats": by_id,
            "state": state.value if state else "",
            "states": [s.value for s in MailingState],
            "next_after": mailings[-1].id if len(mailings) == PAGE else None,
            "notice": notice,
        },
    )


@router.get("/mailings/progress", name="mailings_progress")
async def mailings_progress(
    uow: Uow, user: User, ids: Annotated[str, Query(max_length=2000)] = ""
) -> JSONResponse:
    """Done, total and state of the given mailings, for the pages' progress bars."""
    wanted = sorted({int(part) for part in ids.split(",") if part.isdigit() and len(part) < 19})
    mailings = (
        await uow.session.scalars(
            select(Mailing).where(Mailing.id.in_(wanted[:200]), Mailing.deleted_at.is_(None))
        )
    ).all()
    counts = await count_messages(uow.session, [m.id for m in mailings])
    now = _now()
    answer: dict[str, Any] = {}
    for mailing in mailings:
        by_status = counts[mailing.id]
        total = sum(by_status.values())
        done = sum(by_status[s.value] for s in TERMINAL_STATUSES)
        answer[str(mailing.id)] = {
            "done": done,
            "total": total,
            "percent": round(100 * done / total, 1) if total else 0.0,
            "state": service.to_read(mailing, now).state.value,
            "by_status": by_status,
        }
    return JSONResponse(answer)


@router.get("/audience", name="audience")
async def audience(
    uow: Uow,
    user: User,
    operator_codes: Annotated[str, Query(max_length=2000)] = "",
    tags: Annotated[str, Query(max_length=8000)] = "",
) -> JSONResponse:
    """How many live clients a filter matches now: the form's live preview."""
    codes, tag_list = split_codes(operator_codes), split_tags(tags)
    query = select(func.count()).select_from(Client).where(Client.deleted_at.is_(None))
    if codes:
        query = query.where(Client.operator_code.in_(codes))
    if tag_list:
        query = query.where(Client.tag.in_(tag_list))
    count = int(await uow.session.scalar(query) or 0)
    return JSONResponse({"count": count, "operator_codes": codes, "tags": tag_list})


def _form_context(
    form: dict[str, str], errors: FieldErrors, mailing_id: int | None = None, **extra: Any
) -> dict[str, Any]:
    return {"form": form, "errors": errors, "mailing_id": mailing_id, **extra}


@router.get("/mailings/new", name="mailing_new")
async def mailing_new(request: Request, user: User) -> Response:
    return render(request, "mailing_form.html", _form_context({"tz": "UTC"}, {}))


async def _form_fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


@router.post("/mailings/new", name="mailing_create")
async def mailing_create(request: Request, uow: Uow, user: User) -> Response:
    form = await _form_fields(request)
    payload, errors = mailing_payload(form)
    data, errors = validate(MailingCreate, payload, errors)
    if data is None:
        return render(request, "mailing_form.html", _form_context(form, errors), 422)
    mailing = await service.create_mailing(uow.session, data)
    note_ids(mailing_id=mailing.id)
    announce(
        uow,
        "created",
        mailing,
        starts_at=mailing.starts_at.isoformat(),
        ends_at=mailing.ends_at.isoformat(),
        filter=data.filter.model_dump(),
        send_window=data.send_window.model_dump() if data.send_window else None,
        by=user.email,
    )
    return RedirectResponse(f"/admin/mailings/{mailing.id}", status_code=303)


@router.get("/mailings/{mailing_id:int}", name="mailing")
async def mailing_page(
    request: Request,
    uow: Uow,
    user: User,
    mailing_id: int,
    status: MessageStatus | None = None,
    after: Annotated[int, Query(ge=0)] = 0,
    notice: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    now = _now()
    mailing = await service.get_mailing(uow.session, mailing_id)
    note_ids(mailing_id=mailing.id)
    stats = await service.mailing_stats(uow.session, mailing_id, now)
    messages = await service.list_messages(
        uow.session, mailing_id, limit=PAGE, after=after, status=status
    )
    return render(
        request,
        "mailing.html",
        {
            "mailing": service.to_read(mailing, now),
            "stats": stats,
            "status_rows": _status_rows(stats.by_status),
            "messages": [MessageRead.model_validate(m) for m in messages],
            "status": status.value if status else "",
            "statuses": [s.value for s in ALL_STATUSES],
            "next_after": messages[-1].id if len(messages) == PAGE else None,
            "notice": notice,
        },
    )


@router.get("/mailings/{mailing_id:int}/edit", name="mailing_edit")
async def mailing_edit(request: Request, uow: Uow, user: User, mailing_id: int) -> Response:
    now = _now()
    mailing = service.to_read(await service.get_mailing(uow.session, mailing_id), now)
    form = {
        "tz": "UTC",
        "starts_at": mailing.starts_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"),
        "ends_at": mailing.ends_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"),
        "text": mailing.text,
        "operator_codes": ", ".join(mailing.filter.operator_codes),
        "tags": ", ".join(mailing.filter.tags),
        "window_start": mailing.send_window.start if mailing.send_window else "",
        "window_end": mailing.send_window.end if mailing.send_window else "",
    }
    started = mailing.state != MailingState.SCHEDULED
    return render(
        request, "mailing_form.html", _form_context(form, {}, mailing_id, started=started)
    )


@router.post("/mailings/{mailing_id:int}/edit", name="mailing_update")
async def mailing_update(request: Request, uow: Uow, user: User, mailing_id: int) -> Response:
    form = await _form_fields(request)
    payload, errors = mailing_payload(form, partial=True)
    data, errors = validate(MailingUpdate, payload, errors)
    started = form.get("started") == "1"
    if data is None:
        context = _form_context(form, errors, mailing_id, started=started)
        return render(request, "mailing_form.html", context, 422)
    try:
        mailing = await service.update_mailing(uow.session, mailing_id, data, _now())
    except (Conflict, InvalidInput) as error:
        field = getattr(error, "field", "form")
        context = _form_context(form, {field: error.message}, mailing_id, started=started)
        return render(
            request, "mailing_form.html", context, 409 if isinstance(error, Conflict) else 422
        )
    announce(uow, "updated", mailing, fields=sorted(data.model_fields_set), by=user.email)
    return _back(mailing_id, "Saved.")


def _back(mailing_id: int, notice: str) -> Response:
    return RedirectResponse(
        f"/admin/mailings/{mailing_id}?notice={notice.replace(' ', '+')}", status_code=303
    )


@router.post("/mailings/{mailing_id:int}/pause", name="mailing_pause")
async def mailing_pause(uow: Uow, user: User, mailing_id: int) -> Response:
    mailing = await service.pause_mailing(uow.session, mailing_id, _now())
    announce(uow, "updated", mailing, action="paused", by=user.email)
    return _back(mailing_id, "Paused.")


@router.post("/mailings/{mailing_id:int}/resume", name="mailing_resume")
async def mailing_resume(uow: Uow, user: User, mailing_id: int) -> Response:
    mailing = await service.resume_mailing(uow.session, mailing_id, _now())
    announce(uow, "updated", mailing, action="resumed", by=user.email)
    return _back(mailing_id, "Resumed.")


@router.post("/mailings/{mailing_id:int}/retry-failed", name="mailing_retry_failed")
async def mailing_retry_failed(uow: Uow, user: User, mailing_id: int) -> Response:
    moved = await service.retry_failed(uow.session, mailing_id, _now())
    mailing = await service.get_mailing(uow.session, mailing_id)
    announce(uow, "updated", mailing, action="retry_failed", requeued=moved, by=user.email)
    return _back(mailing_id, f"{moved} failed messages queued again.")


@router.post("/mailings/{mailing_id:int}/cancel", name="mailing_cancel")
async def mailing_cancel(uow: Uow, user: User, mailing_id: int) -> Response:
    """The REST API's DELETE: delivery stops, messages not yet handed over end cancelled."""
    mailing, cancelled = await service.delete_mailing(uow.session, mailing_id)
    announce(uow, "deleted", mailing, cancelled=cancelled, by=user.email)
    notice = f"Mailing {mailing_id} cancelled and deleted: {cancelled} messages cancelled."
    return RedirectResponse(f"/admin/mailings?notice={notice.replace(' ', '+')}", status_code=303)
