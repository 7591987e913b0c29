"""Minute quotas (SPEC section 4; HIP's "100.000 minuten").

A plan with ``minute_quota`` bounds the minutes of audio a tenant keeps: the
minutes of its recordings whose audio is still available. Over the quota the
purge (``purge.py``) deletes the oldest recordings first (by ``started_at``),
skipping those under a legal hold, until the tenant is within it again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callvault.db.models import Plan, Recording, Tenant
from callvault.retention.access import audio_available

MS_PER_MINUTE = 60_000


def quota_minutes(session: Session, tenant_id: int) -> int | None:
    """The tenant's plan's minute quota; None when its plan has none."""
    return session.scalar(
        select(Plan.minute_quota)
        .join(Tenant, Tenant.plan == Plan.name)
        .where(Tenant.id == tenant_id)
    )


def used_ms(session: Session, tenant_id: int, at: datetime) -> int:
    """Milliseconds of the tenant's audio still available at ``at``."""
    total = session.scalar(
        select(func.coalesce(func.sum(Recording.duration_ms), 0)).where(
            Recording.tenant_id == tenant_id, audio_available(at)
        )
    )
    return int(total or 0)


def quota_usage(
    session: Session, tenant_id: int, at: datetime | None = None
) -> tuple[float, int | None]:
    """``(used_minutes, quota_minutes | None)`` for the settings page: minutes of
    available audio (two decimals) and the plan's quota, None without one."""
    moment = at if at is not None else datetime.now(UTC)
    return round(used_ms(session, tenant_id, moment) / MS_PER_MINUTE, 2), quota_minutes(
        session, tenant_id
    )


def tenants_with_quota(session: Session) -> list[tuple[int, int]]:
    """``(tenant_id, quota_minutes)`` of every tenant whose plan has a quota."""
    rows = session.execute(
        select(Tenant.id, Plan.minute_quota)
        .join(Plan, Plan.name == Tenant.plan)
        .where(Plan.minute_quota.is_not(None))
        .order_by(Tenant.id)
    )
    return [(tenant_id, int(quota)) for tenant_id, quota in rows if quota is not None]
