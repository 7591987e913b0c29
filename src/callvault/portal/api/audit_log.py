"""Reading the audit log: a tenant's (its admin) and everything (the operator).

Newest first, keyset-paged on the row id (ids only grow, so a page never
repeats or skips a row while new rows arrive). Filters (``AuditParams``, also
read by the audit page with ``query_string.parse_query``): an action prefix
(``recording.`` finds plays and downloads) and a period. ``audit_page`` is
the service both the routes and the page call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from callvault.db.models import AuditEvent, Operator, User
from callvault.errors import ErrorId, InvalidInput
from callvault.portal.api.schemas import Page
from callvault.portal.auth import MAX_ID, SessionDep, as_utc
from callvault.portal.roles import AdminTenant, OperatorOnly
from callvault.portal.timefmt import UtcDateTime

router = APIRouter(prefix="/api/v1", tags=["audit"])

Limit = Annotated[int, Query(ge=1, le=500)]


class AuditParams(BaseModel):
    """The filters of both audit lists, by their names in the query string."""

    model_config = ConfigDict(populate_by_name=True)

    cursor: str | None = Field(None, max_length=20, description="next_cursor of the last page")
    action: str | None = Field(None, max_length=64, description="e.g. recording.")
    since: datetime | None = Field(None, description="from this moment (inclusive)")
    until: datetime | None = Field(None, description="until this moment (exclusive)")


AuditQuery = Annotated[AuditParams, Query()]


class AuditOut(BaseModel):
    id: int
    at: UtcDateTime
    tenant_id: int | None
    actor: str
    actor_ref: str
    action: str
    target: str | None
    remote_addr: str | None
    details: dict[str, Any]


def _filtered(query: Select[AuditEvent], params: AuditParams) -> Select[AuditEvent]:
    action, since, until, cursor = params.action, params.since, params.until, params.cursor
    if action:
        query = query.where(AuditEvent.action.startswith(action, autoescape=True))
    if since is not None:
        query = query.where(AuditEvent.at >= as_utc(since))
    if until is not None:
        query = query.where(AuditEvent.at < as_utc(until))
    if cursor:
        if not cursor.isdigit() or int(cursor) > MAX_ID + 1:
            raise InvalidInput("the cursor is not valid", error_id=ErrorId.BAD_CURSOR)
        query = query.where(AuditEvent.id < int(cursor))
    return query


def _actor_names(session: Session, refs: set[str]) -> dict[str, str]:
    ids: dict[str, set[int]] = {"user": set(), "operator": set()}
    for ref in refs:
        kind, _, raw = ref.partition(":")
        if kind in ids and raw.isdigit():
            ids[kind].add(int(raw))
    names: dict[str, str] = {}
    if ids["user"]:
        for uid, name in session.execute(
            select(User.id, User.name).where(User.id.in_(ids["user"]))
        ):
            names[f"user:{uid}"] = name
    if ids["operator"]:
        for oid, name in session.execute(
            select(Operator.id, Operator.name).where(Operator.id.in_(ids["operator"]))
        ):
            names[f"operator:{oid}"] = f"{name} (operator)"
    for ref in refs - names.keys():
        kind, _, raw = ref.partition(":")
        names[ref] = {"share": f"share link {raw}", "login": f"login {raw}"}.get(kind, ref)
    return names


def audit_page(
    session: Session, params: AuditParams, *, limit: int, tenant_id: int | None = None
) -> Page[AuditOut]:
    """One page of audit rows, newest first: ``tenant_id``'s, or all of them (operator)."""
    query = select(AuditEvent)
    if tenant_id is not None:
        query = query.where(AuditEvent.tenant_id == tenant_id)
    query = _filtered(query, params)
    rows = list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    names = _actor_names(session, {r.actor for r in rows})
    return Page[AuditOut](
        items=[
            AuditOut(
                id=r.id,
                at=as_utc(r.at),
                tenant_id=r.tenant_id,
                actor=names.get(r.actor, r.actor),
                actor_ref=r.actor,
                action=r.action,
                target=r.target,
                remote_addr=r.remote_addr,
                details=r.details or {},
            )
            for r in rows
        ],
        next_cursor=str(rows[-1].id) if more else None,
    )


@router.get("/tenants/{tenant_id}/audit", response_model=Page[AuditOut])
def tenant_audit_log(
    tenant: AdminTenant, session: SessionDep, limit: Limit = 50, *, params: AuditQuery
) -> Page[AuditOut]:
    return audit_page(session, params, limit=limit, tenant_id=tenant.id)


@router.get("/audit", response_model=Page[AuditOut])
def audit_log(
    _operator: OperatorOnly,
    session: SessionDep,
    limit: Limit = 50,
    *,
    params: AuditQuery,
    tenant_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="one tenant only")] = None,
) -> Page[AuditOut]:
    """Everything, tenant-less rows (failed logins of unknown names) included."""
    return audit_page(session, params, limit=limit, tenant_id=tenant_id)
