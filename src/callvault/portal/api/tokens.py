"""API tokens: list, create (with an optional expiry) and revoke; all audited.

Who sees and revokes which tokens:

- everyone: their own (``GET /tokens``, ``DELETE /tokens/{id}``);
- a tenant's admin: every token of the tenant's users
  (``GET /tenants/{t}/tokens``; ``DELETE /tokens/{id}`` of any of them);
- the operator: all (``GET /operator/tokens``).

A token of someone the caller may not manage is a 404, as if it did not exist.
Only the SHA-256 of a token is stored; the token itself is shown once, at
creation. A user's own tokens are made here by the operator and admins (a
plain user's portal session should not turn into a lasting credential);
admins make tokens for their users in ``tenants``. A password change revokes
every token of the account (``account.change_password``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from callvault.db.models import ApiToken, User
from callvault.errors import ErrorId, NotFound
from callvault.portal.api.schemas import Strict
from callvault.portal.audit import audit
from callvault.portal.auth import (
    CurrentPrincipal,
    DbId,
    Now,
    Principal,
    SessionDep,
    as_utc,
    issue_api_token,
    token_active,
)
from callvault.portal.roles import AdminTenant, OperatorOnly, OperatorOrAdmin
from callvault.portal.timefmt import UtcDateTime, utc_text

router = APIRouter(prefix="/api/v1", tags=["tokens"])

MAX_LIST = 1000


class TokenIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    expires_in_days: int | None = Field(
        default=None, ge=1, le=3650, description="null: valid until revoked"
    )


class TokenCreatedOut(BaseModel):
    id: int
    name: str
    token: str = Field(description="shown once; only its hash is stored")
    expires_at: UtcDateTime | None


class TokenInfoOut(BaseModel):
    id: int
    name: str
    tenant_id: int | None
    user_id: int | None
    operator_id: int | None
    created_at: UtcDateTime
    created_by: str | None
    expires_at: UtcDateTime | None
    revoked_at: UtcDateTime | None
    active: bool


def _out(row: ApiToken, at: datetime) -> TokenInfoOut:
    return TokenInfoOut(
        id=row.id,
        name=row.name,
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        operator_id=row.operator_id,
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        expires_at=as_utc(row.expires_at) if row.expires_at else None,
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
        active=token_active(row, at),
    )


def _own(principal: Principal) -> Select[ApiToken]:
    if principal.is_operator:
        return select(ApiToken).where(ApiToken.operator_id == principal.operator_id)
    return select(ApiToken).where(
        ApiToken.tenant_id == principal.tenant_id, ApiToken.user_id == principal.user_id
    )


def _listed(session: Session, query: Select[ApiToken], at: datetime) -> list[TokenInfoOut]:
    rows = session.scalars(query.order_by(ApiToken.id.desc()).limit(MAX_LIST))
    return [_out(row, at) for row in rows]


@router.get("/tokens", response_model=list[TokenInfoOut])
def list_own_tokens(
    principal: CurrentPrincipal, session: SessionDep, at: Now
) -> list[TokenInfoOut]:
    return _listed(session, _own(principal), at)


@router.post("/tokens", response_model=TokenCreatedOut, status_code=201)
def create_own_token(
    body: TokenIn, principal: OperatorOrAdmin, session: SessionDep, request: Request, at: Now
) -> TokenCreatedOut:
    """A token for the caller (operator or admin), optionally expiring."""
    expires_at = at + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    user = session.get(User, principal.user_id) if principal.user_id is not None else None
    token, row = issue_api_token(
        session,
        body.name,
        operator_id=principal.operator_id,
        user=user,
        expires_at=expires_at,
        created_by=principal.actor(),
    )
    audit(
        session,
        request,
        principal,
        "token.create",
        principal.tenant_id,
        target=f"token:{row.id}",
        expires_at=utc_text(expires_at) if expires_at else None,
    )
    session.commit()
    return TokenCreatedOut(id=row.id, name=row.name, token=token, expires_at=expires_at)


@router.get("/tenants/{tenant_id}/tokens", response_model=list[TokenInfoOut])
def list_tenant_tokens(tenant: AdminTenant, session: SessionDep, at: Now) -> list[TokenInfoOut]:
    return _listed(session, select(ApiToken).where(ApiToken.tenant_id == tenant.id), at)


@router.get("/operator/tokens", response_model=list[TokenInfoOut])
def list_all_tokens(_operator: OperatorOnly, session: SessionDep, at: Now) -> list[TokenInfoOut]:
    return _listed(session, select(ApiToken), at)


def _manageable(session: Session, principal: Principal, token_id: int) -> ApiToken:
    """The token if this principal may revoke it; else 404 (foreign looks missing)."""
    if principal.is_operator:
        query = select(ApiToken)
    elif principal.role == "admin":
        query = select(ApiToken).where(ApiToken.tenant_id == principal.tenant_id)
    else:
        query = _own(principal)
    row = session.scalar(query.where(ApiToken.id == token_id))
    if row is None:
        raise NotFound("no such token", error_id=ErrorId.TOKEN_NOT_FOUND)
    return row


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(
    token_id: DbId, principal: CurrentPrincipal, session: SessionDep, request: Request, at: Now
) -> Response:
    row = _manageable(session, principal, token_id)
    if not row.revoked:
        row.revoked, row.revoked_at = True, at
        audit(
            session,
            request,
            principal,
            "token.revoke",
            row.tenant_id,
            target=f"token:{row.id}",
            owner=f"operator:{row.operator_id}" if row.operator_id else f"user:{row.user_id}",
        )
        session.commit()
    return Response(status_code=204)
