"""The tenant's audit log (tenant admin) and tenant management (operator)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from callvault.db.models import Tenant, User
from callvault.errors import InvalidInput, NotFound
from callvault.portal.api import audit_log
from callvault.portal.auth import SessionDep
from callvault.portal.pages.endpoint_call import call_with_query
from callvault.portal.pages.render import PageRoute, render
from callvault.portal.pages.viewer import ViewerDep, signed_in

router = APIRouter(route_class=PageRoute, include_in_schema=False)

AUDIT_PAGE = 100


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, viewer: ViewerDep, session: SessionDep) -> HTMLResponse:
    principal = signed_in(viewer, "admin")
    tenant = session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", error_id="tenant-not-found")
    query = {k: v for k, v in request.query_params.items() if k in ("cursor", "action")}
    error: str | None = None
    events: list[Any] = []
    next_cursor: str | None = None
    try:
        page = call_with_query(
            audit_log.tenant_audit_log,
            {"tenant": tenant, "session": session},
            {"limit": str(AUDIT_PAGE), **query},
        )
        events, next_cursor = list(page.items), page.next_cursor
    except InvalidInput as exc:
        error = str(exc)
    action = query.get("action", "")
    return render(
        request,
        viewer,
        "audit.html",
        page="audit",
        events=events,
        action=action,
        error=error,
        next_href=(
            f"?{urlencode({**({'action': action} if action else {}), 'cursor': next_cursor})}"
            if next_cursor
            else None
        ),
    )


@router.get("/operator/tenants", response_class=HTMLResponse)
def tenants_page(request: Request, viewer: ViewerDep, session: SessionDep) -> HTMLResponse:
    signed_in(viewer, "operator")
    tenants = session.scalars(
        select(Tenant)
        .options(selectinload(Tenant.domains), selectinload(Tenant.numbers))
        .order_by(Tenant.name)
    )
    return render(request, viewer, "operator_tenants.html", page="operator", tenants=list(tenants))


@router.get("/operator/tenants/{tenant_id}", response_class=HTMLResponse)
def tenant_page(
    tenant_id: Annotated[int, Path(ge=1)],
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
) -> HTMLResponse:
    signed_in(viewer, "operator")
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", error_id="tenant-not-found")
    users = session.scalars(
        select(User)
        .where(User.tenant_id == tenant.id)
        .options(selectinload(User.numbers), selectinload(User.aors))
        .order_by(User.name)
    )
    return render(
        request, viewer, "operator_tenant.html", page="operator", tenant=tenant, users=list(users)
    )
