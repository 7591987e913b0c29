"""The operator's plans (SPEC section 4): ``/api/v1/plans``, operator only.

A plan is a retention range with a default (7-180 default 7; 30-120; fixed
180 or 365) and optionally a minute quota. Tenants name their plan; a plan
in use cannot be deleted. Narrowing a plan moves the sliders of its tenants
that fall outside to its default (``retention/plans.py``). Every change is
audited (``plan.create``, ``plan.change``, ``plan.delete``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from callvault.db.models import Plan
from callvault.portal.api.schemas import Strict
from callvault.portal.audit import audit
from callvault.portal.auth import Now, SessionDep, as_utc
from callvault.portal.roles import OperatorOnly
from callvault.portal.timefmt import UtcDateTime
from callvault.retention.plans import (
    MAX_RETENTION_DAYS,
    PLAN_NAME_PATTERN,
    PlanTerms,
    change_plan,
    create_plan,
    delete_plan,
    get_plan,
    list_plans,
    tenants_on,
    terms_of,
)

router = APIRouter(prefix="/api/v1/plans", tags=["plans"])

PlanName = Annotated[str, Path(pattern=PLAN_NAME_PATTERN, max_length=32)]
Days = Annotated[int, Field(ge=1, le=MAX_RETENTION_DAYS)]


class PlanOut(BaseModel):
    name: str
    retention_min_days: int
    retention_max_days: int
    retention_default_days: int
    minute_quota: int | None = Field(description="minutes of audio kept at most; null: none")
    fixed: bool = Field(description="the slider cannot move (min = max)")
    tenants: int = Field(description="tenants on this plan")
    created_at: UtcDateTime
    created_by: str


class PlanIn(Strict):
    name: str = Field(pattern=PLAN_NAME_PATTERN, max_length=32)
    retention_min_days: Days
    retention_max_days: Days
    retention_default_days: Days | None = Field(default=None, description="default: the minimum")
    minute_quota: int | None = Field(default=None, ge=1, le=100_000_000)


class PlanPatchIn(Strict):
    retention_min_days: Days | None = None
    retention_max_days: Days | None = None
    retention_default_days: Days | None = None
    minute_quota: int | None = Field(default=None, ge=0, le=100_000_000, description="0 removes")


def plan_out(plan: Plan, tenants: int) -> PlanOut:
    return PlanOut(
        name=plan.name,
        retention_min_days=plan.retention_min_days,
        retention_max_days=plan.retention_max_days,
        retention_default_days=plan.retention_default_days,
        minute_quota=plan.minute_quota,
        fixed=plan.retention_min_days == plan.retention_max_days,
        tenants=tenants,
        created_at=as_utc(plan.created_at),
        created_by=plan.created_by,
    )


@router.get("", response_model=list[PlanOut])
def plans(principal: OperatorOnly, session: SessionDep) -> list[PlanOut]:
    return [plan_out(p, len(tenants_on(session, p))) for p in list_plans(session)]


@router.post("", response_model=PlanOut, status_code=201)
def add_plan(
    body: PlanIn, principal: OperatorOnly, session: SessionDep, request: Request
) -> PlanOut:
    terms = PlanTerms(
        body.retention_min_days,
        body.retention_max_days,
        body.retention_default_days or body.retention_min_days,
        body.minute_quota,
    )
    plan = create_plan(session, body.name, terms, actor=principal.actor())
    audit(
        session,
        request,
        principal,
        "plan.create",
        None,
        target=f"plan:{plan.name}",
        **asdict(terms),
    )
    session.commit()
    return plan_out(plan, 0)


@router.get("/{name}", response_model=PlanOut)
def one_plan(name: PlanName, principal: OperatorOnly, session: SessionDep) -> PlanOut:
    plan = get_plan(session, name)
    return plan_out(plan, len(tenants_on(session, plan)))


@router.patch("/{name}", response_model=PlanOut)
def patch_plan(
    name: PlanName,
    body: PlanPatchIn,
    principal: OperatorOnly,
    session: SessionDep,
    request: Request,
    at: Now,
) -> PlanOut:
    """New figures; tenants whose slider falls outside move to the plan's default."""
    plan = get_plan(session, name)
    old = terms_of(plan)
    wanted = body.model_dump(exclude_none=True)
    if wanted.get("minute_quota") == 0:
        wanted["minute_quota"] = None
    changed, moved = change_plan(session, plan, PlanTerms(**(asdict(old) | wanted)), at)
    if changed:
        audit(
            session,
            request,
            principal,
            "plan.change",
            None,
            target=f"plan:{plan.name}",
            **{key: diff["new"] for key, diff in changed.items()},
            old={key: diff["old"] for key, diff in changed.items()},
            tenants_moved=moved,
        )
    for tenant_id in moved:
        audit(
            session,
            request,
            principal,
            "tenant.change",
            tenant_id,
            target=f"tenant:{tenant_id}",
            retention_days=plan.retention_default_days,
            reason=f"plan {plan.name} changed",
        )
    session.commit()
    return plan_out(plan, len(tenants_on(session, plan)))


@router.delete("/{name}", status_code=204)
def remove_plan(
    name: PlanName, principal: OperatorOnly, session: SessionDep, request: Request
) -> Response:
    plan = get_plan(session, name)
    delete_plan(session, plan)
    audit(session, request, principal, "plan.delete", None, target=f"plan:{name}")
    session.commit()
    return Response(status_code=204)
