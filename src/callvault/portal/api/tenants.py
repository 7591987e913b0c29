"""Tenants, their users and API tokens (operator and tenant admin)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from callvault.db.models import Tenant, TenantDomain, TenantNumber, User, UserAor, UserNumber
from callvault.errors import Conflict, NotFound
from callvault.portal.api.schemas import TenantIn, TenantOut, TokenOut, UserIn, UserOut
from callvault.portal.audit import audit
from callvault.portal.auth import (
    CurrentPrincipal,
    SessionDep,
    TenantScope,
    issue_token,
    require_role,
)

router = APIRouter(prefix="/api/v1", tags=["tenants"])


def tenant_out(tenant: Tenant) -> TenantOut:
    return TenantOut(
        id=tenant.id,
        name=tenant.name,
        domains=[d.domain for d in tenant.domains],
        numbers=[n.number for n in tenant.numbers],
        country_code=tenant.country_code,
        suspended=tenant.suspended,
        created_at=tenant.created_at,
    )


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        tenant_id=user.tenant_id,
        name=user.name,
        extension=user.extension,
        numbers=[n.number for n in user.numbers],
        aors=[a.aor for a in user.aors],
        role=user.role,
        email=user.email,
        recorded=user.recorded,
        recording_mode=user.recording_mode,
    )


@router.post("/tenants", status_code=201, response_model=TenantOut)
def create_tenant(
    body: TenantIn, principal: CurrentPrincipal, session: SessionDep, request: Request
) -> TenantOut:
    require_role(principal, "operator")
    tenant = Tenant(name=body.name, country_code=body.country_code)
    tenant.domains = [TenantDomain(domain=d) for d in body.domains]
    tenant.numbers = [TenantNumber(number=n) for n in body.numbers]
    session.add(tenant)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "a tenant with this name, domain or number exists", error_id="tenant-exists"
        ) from exc
    audit(session, request, principal, "tenant.create", tenant.id, target=f"tenant:{tenant.id}")
    session.commit()
    request.app.state.context.on_directory_change()
    return tenant_out(tenant)


@router.get("/tenants", response_model=list[TenantOut])
def list_tenants(principal: CurrentPrincipal, session: SessionDep) -> list[TenantOut]:
    query = select(Tenant).options(selectinload(Tenant.domains), selectinload(Tenant.numbers))
    if not principal.is_operator:
        query = query.where(Tenant.id == principal.tenant_id)
    return [tenant_out(t) for t in session.scalars(query.order_by(Tenant.id))]


@router.get("/tenants/{tenant_id}", response_model=TenantOut)
def get_tenant(tenant: TenantScope) -> TenantOut:
    return tenant_out(tenant)


@router.post("/tenants/{tenant_id}/users", status_code=201, response_model=UserOut)
def create_user(
    body: UserIn,
    tenant: TenantScope,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> UserOut:
    require_role(principal, "operator", "admin")
    user = User(
        tenant_id=tenant.id,
        name=body.name,
        extension=body.extension,
        role=body.role,
        email=body.email,
        recorded=body.recorded,
    )
    user.numbers = [UserNumber(tenant_id=tenant.id, number=n) for n in body.numbers]
    user.aors = [UserAor(tenant_id=tenant.id, aor=a) for a in body.aors]
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "the extension, a number or an AOR belongs to another user", error_id="user-exists"
        ) from exc
    audit(session, request, principal, "user.create", tenant.id, target=f"user:{user.id}")
    session.commit()
    request.app.state.context.on_directory_change()
    return user_out(user)


@router.get("/tenants/{tenant_id}/users", response_model=list[UserOut])
def list_users(
    tenant: TenantScope, principal: CurrentPrincipal, session: SessionDep
) -> list[UserOut]:
    require_role(principal, "operator", "admin")
    users = session.scalars(
        select(User)
        .where(User.tenant_id == tenant.id)
        .options(selectinload(User.numbers), selectinload(User.aors))
        .order_by(User.id)
    )
    return [user_out(u) for u in users]


@router.post(
    "/tenants/{tenant_id}/users/{user_id}/tokens", status_code=201, response_model=TokenOut
)
def create_user_token(
    user_id: int,
    tenant: TenantScope,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> TokenOut:
    require_role(principal, "operator", "admin")
    user = session.scalar(select(User).where(User.tenant_id == tenant.id, User.id == user_id))
    if user is None:
        raise NotFound("no such user", error_id="user-not-found")
    token = issue_token(session, f"api token of {user.name}", user=user)
    audit(session, request, principal, "token.create", tenant.id, target=f"user:{user.id}")
    session.commit()
    return TokenOut(token=token)
