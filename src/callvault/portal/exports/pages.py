"""Bulk download pages (SPEC 5): the list of a tenant's exports and one export's page.

``/exports/<id>`` is the link in the export's e-mail: it needs the portal
login of an admin of that tenant (anyone else: login first, then 404/403),
shows progress while the job runs (``static/exports.js`` reloads it), why a
failed export failed, whether the mail went out, and the files with their
SHA-256; an expired export answers 410. The data is what the JSON API
answers (``services.export_out``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from callvault.db.models import Export, Tenant, User
from callvault.errors import ErrorId, NotFound
from callvault.portal.auth import Now, SessionDep
from callvault.portal.exports.http import ExportId
from callvault.portal.exports.services import export_of, export_out
from callvault.portal.pages.render import PageRoute, render
from callvault.portal.pages.viewer import ViewerDep, signed_in

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _tenant(session: SessionDep, tenant_id: int | None) -> Tenant:
    tenant = session.get(Tenant, tenant_id) if tenant_id is not None else None
    if tenant is None:
        raise NotFound("no such tenant", error_id=ErrorId.TENANT_NOT_FOUND)
    return tenant


@router.get("/exports", response_class=HTMLResponse)
def exports_page(request: Request, viewer: ViewerDep, session: SessionDep, at: Now) -> HTMLResponse:
    principal = signed_in(viewer, "admin")
    tenant = _tenant(session, principal.tenant_id)
    rows = session.scalars(
        select(Export)
        .where(Export.tenant_id == tenant.id)
        .order_by(Export.created_at.desc(), Export.id)
        .limit(100)
    )
    return render(
        request,
        viewer,
        "exports.html",
        page="exports",
        tenant=tenant,
        exports=[export_out(session, tenant, e, at) for e in rows],
        export=None,
        users={},
    )


@router.get("/exports/{export_id}", response_class=HTMLResponse)
def export_page(
    export_id: ExportId, request: Request, viewer: ViewerDep, session: SessionDep, at: Now
) -> HTMLResponse:
    principal = signed_in(viewer, "admin")
    tenant = _tenant(session, principal.tenant_id)
    export = export_out(session, tenant, export_of(session, tenant, export_id), at)
    users: dict[int, str] = {
        uid: name
        for uid, name in session.execute(
            select(User.id, User.name).where(
                User.tenant_id == tenant.id, User.id.in_(export.user_ids or [])
            )
        )
    }
    return render(
        request,
        viewer,
        "exports.html",
        status=410 if export.state == "expired" else 200,
        page="exports",
        tenant=tenant,
        exports=[],
        export=export,
        users=users,
    )
