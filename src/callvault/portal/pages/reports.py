"""Reports › Calls: every visible call, filters, cursor paging, play and download.

The rows are what ``GET /api/v1/tenants/{t}/calls`` answers for this viewer
with this query string: the page reads it with the API's parser
(``reports.query.parse_report_query``) and calls the same service
(``reports.service.calls_page``), so the page and the API can never disagree
about visibility or filters. The period's dates are whole days
of the tenant's time zone, and times are shown on its clock (``timefmt``).
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
from callvault.errors import ErrorId, InvalidInput, NotFound
from callvault.portal.auth import Now, SessionDep
from callvault.portal.pages.render import PageRoute, render
from callvault.portal.pages.viewer import ViewerDep, signed_in
from callvault.portal.reports.query import parse_report_query
from callvault.portal.reports.service import calls_page as visible_calls_page
from callvault.portal.timefmt import day_start, local_text

router = APIRouter(route_class=PageRoute, include_in_schema=False)

FILTERS = ("from", "to", "user_id", "number", "direction", "label", "recorded")
DIRECTIONS = ("inbound", "outbound", "internal")
PAGE_SIZE = 50
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _item(call: Any, stream_only: bool, timezone: str) -> dict[str, Any]:
    data: dict[str, Any] = call.model_dump() if hasattr(call, "model_dump") else dict(call)
    recording_ids: list[str] = list(data.get("recording_ids") or [])
    data["recording_id"] = recording_ids[0] if recording_ids else None
    if data.get("audio") != "available":  # expired or deleted audio: no buttons
        data["audio_url"] = data["download_url"] = None
    if stream_only:
        data["download_url"] = None
    for key in ("started_at", "answered_at", "ended_at"):
        data[key.replace("_at", "_local")] = local_text(data.get(key), timezone)
    return data


def _local_days(query: dict[str, str], timezone: str) -> dict[str, str]:
    """The period's dates as the API's bounds: from the start of the first local day
    to the start of the day after the last (the API's "to" is exclusive)."""
    bounds = dict(query)
    if _DATE.fullmatch(query.get("from", "")):
        bounds["from"] = day_start(date.fromisoformat(query["from"]), timezone).isoformat()
    if _DATE.fullmatch(query.get("to", "")):
        last = date.fromisoformat(query["to"])
        bounds["to"] = day_start(last + timedelta(days=1), timezone).isoformat()
    return bounds


@router.get("/reports/calls", response_class=HTMLResponse)
def calls_page(request: Request, viewer: ViewerDep, session: SessionDep, at: Now) -> HTMLResponse:
    principal = signed_in(viewer, "admin", "listener", "user")
    tenant = session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", error_id=ErrorId.TENANT_NOT_FOUND)
    query = {k: v for k, v in request.query_params.items() if k in (*FILTERS, "cursor")}
    try:
        api_query = _local_days(query, tenant.timezone)
    except ValueError:  # a date like 2026-02-30: the API names the bad value
        api_query = dict(query)
    error: str | None = None
    items: list[dict[str, Any]] = []
    next_cursor: str | None = None
    try:
        report_query = parse_report_query(tenant, api_query)
        page = visible_calls_page(session, principal, tenant, report_query, limit=PAGE_SIZE, at=at)
        items = [_item(c, tenant.stream_only, tenant.timezone) for c in page.items]
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
