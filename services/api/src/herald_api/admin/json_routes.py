"""The admin's JSON router: what its script fetches (mailings' live progress, the audience
preview). The admin's error handlers answer these routes in JSON, never with a page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from herald_api.admin.forms import split_codes, split_tags
from herald_api.admin.session import User
from herald_api.clients import service as clients_service
from herald_api.deps import Uow
from herald_api.mailings import service
from herald_common.tables.message_count import count_messages, settled


class JsonRoute(APIRoute):
    """Marks a route of the JSON router, for the admin's error handlers (app.py)."""


router = APIRouter(route_class=JsonRoute)
# What these answer changes by the second: no cache may keep it.
NO_STORE = {"cache-control": "no-store"}


@router.get("/mailings/progress", name="mailings_progress")
async def mailings_progress(
    uow: Uow, user: User, ids: Annotated[str, Query(max_length=2000)] = ""
) -> JSONResponse:
    """Done, total, state and counts of the given mailings, for the pages' live parts."""
    wanted = sorted({int(part) for part in ids.split(",") if part.isdigit() and len(part) < 19})
    mailings = await service.get_mailings(uow.session, wanted[:200])
    counts = await count_messages(uow.session, [m.id for m in mailings])
    now = datetime.now(UTC)
    answer: dict[str, Any] = {}
    for one in mailings:
        by_status = counts[one.id]
        total = sum(by_status.values())
        done = settled(by_status)
        answer[str(one.id)] = {
            "done": done,
            "total": total,
            "percent": round(100 * done / total, 1) if total else 0.0,
            "state": service.to_read(one, now).state.value,
            "by_status": by_status,
        }
    return JSONResponse(answer, headers=NO_STORE)


@router.get("/audience", name="audience")
async def audience(
    uow: Uow,
    user: User,
    operator_codes: Annotated[str, Query(max_length=2000)] = "",
    tags: Annotated[str, Query(max_length=8000)] = "",
) -> JSONResponse:
    """How many live clients a filter matches now: the form's live preview."""
    codes, tag_list = split_codes(operator_codes), split_tags(tags)
    count = await clients_service.audience_size(uow.session, codes, tag_list)
    return JSONResponse(
        {"count": count, "operator_codes": codes, "tags": tag_list}, headers=NO_STORE
    )
