"""Reading the audit log: a tenant's (its admin) and everything (the operator).

Newest first, keyset-paged on the row id (ids only grow, so a page never
repeats or skips a row while new rows arrive). Filters: an action prefix
(``recording.`` finds plays and downloads) and a period.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from callvault.db.models import AuditEvent, Operator, User
from callvault.errors import InvalidInput
from callvault.portal.api.schemas import Page
from callvault.portal.auth import MAX_ID, AdminTenant, OperatorOnly, SessionDep, as_utc

router = APIRouter(prefix="/api/v1", tags=["audit"])

Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=20, description="next_cursor of the last page")]
ActionPrefix = Annotated[str | None, Query(max_length=64, description="e.g. recording.")]
Since = Annotated[datetime | None, Query(description="from this moment (inclusive)")]
Until = Annotated[datetime | None, Query(description="until this moment (exclusive)")]


class AuditOut(BaseModel):
    id: int
    at: datetime
    tenant_id: int | None
    actor: str
    actor_ref: str
    action: str
    target: str | None
    remote_addr: str | None
    details: dict[str, Any]


def _filtered(
    query: Select[AuditEvent],
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    cursor: str | None,
) -> Select[AuditEvent]:
    if action:
        query = query.where(AuditEvent.action.startswith(action, autoescape=True))
    if since is not None:
        query = query.where(AuditEvent.at >= as_utc(since))
    if until is not None:
        query = query.where(AuditEvent.at < as_utc(until))
    if cursor:
        if not cursor.isdigit() or int(cursor) > MAX_ID + 1:
            raise InvalidInput("the cursor is not valid", error_id="bad-cursor")
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


def _page(session: Session, query: Select[AuditEvent], limit: int) -> Page[AuditOut]:
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
    tenant: AdminTenant,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    action: ActionPrefix = None,
    since: Since = None,
    until: Until = None,
) -> Page[AuditOut]:
    query = select(AuditEvent).where(AuditEvent.tenant_id == tenant.id)
    return _page(session, _filtered(query, action, since, until, cursor), limit)


@router.get("/audit", response_model=Page[AuditOut])
def audit_log(
    _operator: OperatorOnly,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    action: ActionPrefix = None,
    since: Since = None,
    until: Until = None,
    tenant_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="one tenant only")] = None,
) -> Page[AuditOut]:
    """Everything, tenant-less rows (failed logins of unknown names) included."""
    query = select(AuditEvent)
    if tenant_id is not None:
        query = query.where(AuditEvent.tenant_id == tenant_id)
    return _page(session, _filtered(query, action, since, until, cursor), limit)
