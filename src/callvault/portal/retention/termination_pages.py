"""The operator's termination page and the deletion receipts page (issue 8 section 5).

Three steps on one page, with plain form posts (CSRF token in the form): the
page shows what terminating the tenant destroys; "Terminate" asks for the
one-time confirmation token (``tenants/termination.py``) and shows the field
for the tenant's exact name; confirming destroys the tenant and shows the
receipt with its download. A refusal (legal hold, wrong name, expired token)
is shown on the page and nothing is lost. The receipts page lists every
deletion receipt, terminated tenants' included.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from callvault.db.models import Tenant
from callvault.errors import ApiError, ErrorId, NotFound
from callvault.portal.audit import remote_addr
from callvault.portal.auth import DbId, Now, SessionDep
from callvault.portal.pages.admin import FormFields
from callvault.portal.pages.render import PageRoute, render
from callvault.portal.pages.viewer import ViewerDep, signed_in
from callvault.portal.retention.receipts import OPERATOR_BASE, list_receipts, receipt_out
from callvault.portal.roles import OperatorOnly
from callvault.retention.holds import tenant_has_active_hold
from callvault.tenants.termination import request_termination, summarise, terminate

router = APIRouter(route_class=PageRoute, include_in_schema=False)

RECEIPTS_PAGE = 100


def _tenant(session: SessionDep, tenant_id: int) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", error_id=ErrorId.TENANT_NOT_FOUND)
    return tenant


def _page(
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    tenant: Tenant,
    *,
    step: str,
    error: str | None = None,
    token: str | None = None,
    expires_at: datetime | None = None,
    status: int = 200,
) -> HTMLResponse:
    return render(
        request,
        viewer,
        "operator_termination.html",
        status=status,
        page="operator",
        tenant=tenant,
        summary=summarise(session, tenant),
        held=tenant_has_active_hold(session, tenant.id),
        step=step,
        error=error,
        token=token,
        expires_at=expires_at,
    )


@router.get("/operator/tenants/{tenant_id}/termination", response_class=HTMLResponse)
def termination_page(
    tenant_id: DbId, request: Request, viewer: ViewerDep, session: SessionDep
) -> HTMLResponse:
    signed_in(viewer, "operator")
    return _page(request, viewer, session, _tenant(session, tenant_id), step="ask")


@router.post("/operator/tenants/{tenant_id}/termination", response_class=HTMLResponse)
def termination_ask(
    tenant_id: DbId,
    _form: FormFields,
    principal: OperatorOnly,
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    at: Now,
) -> HTMLResponse:
    """Step one: the confirmation token, kept in the page's form (CSRF checked)."""
    tenant = _tenant(session, tenant_id)
    try:
        token, expires_at, _summary = request_termination(
            session, tenant, actor=principal.actor(), at=at, remote_addr=remote_addr(request)
        )
    except ApiError as exc:
        session.rollback()
        return _page(
            request, viewer, session, tenant, step="ask", error=exc.error_id, status=exc.status
        )
    return _page(
        request, viewer, session, tenant, step="confirm", token=token, expires_at=expires_at
    )


@router.post("/operator/tenants/{tenant_id}/termination/confirm", response_class=HTMLResponse)
def termination_confirm(
    tenant_id: DbId,
    form: FormFields,
    principal: OperatorOnly,
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    at: Now,
) -> HTMLResponse:
    """Step two: the typed name and the token; the receipt, or the refusal."""
    token = form.get("token", "")[:100]
    name = form.get("name", "")[:200]
    context = request.app.state.context
    try:
        receipt = terminate(
            session,
            context.blobs,
            tenant_id,
            token=token,
            name=name,
            actor=principal.actor(),
            at=at,
            remote_addr=remote_addr(request),
        )
    except NotFound:
        raise
    except ApiError as exc:
        session.rollback()
        tenant = _tenant(session, tenant_id)
        # a wrong name keeps the token: type it again; a bad or expired token starts over
        keep = exc.error_id in (ErrorId.TERMINATION_NAME_MISMATCH, ErrorId.LEGAL_HOLD_ACTIVE)
        return _page(
            request,
            viewer,
            session,
            tenant,
            step="confirm" if keep else "ask",
            error=exc.error_id,
            token=token if keep else None,
            status=exc.status,
        )
    context.on_directory_change()
    return render(
        request,
        viewer,
        "operator_termination.html",
        page="operator",
        tenant=None,
        step="done",
        receipt=receipt_out(receipt, OPERATOR_BASE),
    )


@router.get("/operator/deletion-receipts", response_class=HTMLResponse)
def receipts_page(request: Request, viewer: ViewerDep, session: SessionDep) -> HTMLResponse:
    signed_in(viewer, "operator")
    cursor = request.query_params.get("cursor")
    error: str | None = None
    try:
        rows, next_cursor = list_receipts(
            session, tenant_id=None, kind=None, limit=RECEIPTS_PAGE, cursor=cursor
        )
    except ApiError as exc:
        rows, next_cursor, error = [], None, exc.error_id
    return render(
        request,
        viewer,
        "operator_receipts.html",
        page="operator",
        receipts=[receipt_out(r, OPERATOR_BASE) for r in rows],
        next_href=f"?cursor={next_cursor}" if next_cursor else None,
        error=error,
    )
