"""Who is calling the API: bearer tokens resolved to a ``Principal``.

Tokens are 256-bit random strings; only their SHA-256 is stored (they are
not guessable, so a slow hash adds nothing). The tenant is resolved here,
once per request, and every repository call takes it explicitly.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.db.models import ApiToken, Operator, Tenant, User
from callvault.errors import Forbidden, NotFound, Unauthorized

Role = Literal["operator", "admin", "listener", "user"]


@dataclass(frozen=True)
class Principal:
    role: Role
    name: str
    tenant_id: int | None = None  # None for operators
    user_id: int | None = None
    operator_id: int | None = None

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def actor(self) -> str:
        return f"operator:{self.operator_id}" if self.is_operator else f"user:{self.user_id}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    session: Session, name: str, *, operator_id: int | None = None, user: User | None = None
) -> str:
    token = "cv_" + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            token_hash=hash_token(token),
            name=name,
            operator_id=operator_id,
            tenant_id=user.tenant_id if user else None,
            user_id=user.id if user else None,
        )
    )
    return token


def get_session(request: Request):  # type: ignore[no-untyped-def]
    with request.app.state.context.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def current_principal(request: Request, session: SessionDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        raise Unauthorized("a bearer token is required", error_id="auth-required")
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token.strip())))
    if row is None or row.revoked:
        raise Unauthorized("the token is not valid", error_id="auth-invalid")
    if row.operator_id is not None:
        operator = session.get(Operator, row.operator_id)
        if operator is None:
            raise Unauthorized("the token is not valid", error_id="auth-invalid")
        return Principal("operator", operator.name, operator_id=operator.id)
    user = session.get(User, row.user_id) if row.user_id is not None else None
    if user is None:
        raise Unauthorized("the token is not valid", error_id="auth-invalid")
    tenant = session.get(Tenant, user.tenant_id)
    if tenant is None or tenant.suspended:
        raise Forbidden("this tenant is suspended", error_id="tenant-suspended")
    role: Role = user.role if user.role in ("admin", "listener", "user") else "user"  # type: ignore[assignment]
    return Principal(role, user.name, tenant_id=user.tenant_id, user_id=user.id)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def tenant_scope(tenant_id: int, principal: CurrentPrincipal, session: SessionDep) -> Tenant:
    """The tenant named in the path, if this principal may see it; else 404."""
    if not principal.is_operator and principal.tenant_id != tenant_id:
        raise NotFound("no such tenant", error_id="tenant-not-found")
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", error_id="tenant-not-found")
    return tenant


TenantScope = Annotated[Tenant, Depends(tenant_scope)]


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        raise Forbidden(f"this needs the role {' or '.join(roles)}", error_id="role-required")
