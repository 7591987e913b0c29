"""Routes of Reports › Calls and the recordings list (SPEC section 5).

Both lists take the same query (``ReportQueryDep``: one dependency that reads
``query.ReportParams`` and validates it for the path's tenant) and hand it to
``service``; the page does the same with ``query.parse_report_query``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from callvault.portal.api.schemas import Page, RecordingOut
from callvault.portal.audit import audit
from callvault.portal.auth import CurrentPrincipal, Now, SessionDep, TenantScope
from callvault.portal.reports import service
from callvault.portal.reports.query import ReportParams, ReportQuery, report_query
from callvault.portal.reports.schemas import CallReportOut

router = APIRouter(prefix="/api/v1", tags=["calls"])

Limit = Annotated[int, Query(ge=1, le=500, description="rows per page")]


def _report_query(tenant: TenantScope, params: Annotated[ReportParams, Query()]) -> ReportQuery:
    return report_query(tenant, params)


ReportQueryDep = Annotated[ReportQuery, Depends(_report_query)]


@router.get("/tenants/{tenant_id}/calls", response_model=Page[CallReportOut])
def list_calls(
    tenant: TenantScope,
    principal: CurrentPrincipal,
    session: SessionDep,
    at: Now,
    query: ReportQueryDep,
    limit: Limit = 50,
) -> Page[CallReportOut]:
    """Reports › Calls: the tenant's calls the caller may see, newest first."""
    return service.calls_page(session, principal, tenant, query, limit=limit, at=at)


@router.get("/tenants/{tenant_id}/recordings", response_model=Page[RecordingOut])
def list_recordings(
    tenant: TenantScope,
    principal: CurrentPrincipal,
    session: SessionDep,
    query: ReportQueryDep,
    limit: Limit = 50,
) -> Page[RecordingOut]:
    """The recordings the caller may see, newest first; the filters of Reports › Calls."""
    return service.recordings_page(session, principal, tenant, query, limit=limit)


@router.get("/recordings/{recording_id}", response_model=RecordingOut)
def get_recording(
    recording_id: str, principal: CurrentPrincipal, session: SessionDep, request: Request
) -> RecordingOut:
    """One recording's metadata; each view is audited (``recording.view``)."""
    recording = service.recording_for(session, principal, recording_id)
    out = service.recording_out(session, recording)
    target = f"recording:{recording.id}"
    audit(session, request, principal, "recording.view", recording.tenant_id, target=target)
    session.commit()
    return out
