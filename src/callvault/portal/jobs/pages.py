"""The jobs page: a tenant's recent background jobs (exports, mail, purges) with
their state and progress, for its admin; every job for the operator (issue 8
section 1). It reads through ``callvault.jobs.listing``, as the API does."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from callvault.jobs.listing import JobFilter, list_jobs
from callvault.jobs.queue import STATES
from callvault.portal.auth import MAX_ID, SessionDep
from callvault.portal.jobs.http import job_out
from callvault.portal.pages.render import PageRoute, render
from callvault.portal.pages.viewer import ViewerDep, signed_in

router = APIRouter(route_class=PageRoute, include_in_schema=False)

JOBS_PAGE = 50


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, viewer: ViewerDep, session: SessionDep) -> HTMLResponse:
    principal = signed_in(viewer, "admin", "operator")
    state = request.query_params.get("state") or None
    if state not in STATES:
        state = None  # an unknown state filters nothing rather than failing the page
    cursor = request.query_params.get("cursor", "")
    before = int(cursor) if cursor.isdigit() and int(cursor) <= MAX_ID else None
    wanted = JobFilter(
        tenant_id=principal.tenant_id,
        all_tenants=principal.is_operator,
        state=state,
        before_id=before,
    )
    rows, more = list_jobs(session, wanted, JOBS_PAGE)
    query = {"state": state} if state else {}
    return render(
        request,
        viewer,
        "jobs.html",
        page="jobs",
        jobs=[job_out(job) for job in rows],
        state=state,
        states=STATES,
        show_tenant=principal.is_operator,
        next_href=f"?{urlencode({**query, 'cursor': rows[-1].id})}" if more and rows else None,
    )
