"""The operator's tenant controls: addresses, plan, retention range, suspension, and the
enablement of recording, listening and coaching (SPEC 1, 2, 4, 8); usage for billing
is ``api/usage.py``.

A tenant's domains, numbers and number blocks never overlap another tenant's
(``tenants/claims.py``); the answer names the tenant, the operator sees all.
Recording, LiveCenter listening and coaching are enabled per tenant once the
customer signed the provider's declaration (``tenants/enablement.py``); the
tenant admin may read the switches, only the operator sets them.

A plan (``/api/v1/plans``) sets the range of the tenant's retention slider
(SPEC section 4); the operator assigns one by name. A retention outside the
new plan's range moves to the plan's default (and counts from today, as any
retention change does); bulk download, which needs 180 days, is switched
off when the new retention falls short (``retention/plans.py``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.exc import IntegrityError

from callvault.errors import Conflict, ErrorId, InvalidInput
from callvault.portal.api.schemas import Strict, TenantIn, TenantOut
from callvault.portal.api.tenants import tenant_out
from callvault.portal.audit import audit, changes, remote_addr
from callvault.portal.auth import Now, SessionDep
from callvault.portal.roles import AdminTenant, OperatorOnly, OperatorTenant
from callvault.portal.timefmt import TimezoneName, UtcDateTime
from callvault.retention.plans import assign_plan, get_plan, plan_of
from callvault.tenants.claims import set_tenant_claims
from callvault.tenants.enablement import (
    FEATURES,
    Feature,
    FeatureState,
    feature_states,
    set_feature,
)

router = APIRouter(prefix="/api/v1/tenants/{tenant_id}", tags=["operator"])


class TenantPatchIn(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    domains: list[str] | None = Field(default=None, max_length=100)  # replaces the list
    numbers: list[str] | None = Field(default=None, max_length=1000)  # replaces the list
    blocks: list[str] | None = Field(default=None, max_length=1000)  # replaces the list

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else TenantIn.check_domains(value)

    @field_validator("numbers")
    @classmethod
    def _numbers(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else TenantIn.check_numbers(value)

    @field_validator("blocks")
    @classmethod
    def _blocks(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else TenantIn.check_blocks(value)

    plan: str | None = Field(default=None, min_length=1, max_length=32, description="a plan's name")
    suspended: bool | None = None
    timezone: TimezoneName | None = Field(default=None, max_length=64)  # IANA


class TenantPlanOut(TenantOut):
    plan: str
    retention_min_days: int
    retention_max_days: int
    retention_days: int
    bulk_download: bool


@router.patch("", response_model=TenantPlanOut)
def change_tenant(
    body: TenantPatchIn,
    tenant: OperatorTenant,
    principal: OperatorOnly,
    session: SessionDep,
    request: Request,
    at: Now,
) -> TenantPlanOut:
    wanted: dict[str, Any] = body.model_dump(exclude_none=True)
    if not wanted:
        raise InvalidInput("nothing to change", error_id=ErrorId.NO_CHANGE)
    addresses = set_tenant_claims(
        session,
        tenant,
        domains=wanted.pop("domains", None),
        numbers=wanted.pop("numbers", None),
        blocks=wanted.pop("blocks", None),
    )
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "another tenant has one of these domains or numbers", error_id=ErrorId.TENANT_EXISTS
        ) from exc
    plan_name = wanted.pop("plan", None)
    before = {key: getattr(tenant, key) for key in wanted}
    changed = changes(before, wanted)
    for key in changed:
        setattr(tenant, key, wanted[key])
    changed.update(addresses)  # already applied to the tenant
    if plan_name is not None:
        # the slider is fitted into the new range; expiry re-computed in the same transaction
        changed.update(assign_plan(session, tenant, get_plan(session, plan_name), at))
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "another tenant has this name, one of these domains or numbers",
            error_id=ErrorId.TENANT_EXISTS,
        ) from exc
    if changed:
        audit(
            session,
            request,
            principal,
            "tenant.change",
            tenant.id,
            target=f"tenant:{tenant.id}",
            **{key: diff["new"] for key, diff in changed.items()},
            old={key: diff["old"] for key, diff in changed.items()},
        )
    session.commit()
    if {"suspended", "domains", "numbers", "blocks"} & set(changed):
        request.app.state.context.on_directory_change()
    plan = plan_of(session, tenant)
    return TenantPlanOut(
        **tenant_out(tenant).model_dump(),
        plan=tenant.plan,
        retention_min_days=plan.retention_min_days,
        retention_max_days=plan.retention_max_days,
        retention_days=tenant.retention_days,
        bulk_download=tenant.bulk_download,
    )


class FeatureOut(BaseModel):
    feature: Feature
    enabled: bool
    reference: str | None = Field(description="the customer's signed declaration")
    enabled_by: str | None
    enabled_at: UtcDateTime | None
    disabled_by: str | None
    disabled_at: UtcDateTime | None


class FeatureIn(Strict):
    enabled: bool
    reference: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the signed declaration's reference; required to enable",
    )


def _feature_out(state: FeatureState) -> FeatureOut:
    return FeatureOut(
        feature=state.feature,
        enabled=state.enabled,
        reference=state.reference,
        enabled_by=state.enabled_by,
        enabled_at=state.enabled_at,
        disabled_by=state.disabled_by,
        disabled_at=state.disabled_at,
    )


@router.get("/enablement", response_model=list[FeatureOut])
def get_enablement(tenant: AdminTenant, session: SessionDep) -> list[FeatureOut]:
    """Which of recording, listening and coaching the operator enabled (operator, admin)."""
    states = feature_states(session, tenant.id)
    return [_feature_out(states[feature]) for feature in FEATURES]


@router.put("/enablement/{feature}", response_model=FeatureOut)
def set_enablement(
    feature: Feature,
    body: FeatureIn,
    tenant: OperatorTenant,
    principal: OperatorOnly,
    session: SessionDep,
    request: Request,
    at: Now,
) -> FeatureOut:
    """Switches a feature on (with the declaration's reference) or off; audited."""
    state, changed = set_feature(
        session,
        tenant.id,
        feature,
        body.enabled,
        actor=principal.actor(),
        reference=body.reference,
        at=at,
        remote_addr=remote_addr(request),
    )
    session.commit()
    if changed:
        request.app.state.context.on_directory_change()
    return _feature_out(state)
