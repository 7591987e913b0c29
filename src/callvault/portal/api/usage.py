"""Usage for billing, per tenant and month (SPEC sections 1 and 4, issue 8 section 5).

A month (``YYYY-MM``) is the tenant's local month (``Tenant.timezone``):

* ``recorded_users``: distinct users with a recording that started in the month;
* ``recordings`` and ``recorded_minutes``: how many recordings started in the
  month, and the sum of their durations;
* ``bytes_stored``: the tenant's audio stored now (available audio only:
  expired, purged or mailed-away audio is not billed);
* ``plan`` (its name), ``retention_days``, ``minute_quota``, and ``retention``
  (days and the slider's range).

The operator reads every tenant (JSON, or CSV for a spreadsheet); a tenant's
admin reads its own. A malformed month and a month no place on earth has
reached yet are 422. The CSV's free-text cells (tenant and plan names) are
written so that a spreadsheet never runs them as a formula.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from callvault.db.models import Plan, Recording, Tenant
from callvault.errors import ErrorId, InvalidInput
from callvault.portal.audit import audit
from callvault.portal.auth import Now, SessionDep
from callvault.portal.roles import AdminTenant, OperatorOnly
from callvault.portal.timefmt import UtcDateTime, local, month_range
from callvault.retention.access import audio_available

router = APIRouter(prefix="/api/v1", tags=["usage"])

_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
# the first place on earth to reach a new month: a month not begun there is in the future
_EARLIEST_ZONE = ZoneInfo("Etc/GMT-14")
_FORMULA_START = "=+-@\t\r"

MonthParam = Annotated[
    str | None,
    Query(max_length=20, description="YYYY-MM in the tenant's time zone (default: this month)"),
]


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def parse_month(text: str, at: datetime) -> Month:
    """``YYYY-MM``; 422 ``invalid-month`` when malformed, ``month-in-future`` when no
    place on earth has reached it at ``at``."""
    found = _MONTH.fullmatch(text.strip())
    if found is None:
        raise InvalidInput(
            f"month: {text!r} is not a month (YYYY-MM)", error_id=ErrorId.INVALID_MONTH
        )
    month = Month(int(found.group(1)), int(found.group(2)))
    earliest = at.astimezone(_EARLIEST_ZONE)
    if month > Month(earliest.year, earliest.month):
        raise InvalidInput(f"month: {month} has not begun yet", error_id=ErrorId.MONTH_IN_FUTURE)
    if month.year < 2000:
        raise InvalidInput(
            f"month: {month} is before any recording", error_id=ErrorId.INVALID_MONTH
        )
    return month


def this_month(at: datetime, timezone: str) -> Month:
    now = local(at, timezone)
    return Month(now.year, now.month)


class RetentionTier(BaseModel):
    """The plan's retention: the tenant's days and the slider's range."""

    plan: str
    retention_days: int
    retention_min_days: int
    retention_max_days: int


class TenantUsageOut(BaseModel):
    tenant_id: int
    tenant_name: str
    month: str = Field(description="YYYY-MM in the tenant's time zone")
    timezone: str
    period_start: UtcDateTime
    period_end: UtcDateTime = Field(description="exclusive")
    recorded_users: int = Field(description="distinct users with a recording in the month")
    recordings: int = Field(description="recordings started in the month")
    recorded_minutes: float = Field(description="their duration, in minutes")
    bytes_stored: int = Field(description="audio stored now (available audio only)")
    plan: str = Field(description="the plan's name")
    retention_days: int
    minute_quota: int | None = Field(description="minutes of audio kept at most; None: no quota")
    retention: RetentionTier


class UsageOut(BaseModel):
    month: str
    tenants: list[TenantUsageOut]


