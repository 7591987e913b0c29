"""The tenant's audit log (tenant admin) and tenant management (operator).

The operator's tenant page switches recording, listening and coaching on and
off with plain form posts (CSRF token in the form) that call the operator
API's own route function, then go back to the page.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from callvault.db.models import Tenant, User
from callvault.errors import ApiError, ErrorId, InvalidInput, NotFound
from callvault.portal.api import audit_log
from callvault.portal.api.operator import FeatureIn, set_enablement
from callvault.portal.auth import Now, SessionDep
from callvault.portal.pages.render import PageRoute, render
from callvault.portal.pages.viewer import ViewerDep, signed_in
from callvault.portal.query_string import parse_query
from callvault.portal.roles import OperatorOnly, OperatorTenant
from callvault.retention.plans import list_plans, plan_of
from callvault.tenants.claims import block_text
from callvault.tenants.enablement import FEATURES, Feature, feature_states

router = APIRouter(route_class=PageRoute, include_in_schema=False)

AUDIT_PAGE = 100


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, viewer: ViewerDep, session: SessionDep) -> HTMLResponse:
    principal = signed_in(viewer, "admin")
    tenant = session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", error_id=ErrorId.TENANT_NOT_FOUND)
    query = {k: v for k, v in request.query_params.items() if k in ("cursor", "action")}
    error: str | None = None
    events: list[Any] = []
    next_cursor: str | None = None
    try:
        params = parse_query(audit_log.AuditParams, query)
        page = audit_log.audit_page(session, params, limit=AUDIT_PAGE, tenant_id=tenant.id)
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
        .options(
            selectinload(Tenant.domains), selectinload(Tenant.numbers), selectinload(Tenant.blocks)
        )
        .order_by(Tenant.name)
    )
    plans = {p.name: p for p in list_plans(session)}  # the range lives on the plan
    return render(
        request,
        viewer,
        "operator_tenants.html",
        page="operator",
        tenants=list(tenants),
        plans=plans,
    )


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
        raise NotFound("no such tenant", error_id=ErrorId.TENANT_NOT_FOUND)
    users = session.scalars(
        select(User)
        .where(User.tenant_id == tenant.id)
        .options(selectinload(User.numbers), selectinload(User.aors))
        .order_by(User.name)
    )
    states = feature_states(session, tenant.id)
    return render(
        request,
        viewer,
        "operator_tenant.html",
        page="operator",
        tenant=tenant,
        users=list(users),
        blocks=[block_text(b.prefix) for b in tenant.blocks],
        features=[states[f] for f in FEATURES],
        plans=list_plans(session),
        plan=plan_of(session, tenant),
        enablement_error=request.query_params.get("error"),
    )


_MAX_FORM_BYTES = 8192


async def _form(request: Request) -> dict[str, str]:
    """A small url-encoded form's fields (no python-multipart needed)."""
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise InvalidInput("the form is too large", error_id=ErrorId.INVALID_INPUT)
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)
    return {key: values[0] for key, values in fields.items()}


FormFields = Annotated[dict[str, str], Depends(_form)]


@router.post("/operator/tenants/{tenant_id}/enablement/{feature}")
def enablement_form(
    feature: Feature,
    form: FormFields,
    tenant: OperatorTenant,
    principal: OperatorOnly,
    session: SessionDep,
    request: Request,
    at: Now,
) -> RedirectResponse:
    """The operator's enable / disable button (CSRF checked by ``OperatorOnly``)."""
    page = f"/operator/tenants/{tenant.id}"
    reference = form.get("reference", "").strip()[:200] or None
    try:
        set_enablement(
            feature,
            FeatureIn(enabled=form.get("enabled") == "true", reference=reference),
            tenant,
            principal,
            session,
            request,
            at,
        )
    except ApiError as exc:
        return RedirectResponse(f"{page}?{urlencode({'error': exc.error_id})}#enablement", 303)
    return RedirectResponse(f"{page}#enablement", status_code=303)
