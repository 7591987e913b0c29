"""Tenants, their users and API tokens (operator and tenant admin)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import Field
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from callvault.db.models import (
    Operator,
    Tenant,
    TenantDomain,
    TenantNumber,
    User,
    UserAor,
    UserNumber,
    WebSession,
)
from callvault.errors import Conflict, NotFound
from callvault.portal.api.schemas import Strict, TenantIn, TenantOut, TokenOut, UserIn, UserOut
from callvault.portal.audit import audit
from callvault.portal.auth import (
    AdminTenant,
    CurrentPrincipal,
    DbId,
    SessionDep,
    TenantScope,
    issue_token,
    require_role,
)
from callvault.portal.passwords import hash_password, normalise_login

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
    user_id: DbId,
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


class CredentialsIn(Strict):
    login: str = Field(
        min_length=3,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$",
        description="portal login name, unique across the system (stored in lower case)",
    )
    password: str = Field(min_length=1, max_length=1024, description="at least 10 characters")


@router.put("/tenants/{tenant_id}/users/{user_id}/credentials", status_code=204)
def set_user_credentials(
    user_id: DbId,
    body: CredentialsIn,
    tenant: AdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> Response:
    """Sets a user's portal login and password; the user's open sessions end."""
    user = session.scalar(select(User).where(User.tenant_id == tenant.id, User.id == user_id))
    if user is None:
        raise NotFound("no such user", error_id="user-not-found")
    login = normalise_login(body.login)
    password_hash = hash_password(body.password)
    taken = session.scalar(select(Operator.id).where(Operator.login == login)) is not None or (
        session.scalar(select(User.id).where(User.login == login, User.id != user.id)) is not None
    )
    if taken:
        raise Conflict("this login is taken", error_id="login-taken")
    old_login, user.login, user.password_hash = user.login, login, password_hash
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    audit(
        session,
        request,
        principal,
        "user.credentials",
        tenant.id,
        target=f"user:{user.id}",
        old_login=old_login,
        new_login=login,
    )
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent request took the login
        raise Conflict("this login is taken", error_id="login-taken") from exc
    return Response(status_code=204)
