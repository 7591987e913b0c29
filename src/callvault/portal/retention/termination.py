"""Tenant termination, the operator's two steps (issue 8 section 5, HIP).

``POST /api/v1/operator/tenants/{id}/termination`` answers what would be
destroyed and a one-time confirmation token (valid 10 minutes);
``POST .../termination/confirm`` with that token and the tenant's exact name
destroys the tenant (``tenants/termination.py``) and answers its receipt,
which the operator downloads from ``/api/v1/operator/deletion-receipts``.
Wrong token, expired token, wrong name: 422 with its own id, nothing lost;
an active legal hold: 409 ``legal-hold-active``. After it SIP matching
forgets the tenant at once.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from callvault.db.models import Tenant
from callvault.errors import ErrorId, NotFound
from callvault.portal.api.schemas import Strict
from callvault.portal.audit import remote_addr
from callvault.portal.auth import DbId, Now, SessionDep
from callvault.portal.retention.receipts import OPERATOR_BASE, ReceiptOut, receipt_out
from callvault.portal.roles import OperatorOnly
from callvault.portal.timefmt import UtcDateTime
from callvault.tenants.termination import TerminationSummary, request_termination, terminate

router = APIRouter(prefix="/api/v1/operator/tenants/{tenant_id}/termination", tags=["operator"])


class WillDestroy(BaseModel):
    users: int
    calls: int
    recordings: int
    audio_files: int
    audio_bytes: int
    export_files: int
    export_bytes: int


class TerminationRequestOut(BaseModel):
    tenant_id: int
    tenant_name: str
    will_destroy: WillDestroy
    confirmation_token: str = Field(description="shown once; send it back with the name")
    expires_at: UtcDateTime
    confirm: str


class TerminationConfirmIn(Strict):
    token: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200, description="the tenant's exact name")


class TerminatedOut(BaseModel):
    tenant_id: int
    tenant_name: str
    receipt: ReceiptOut


def _will_destroy(summary: TerminationSummary) -> WillDestroy:
    return WillDestroy(**summary.counts())


@router.post("", status_code=201, response_model=TerminationRequestOut)
def ask_termination(
    tenant_id: DbId, principal: OperatorOnly, session: SessionDep, request: Request, at: Now
) -> TerminationRequestOut:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", error_id=ErrorId.TENANT_NOT_FOUND)
    token, expires_at, summary = request_termination(
        session, tenant, actor=principal.actor(), at=at, remote_addr=remote_addr(request)
    )
    return TerminationRequestOut(
        tenant_id=tenant_id,
        tenant_name=summary.tenant_name,
        will_destroy=_will_destroy(summary),
        confirmation_token=token,
        expires_at=expires_at,
        confirm=f"/api/v1/operator/tenants/{tenant_id}/termination/confirm",
    )


@router.post("/confirm", response_model=TerminatedOut)
def confirm_termination(
    tenant_id: DbId,
    body: TerminationConfirmIn,
    principal: OperatorOnly,
    session: SessionDep,
    request: Request,
    at: Now,
) -> TerminatedOut:
    context = request.app.state.context
    receipt = terminate(
        session,
        context.blobs,
        tenant_id,
        token=body.token,
        name=body.name,
        actor=principal.actor(),
        at=at,
        remote_addr=remote_addr(request),
    )
    context.on_directory_change()
    return TerminatedOut(
        tenant_id=tenant_id,
        tenant_name=receipt.tenant_name or "",
        receipt=receipt_out(receipt, OPERATOR_BASE),
    )
