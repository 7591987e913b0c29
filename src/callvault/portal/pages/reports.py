"""Reports › Calls: every visible call, filters, cursor paging, play and download.

The rows are what ``GET /api/v1/tenants/{t}/calls`` answers for this viewer
with this query string (see ``endpoint_call``), so the page and the API can
never disagree about visibility or filters.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from callvault.db.models import Tenant, User
from callvault.errors import InvalidInput, NotFound
from callvault.portal.api import calls
from callvault.portal.auth import SessionDep
from callvault.portal.pages.endpoint_call import call_with_query
from callvault.portal.pages.render import PageRoute, render
from callvault.portal.pages.viewer import ViewerDep, signed_in

router = APIRouter(route_class=PageRoute, include_in_schema=False)

FILTERS = ("from", "to", "user_id", "number", "direction", "label", "recorded")
DIRECTIONS = ("inbound", "outbound", "internal")
PAGE_SIZE = "50"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _item(call: Any, stream_only: bool) -> dict[str, Any]:
    data: dict[str, Any] = call.model_dump() if hasattr(call, "model_dump") else dict(call)
    recording_ids: list[str] = list(data.get("recording_ids") or [])
    first = recording_ids[0] if recording_ids else None
    if first and not data.get("audio_url"):
        data["audio_url"] = f"/api/v1/recordings/{first}/audio"
    if first and not data.get("download_url"):
        data["download_url"] = f"/api/v1/recordings/{first}/audio?download=true"
    if stream_only:
        data["download_url"] = None
    data["recording_id"] = first
    return data


@router.get("/reports/calls", response_class=HTMLResponse)
def calls_page(request: Request, viewer: ViewerDep, session: SessionDep) -> HTMLResponse:
    principal = signed_in(viewer, "admin", "listener", "user")
    tenant = session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", error_id="tenant-not-found")
    query = {k: v for k, v in request.query_params.items() if k in (*FILTERS, "cursor")}
    api_query = dict(query)
    if _DATE.fullmatch(query.get("to", "")):
        # a period's last day counts whole: the API's "to" is exclusive
        api_query["to"] = (date.fromisoformat(query["to"]) + timedelta(days=1)).isoformat()
    error: str | None = None
    items: list[dict[str, Any]] = []
    next_cursor: str | None = None
    try:
        page = call_with_query(
            calls.list_calls,
            {"tenant": tenant, "principal": principal, "session": session},
            {"limit": PAGE_SIZE, **api_query},
        )
        items = [_item(c, tenant.stream_only) for c in page.items]
        next_cursor = page.next_cursor
    except InvalidInput as exc:
        error = str(exc)
    filters = {k: query.get(k, "") for k in FILTERS}
    active = {k: v for k, v in filters.items() if v}
    users: list[User] = []
    if principal.role == "admin":
        users = list(
            session.scalars(select(User).where(User.tenant_id == tenant.id).order_by(User.name))
        )
    return render(
        request,
        viewer,
        "calls.html",
        page="calls",
        items=items,
        error=error,
        filters=filters,
        users=users,
        directions=DIRECTIONS,
        stream_only=tenant.stream_only,
        bulk_download=principal.role == "admin" and tenant.bulk_download,  # _bulk_download.html
        next_href=(f"?{urlencode({**active, 'cursor': next_cursor})}" if next_cursor else None),
        first_href=(f"?{urlencode(active)}" if "cursor" in query else None),
    )