def tenant_usage(session: Session, tenant: Tenant, month: Month, at: datetime) -> TenantUsageOut:
    """One tenant's usage in its local ``month``; bytes stored as of ``at``."""
    start, end = month_range(month.year, month.month, tenant.timezone)
    users, count, duration_ms = session.execute(
        select(
            func.count(func.distinct(Recording.user_id)),
            func.count(Recording.id),
            func.coalesce(func.sum(Recording.duration_ms), 0),
        ).where(
            Recording.tenant_id == tenant.id,
            Recording.started_at >= start,
            Recording.started_at < end,
        )
    ).one()
    stored = session.scalar(
        select(func.coalesce(func.sum(Recording.size_bytes), 0)).where(
            and_(Recording.tenant_id == tenant.id, audio_available(at))
        )
    )
    plan = session.scalar(select(Plan).where(Plan.name == tenant.plan))
    return TenantUsageOut(
        tenant_id=tenant.id,
        tenant_name=tenant.name,
        month=str(month),
        timezone=tenant.timezone,
        period_start=start,
        period_end=end,
        recorded_users=users or 0,
        recordings=count or 0,
        recorded_minutes=round((duration_ms or 0) / 60000, 2),
        bytes_stored=int(stored or 0),
        plan=tenant.plan,
        retention_days=tenant.retention_days,
        minute_quota=plan.minute_quota if plan is not None else None,
        retention=RetentionTier(
            plan=tenant.plan,
            retention_days=tenant.retention_days,
            retention_min_days=plan.retention_min_days if plan else tenant.retention_days,
            retention_max_days=plan.retention_max_days if plan else tenant.retention_days,
        ),
    )


def all_usage(session: Session, month: Month, at: datetime) -> UsageOut:
    """Every tenant's usage in ``month`` (each in its own time zone), by name."""
    tenants = session.scalars(select(Tenant).order_by(Tenant.name, Tenant.id))
    rows = [tenant_usage(session, t, month, at) for t in tenants]
    return UsageOut(month=str(month), tenants=rows)


CSV_COLUMNS = (
    "month",
    "tenant_id",
    "tenant",
    "timezone",
    "recorded_users",
    "recordings",
    "recorded_minutes",
    "bytes_stored",
    "plan",
    "retention_days",
    "minute_quota",
)


def _cell(value: object) -> str:
    """A cell a spreadsheet shows as text: a leading ``'`` before formula starts."""
    text = "" if value is None else str(value)
    return "'" + text if text and text[0] in _FORMULA_START else text


def usage_csv(usage: UsageOut) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(CSV_COLUMNS)
    for row in usage.tenants:
        writer.writerow(
            [
                _cell(v)
                for v in (
                    row.month,
                    row.tenant_id,
                    row.tenant_name,
                    row.timezone,
                    row.recorded_users,
                    row.recordings,
                    f"{row.recorded_minutes:.2f}",
                    row.bytes_stored,
                    row.plan,
                    row.retention_days,
                    row.minute_quota,
                )
            ]
        )
    return out.getvalue()


def _operator_month(month: str | None, at: datetime) -> Month:
    return parse_month(month, at) if month else this_month(at, "UTC")


@router.get("/operator/usage", response_model=UsageOut)
def operator_usage(
    principal: OperatorOnly, session: SessionDep, at: Now, month: MonthParam = None
) -> UsageOut:
    """Every tenant's usage for billing in one month."""
    return all_usage(session, _operator_month(month, at), at)


@router.get(
    "/operator/usage.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def operator_usage_csv(
    principal: OperatorOnly,
    session: SessionDep,
    request: Request,
    at: Now,
    month: MonthParam = None,
) -> Response:
    """The same as CSV (UTF-8, RFC 4180); each download is audited."""
    chosen = _operator_month(month, at)
    body = usage_csv(all_usage(session, chosen, at))
    audit(session, request, principal, "usage.export", None, month=str(chosen))
    session.commit()
    return Response(
        content=body.encode(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="callvault-usage-{chosen}.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/tenants/{tenant_id}/usage", response_model=TenantUsageOut)
def get_tenant_usage(
    tenant: AdminTenant, session: SessionDep, at: Now, month: MonthParam = None
) -> TenantUsageOut:
    """One tenant's usage in one of its months: for the operator and the tenant's admin."""
    chosen = parse_month(month, at) if month else this_month(at, tenant.timezone)
    return tenant_usage(session, tenant, chosen, at)
