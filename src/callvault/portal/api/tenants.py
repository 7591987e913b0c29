"""Tenants, their users and API tokens (operator and tenant admin).

A user's AORs and numbers must lie within the tenant's own domains, numbers
and blocks (``tenants/claims.py``, the same rules as the CLI). Answers to a
tenant admin never tell another tenant's data apart from other invalid input:
an AOR in a foreign domain is the same 422 as one in nobody's, and a login in
use anywhere is the same 409 ``login-unavailable``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from callvault.db.models import Tenant, User
from callvault.errors import Conflict, ErrorId, InvalidInput, NotFound
from callvault.portal.api.schemas import (
    Strict,
    TenantIn,
    TenantOut,
    TokenOut,
    UserIn,
    UserOut,
    UserPatchIn,
)
from callvault.portal.audit import audit, changes
from callvault.portal.auth import (
    CurrentPrincipal,
    DbId,
    SessionDep,
    TenantScope,
    issue_token,
    revoke_credentials,
)
from callvault.portal.roles import AdminTenant, OperatorOnly
from callvault.tenants import service as tenant_service
from callvault.tenants.claims import (
    block_text,
)

router = APIRouter(prefix="/api/v1", tags=["tenants"])


def tenant_out(tenant: Tenant) -> TenantOut:
    return TenantOut(
        id=tenant.id,
        name=tenant.name,
        domains=[d.domain for d in tenant.domains],
        numbers=[n.number for n in tenant.numbers],
        blocks=[block_text(b.prefix) for b in tenant.blocks],
        country_code=tenant.country_code,
        suspended=tenant.suspended,
        created_at=tenant.created_at,
        timezone=tenant.timezone,
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
        active=user.active,
        can_coach=user.can_coach,
    )


@router.post("/tenants", status_code=201, response_model=TenantOut)
def create_tenant(
    body: TenantIn, principal: OperatorOnly, session: SessionDep, request: Request
) -> TenantOut:
    tenant = tenant_service.create_tenant(
        session,
        body.name,
        body.domains,
        body.numbers,
        body.country_code,
        blocks=body.blocks,
        timezone=body.timezone,
    )
    audit(
        session,
        request,
        principal,
        "tenant.create",
        tenant.id,
        target=f"tenant:{tenant.id}",
        domains=body.domains,
        numbers=body.numbers,
        blocks=body.blocks,
        timezone=body.timezone,
    )
    session.commit()
    request.app.state.context.on_directory_change()
    return tenant_out(tenant)


@router.get("/tenants", response_model=list[TenantOut])
def list_tenants(principal: CurrentPrincipal, session: SessionDep) -> list[TenantOut]:
    query = select(Tenant).options(
        selectinload(Tenant.domains), selectinload(Tenant.numbers), selectinload(Tenant.blocks)
    )
    if not principal.is_operator:
        query = query.where(Tenant.id == principal.tenant_id)
    return [tenant_out(t) for t in session.scalars(query.order_by(Tenant.id))]


@router.get("/tenants/{tenant_id}", response_model=TenantOut)
def get_tenant(tenant: TenantScope) -> TenantOut:
    return tenant_out(tenant)


@router.post("/tenants/{tenant_id}/users", status_code=201, response_model=UserOut)
def create_user(
    body: UserIn,
    tenant: AdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> UserOut:
    user = tenant_service.create_user(
        session,
        tenant,
        body.name,
        extension=body.extension,
        numbers=body.numbers,
        aors=body.aors,
        role=body.role,
        email=body.email,
        recorded=body.recorded,
        mode=None,
    )
    audit(session, request, principal, "user.create", tenant.id, target=f"user:{user.id}")
    session.commit()
    request.app.state.context.on_directory_change()
    return user_out(user)


@router.get("/tenants/{tenant_id}/users", response_model=list[UserOut])
def list_users(
    tenant: AdminTenant, principal: CurrentPrincipal, session: SessionDep
) -> list[UserOut]:
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
    tenant: AdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> TokenOut:
    user = session.scalar(select(User).where(User.tenant_id == tenant.id, User.id == user_id))
    if user is None:
        raise NotFound("no such user", error_id=ErrorId.USER_NOT_FOUND)
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
        raise NotFound("no such user", error_id=ErrorId.USER_NOT_FOUND)
    old_login = tenant_service.set_credentials(session, user, body.login, body.password)
    login = user.login
    # a new password ends every way in the old one gave: sessions and API tokens
    ended, revoked = revoke_credentials(session, datetime.now(UTC), user_id=user.id)
    audit(
        session,
        request,
        principal,
        "user.credentials",
        tenant.id,
        target=f"user:{user.id}",
        old_login=old_login,
        new_login=login,
        sessions_ended=ended,
        tokens_revoked=revoked,
    )
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent request took the login
        raise tenant_service.login_unavailable() from exc
    return Response(status_code=204)


@router.patch("/tenants/{tenant_id}/users/{user_id}", response_model=UserOut)
def change_user(
    user_id: DbId,
    body: UserPatchIn,
    tenant: AdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> UserOut:
    """Switches a user's account on or off and sets its role; audited with old and new.

    A deactivated user's portal sessions end at once. An admin cannot take
    away their own admin access (so a tenant never locks itself out by a click).
    """
    user = session.scalar(
        select(User)
        .where(User.tenant_id == tenant.id, User.id == user_id)
        .options(selectinload(User.numbers), selectinload(User.aors))
    )
    if user is None:
        raise NotFound("no such user", error_id=ErrorId.USER_NOT_FOUND)
    wanted = body.model_dump(exclude_none=True)
    if not wanted:
        raise InvalidInput("nothing to change", error_id=ErrorId.NO_CHANGE)
    if user.id == principal.user_id and (
        wanted.get("active") is False or wanted.get("role", "admin") != "admin"
    ):
        raise Conflict(
            "you cannot take away your own admin access; ask another admin",
            error_id=ErrorId.OWN_ACCOUNT,
        )
    changed = changes({key: getattr(user, key) for key in wanted}, wanted)
    for key, diff in changed.items():
        setattr(user, key, diff["new"])
    revoked: dict[str, int] = {}
    if changed.get("active", {}).get("new") is False:
        # deactivated: sessions end and tokens are revoked for good (a later
        # reactivation does not bring old tokens back)
        ended, tokens = revoke_credentials(session, datetime.now(UTC), user_id=user.id)
        revoked = {"sessions_ended": ended, "tokens_revoked": tokens}
    if changed:
        audit(
            session,
            request,
            principal,
            "user.change",
            tenant.id,
            target=f"user:{user.id}",
            **{key: diff["new"] for key, diff in changed.items()},
            old={key: diff["old"] for key, diff in changed.items()},
            **revoked,
        )
    session.commit()
    if changed:
        request.app.state.context.on_directory_change()
    return user_out(user)
