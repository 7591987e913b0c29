"""A tenant's exports as the API and the pages show them (SPEC 5).

An export past its ``expires_at`` shows as expired, also before
``exports.expire`` deleted its files; the mail's state comes from the
``exports.mail`` job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.db.models import Export, Job, Tenant
from callvault.errors import ErrorId, NotFound
from callvault.exports.request import BUILD_KIND, MAIL_KIND
from callvault.portal.auth import as_utc
from callvault.portal.exports.schemas import ExportFileOut, ExportOut, MailOut


def exports_of(session: Session, tenant: Tenant, at: datetime) -> list[ExportOut]:
    """The tenant's last 100 exports, newest first."""
    rows = session.scalars(
        select(Export)
        .where(Export.tenant_id == tenant.id)
        .order_by(Export.created_at.desc(), Export.id)
        .limit(100)
    )
    return [export_out(session, tenant, e, at) for e in rows]


def export_of(session: Session, tenant: Tenant, export_id: str) -> Export:
    export = session.scalar(
        select(Export).where(Export.id == export_id, Export.tenant_id == tenant.id)
    )
    if export is None:
        raise NotFound("no such export", error_id=ErrorId.EXPORT_NOT_FOUND)
    return export


def is_expired(export: Export, at: datetime) -> bool:
    return export.state == "expired" or (
        export.expires_at is not None and as_utc(export.expires_at) <= at
    )


def _job(session: Session, kind: str, export_id: str) -> Job | None:
    return session.scalar(select(Job).where(Job.key == f"{kind}:{export_id}"))


def _mail_out(job: Job | None) -> MailOut:
    if job is None or (job.state in ("queued", "running") and not job.message):
        return MailOut(state="pending")
    result: dict[str, Any] = job.result or {}
    if job.state == "done":
        if result.get("sent"):
            return MailOut(state="sent", to=result.get("to"))
        return MailOut(state="not-sent", reason=str(result.get("reason") or "unknown"))
    if job.state == "failed":
        return MailOut(state="failed", reason=job.message)
    return MailOut(state="retrying", reason=job.message)


def export_out(session: Session, tenant: Tenant, export: Export, at: datetime) -> ExportOut:
    build = _job(session, BUILD_KIND, export.id)
    state = "expired" if is_expired(export, at) else export.state
    base = f"/api/v1/tenants/{tenant.id}/exports/{export.id}/files"
    return ExportOut(
        id=export.id,
        month=export.month,
        user_ids=export.user_ids,
        state=state,
        error=export.error
        or (build.message if build is not None and export.state == "running" else None),
        recordings=export.recordings,
        bytes_total=export.bytes_total,
        progress_done=build.progress_done if build is not None else 0,
        progress_total=build.progress_total if build is not None else None,
        created_at=as_utc(export.created_at),
        ready_at=as_utc(export.ready_at) if export.ready_at else None,
        expires_at=as_utc(export.expires_at) if export.expires_at else None,
        files=[
            ExportFileOut(
                ordinal=f.ordinal,
                size_bytes=f.size_bytes,
                sha256=f.sha256,
                recordings=f.recordings,
                url=f"{base}/{f.ordinal}",
            )
            for f in export.files
        ]
        if state == "ready"
        else [],
        mail=_mail_out(_job(session, MAIL_KIND, export.id)) if export.state == "ready" else None,
        page_url=f"/exports/{export.id}",
    )
