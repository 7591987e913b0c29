"""Plans (SPEC section 4): what the operator sells, and the tenant's retention slider.

A plan sets the slider's range and default (7-180 default 7, 30-120, fixed
180 or 365) or a minute quota (HIP: 100.000 minutes). The tenant names its
plan (``Tenant.plan``); the range lives on the plan only, so this module is
the one place that says what a tenant's slider may be.

Assigning a plan, or narrowing one, moves a slider that falls outside the new
range to the plan's default; the new period counts from the day of that
change (``rule.recompute_expiry``), as every slider change does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callvault.db.models import Plan, Recording, Tenant
from callvault.errors import Conflict, ErrorId, InvalidInput, NotFound
from callvault.retention.access import audio_available
from callvault.retention.rule import recompute_expiry

DEFAULT_PLAN = "standard"
# bulk download (Callvoip) needs at least this retention
BULK_MIN_RETENTION_DAYS = 180
MAX_RETENTION_DAYS = 3650
PLAN_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,31}$"


@dataclass(frozen=True)
class PlanTerms:
    """A plan's figures, checked: ``min <= default <= max``."""

    retention_min_days: int
    retention_max_days: int
    retention_default_days: int
    minute_quota: int | None = None

    def check(self) -> PlanTerms:
        low, high, default = (
            self.retention_min_days,
            self.retention_max_days,
            self.retention_default_days,
        )
        if not 1 <= low <= high <= MAX_RETENTION_DAYS:
            raise InvalidInput(
                f"retention_min_days ({low}) must lie from 1 to retention_max_days ({high}), "
                f"at most {MAX_RETENTION_DAYS}",
                error_id=ErrorId.RETENTION_RANGE_INVALID,
            )
        if not low <= default <= high:
            raise InvalidInput(
                f"retention_default_days ({default}) must lie in {low}-{high}",
                error_id=ErrorId.RETENTION_RANGE_INVALID,
            )
        if self.minute_quota is not None and self.minute_quota < 1:
            raise InvalidInput("minute_quota must be at least 1", error_id=ErrorId.INVALID_INPUT)
        return self


def list_plans(session: Session) -> list[Plan]:
    return list(session.scalars(select(Plan).order_by(Plan.name)))


def get_plan(session: Session, name: str) -> Plan:
    plan = session.scalar(select(Plan).where(Plan.name == name))
    if plan is None:
        raise NotFound(f"no plan named {name!r}", error_id=ErrorId.PLAN_NOT_FOUND)
    return plan


def plan_of(session: Session, tenant: Tenant) -> Plan:
    """The tenant's plan (every tenant has one: migration 0009 made sure)."""
    return get_plan(session, tenant.plan)


def tenants_on(session: Session, plan: Plan) -> list[Tenant]:
    return list(session.scalars(select(Tenant).where(Tenant.plan == plan.name).order_by(Tenant.id)))


def create_plan(session: Session, name: str, terms: PlanTerms, *, actor: str) -> Plan:
    """A new plan; 409 ``plan-exists`` when the name is taken. The caller audits and commits."""
    terms.check()
    if session.scalar(select(Plan.id).where(Plan.name == name)) is not None:
        raise Conflict(f"a plan named {name!r} exists already", error_id=ErrorId.PLAN_EXISTS)
    plan = Plan(
        name=name,
        retention_min_days=terms.retention_min_days,
        retention_max_days=terms.retention_max_days,
        retention_default_days=terms.retention_default_days,
        minute_quota=terms.minute_quota,
        created_by=actor[:200],
    )
    session.add(plan)
    session.flush()
    return plan


def terms_of(plan: Plan) -> PlanTerms:
    return PlanTerms(
        plan.retention_min_days,
        plan.retention_max_days,
        plan.retention_default_days,
        plan.minute_quota,
    )


def change_plan(
    session: Session, plan: Plan, terms: PlanTerms, at: datetime
) -> tuple[dict[str, dict[str, Any]], list[int]]:
    """New figures for ``plan``; sliders of its tenants outside the new range move to
    its default. Returns the plan's changes and the ids of the tenants moved."""
    terms.check()
    before = terms_of(plan)
    changed = {
        key: {"old": getattr(before, key), "new": getattr(terms, key)}
        for key in PlanTerms.__dataclass_fields__
        if getattr(before, key) != getattr(terms, key)
    }
    for key, diff in changed.items():
        setattr(plan, key, diff["new"])
    moved = [t.id for t in tenants_on(session, plan) if fit_slider(session, t, plan, at)]
    session.flush()
    return changed, moved


def delete_plan(session: Session, plan: Plan) -> None:
    if session.scalar(select(Tenant.id).where(Tenant.plan == plan.name).limit(1)) is not None:
        raise Conflict(
            f"tenants are on the plan {plan.name!r}; assign them another plan first",
            error_id=ErrorId.PLAN_IN_USE,
        )
    session.delete(plan)
    session.flush()


def in_plan(plan: Plan, retention_days: int) -> bool:
    return plan.retention_min_days <= retention_days <= plan.retention_max_days


def check_retention(plan: Plan, retention_days: int) -> None:
    """422 ``retention-out-of-plan`` when the slider lies outside the plan's range."""
    if not in_plan(plan, retention_days):
        raise InvalidInput(
            f"retention_days: the plan {plan.name!r} allows "
            f"{plan.retention_min_days} to {plan.retention_max_days} days",
            error_id=ErrorId.RETENTION_OUT_OF_PLAN,
        )


def set_retention(session: Session, tenant: Tenant, retention_days: int, at: datetime) -> bool:
    """Moves the slider (checked by the caller) and re-computes every recording's expiry
    from the day of the change; False when it did not move. Bulk download, which needs
    180 days, goes off below that."""
    if retention_days == tenant.retention_days:
        return False
    tenant.retention_days = retention_days
    tenant.retention_changed_at = at  # the new period counts from today (SPEC 4)
    if retention_days < BULK_MIN_RETENTION_DAYS:
        tenant.bulk_download = False
    session.flush()
    recompute_expiry(session, tenant, at)
    return True


def fit_slider(session: Session, tenant: Tenant, plan: Plan, at: datetime) -> bool:
    """A slider outside ``plan``'s range moves to the plan's default; True when it moved."""
    if in_plan(plan, tenant.retention_days):
        return False
    return set_retention(session, tenant, plan.retention_default_days, at)


def assign_plan(
    session: Session, tenant: Tenant, plan: Plan, at: datetime
) -> dict[str, dict[str, Any]]:
    """Puts ``tenant`` on ``plan``; returns what changed (for the audit row)."""
    before = {
        "plan": tenant.plan,
        "retention_days": tenant.retention_days,
        "bulk_download": tenant.bulk_download,
    }
    tenant.plan = plan.name
    fit_slider(session, tenant, plan, at)
    after = {
        "plan": tenant.plan,
        "retention_days": tenant.retention_days,
        "bulk_download": tenant.bulk_download,
    }
    return {
        key: {"old": before[key], "new": after[key]} for key in before if before[key] != after[key]
    }


def minutes_used(session: Session, tenant_id: int, at: datetime) -> float:
    """Minutes of audio the tenant keeps (recordings whose audio may still be reached)."""
    total = session.scalar(
        select(func.coalesce(func.sum(Recording.duration_ms), 0)).where(
            Recording.tenant_id == tenant_id, audio_available(at)
        )
    )
    return round(int(total or 0) / 60000, 1)
