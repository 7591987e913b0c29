"""The operator's usage page: every tenant's usage for billing in one month.

The rows are ``GET /api/v1/operator/usage`` (``api/usage.py``: the same
service), the month is picked with a month field, and the CSV link downloads
the same table (issue 8 section 5).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from callvault.errors import InvalidInput
from callvault.portal.api.usage import TenantUsageOut, all_usage, parse_month, this_month
from callvault.portal.auth import Now, SessionDep
from callvault.portal.pages.render import PageRoute, render
from callvault.portal.pages.viewer import ViewerDep, signed_in

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/operator/usage", response_class=HTMLResponse)
def usage_page(request: Request, viewer: ViewerDep, session: SessionDep, at: Now) -> HTMLResponse:
    signed_in(viewer, "operator")
    wanted = request.query_params.get("month", "")[:20]
    error: str | None = None
    month = this_month(at, "UTC")
    if wanted:
        try:
            month = parse_month(wanted, at)
        except InvalidInput as exc:
            error = str(exc)
    rows: list[TenantUsageOut] = [] if error else all_usage(session, month, at).tenants
    return render(
        request,
        viewer,
        "operator_usage.html",
        page="operator",
        month=str(month),
        rows=rows,
        error=error,
        csv_href=f"/api/v1/operator/usage.csv?month={month}",
    )
