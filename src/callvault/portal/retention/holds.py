"""Legal holds (SPEC section 4): ``/api/v1/tenants/{t}/legal-holds``.

The operator or the tenant's admin places a hold on the whole tenant, one
user or one recording, with a reason, and lifts it with a reason; both are
audited (``legal-hold.place``, ``legal-hold.lift``). A user, recording or
hold of another tenant is 404, as if it did not exist. While a hold is
active, the audio it covers stays reachable past its expiry and nothing
deletes it (``retention/holds.py``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from callvault.db.models import LegalHold
from callvault.portal.api.schemas import Strict
from callvault.portal.audit import audit
from callvault.portal.auth import MAX_ID, CurrentPrincipal, Now, SessionDep, as_utc
from callvault.portal.roles import AdminTenant
from callvault.portal.timefmt import UtcDateTime
from callvault.retention.holds import HoldScope, active_holds, all_holds, lift_hold, place_hold

router = APIRouter(prefix="/api/v1/tenants/{tenant_id}/legal-holds", tags=["legal holds"])

Reason = Annotated[str, Field(min_length=3, max_length=2000)]


class HoldIn(Strict):
    scope: HoldScope
    reason: Reason
    user_id: int | None = Field(default=None, ge=1, le=MAX_ID, description="scope user")
    recording_id: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{32}$", description="scope recording"
    )


class LiftIn(Strict):
    reason: Reason


class HoldOut(BaseModel):
    id: int
    scope: HoldScope
    user_id: int | None
    recording_id: str | None
    reason: str
    placed_by: str
    placed_at: UtcDateTime
    active: bool
    lifted_by: str | None
    lifted_at: UtcDateTime | None
    lift_reason: str | None


def hold_out(hold: LegalHold) -> HoldOut:
    scope: HoldScope = (
        "user" if hold.scope == "user" else "recording" if hold.scope == "recording" else "tenant"
    )
    return HoldOut(
        id=hold.id,
        scope=scope,
        user_id=hold.user_id,
        recording_id=hold.recording_id,
        reason=hold.reason,
        placed_by=hold.placed_by,
        placed_at=as_utc(hold.placed_at),
        active=hold.lifted_at is None,
        lifted_by=hold.lifted_by,
        lifted_at=as_utc(hold.lifted_at) if hold.lifted_at else None,
        lift_reason=hold.lift_reason,
    )


@router.get("", response_model=list[HoldOut])
def list_holds(
    tenant: AdminTenant, session: SessionDep, active: Annotated[bool, Query()] = False
) -> list[HoldOut]:
    """The tenant's holds, newest first; ``?active=true``: only those in force."""
    holds = active_holds(session, tenant.id) if active else all_holds(session, tenant.id)
    return [hold_out(h) for h in holds]


@router.post("", response_model=HoldOut, status_code=201)
def place(
    body: HoldIn,
    tenant: AdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
    at: Now,
) -> HoldOut:
    hold = place_hold(
        session,
        tenant.id,
        body.scope,
        body.reason,
        actor=principal.actor(),
        at=at,
        user_id=body.user_id,
        recording_id=body.recording_id,
    )
    audit(
        session,
        request,
        principal,
        "legal-hold.place",
        tenant.id,
        target=f"legal-hold:{hold.id}",
        scope=hold.scope,
        user_id=hold.user_id,
        recording_id=hold.recording_id,
        reason=hold.reason,
    )
    session.commit()
    return hold_out(hold)


@router.post("/{hold_id}/lift", response_model=HoldOut)
def lift(
    hold_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: LiftIn,
    tenant: AdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
    at: Now,
) -> HoldOut:
    hold = lift_hold(session, tenant.id, hold_id, body.reason, actor=principal.actor(), at=at)
    audit(
        session,
        request,
        principal,
        "legal-hold.lift",
        tenant.id,
        target=f"legal-hold:{hold.id}",
        scope=hold.scope,
        reason=body.reason,
    )
    session.commit()
    return hold_out(hold)
