"""Asking for a bulk download (SPEC 5): the checks, the ``Export`` row and its job.

The tenant needs bulk download on (which needs 180 days of retention, enforced
where it is switched on); the month is ``YYYY-MM`` in the tenant's time zone
and has begun; users, when given, are this tenant's (a foreign or unknown id
gets one and the same 422, which tells nothing about other tenants); a
stream-only tenant cannot export, as it cannot download. A month
without recordings is allowed: its ZIP holds a manifest saying so.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callvault.db.models import Export, Tenant, User
from callvault.errors import Conflict, ErrorId, Forbidden, InvalidInput
from callvault.exports.month import check_not_future, parse_month
from callvault.jobs import queue

BUILD_KIND = "exports.build"
MAIL_KIND = "exports.mail"
MAX_USERS = 1000
MAX_OPEN_PER_TENANT = 3  # queued or running at once: a month is big, the disk is shared


def request_export(
    session: Session,
    tenant: Tenant,
    *,
    month: str,
    user_ids: list[int] | None,
    requested_by: int | None,
    actor: str,
    at: datetime,
) -> Export:
    """The new export, queued (flushed, not committed)."""
    if not tenant.bulk_download:
        raise InvalidInput(
            "bulk download is off for this organisation (Settings › Recording)",
            error_id=ErrorId.EXPORT_BULK_OFF,
        )
    if tenant.stream_only:
        # the id's 403, as on every audio route (it was a 422 here before the ids were one list)
        raise Forbidden(
            "recordings of this organisation can only be played in the browser, not downloaded",
            error_id=ErrorId.STREAM_ONLY,
        )
    parse_month(month)
    check_not_future(month, tenant.timezone, at)
    wanted: list[int] | None = None
    if user_ids is not None:
        wanted = sorted(set(user_ids))
        if not wanted or len(wanted) > MAX_USERS:
            raise InvalidInput(
                f"user_ids: between 1 and {MAX_USERS} users, or leave it out for everyone",
                error_id=ErrorId.EXPORT_USERS_INVALID,
            )
        known = session.scalar(
            select(func.count(User.id)).where(User.tenant_id == tenant.id, User.id.in_(wanted))
        )
        if known != len(wanted):
            raise InvalidInput(
                "user_ids: not every user is a user of this organisation",
                error_id=ErrorId.EXPORT_USERS_UNKNOWN,
            )
    open_now = session.scalar(
        select(func.count(Export.id)).where(
            Export.tenant_id == tenant.id, Export.state.in_(("queued", "running"))
        )
    )
    if (open_now or 0) >= MAX_OPEN_PER_TENANT:
        raise Conflict(
            f"{open_now} exports are being made; wait until one is ready",
            error_id=ErrorId.EXPORT_TOO_MANY,
        )
    export = Export(
        tenant_id=tenant.id,
        month=month,
        user_ids=wanted,
        requested_by=requested_by,
        requested_by_actor=actor,
        state="queued",
        created_at=at,
        recordings=0,
        bytes_total=0,
    )
    session.add(export)
    session.flush()
    job = queue.enqueue(
        session,
        BUILD_KIND,
        {"export_id": export.id},
        at=at,
        tenant_id=tenant.id,
        key=f"{BUILD_KIND}:{export.id}",
        created_by=actor,
    )
    export.job_id = job.id
    session.flush()
    return export
