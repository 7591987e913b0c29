"""Bulk download (SPEC 5, Callvoip): ask for a month as ZIP files, follow it, download.

For the tenant's own admins only (a foreign tenant or export is 404, other
roles 403). Asking is audited (``export.request``) and wakes the job runner;
every download is audited (``export.download`` with the file's ordinal) and
streamed from the blob store, with one byte Range when asked. An export past
its ``expires_at`` answers 410 ``export-expired``, also before
``exports.expire`` deleted its files.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.db.models import Export, ExportFile, Job, Tenant
from callvault.errors import ApiError, NotFound
from callvault.exports.request import BUILD_KIND, MAIL_KIND, request_export
from callvault.portal.api.audio import parse_range
from callvault.portal.api.schemas import Strict
from callvault.portal.audit import audit
from callvault.portal.auth import (
    MAX_ID,
    CurrentPrincipal,
    Now,
    Principal,
    SessionDep,
    TenantScope,
    as_utc,
    require_role,
)
from callvault.storage.blobs import BlobNotFound, BlobStore

router = APIRouter(prefix="/api/v1", tags=["exports"])

ExportId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]
Ordinal = Annotated[int, Path(ge=1, le=10_000)]
CHUNK = 1 << 20
MailState = Literal["pending", "sent", "retrying", "failed", "not-sent"]


class ExportIn(Strict):
    month: str = Field(max_length=20, description="YYYY-MM in the organisation's time zone")
    user_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None, max_length=1000, description="only these users; leave out for everyone"
    )


class ExportFileOut(BaseModel):
    ordinal: int
    size_bytes: int
    sha256: str
    recordings: int
    url: str


class MailOut(BaseModel):
    state: MailState
    to: str | None = None
    reason: str | None = None


class ExportOut(BaseModel):
    id: str
    month: str
    user_ids: list[int] | None
    state: Literal["queued", "running", "ready", "failed", "expired"]
    error: str | None
    recordings: int
    bytes_total: int
    progress_done: int
    progress_total: int | None
    created_at: datetime
    ready_at: datetime | None
    expires_at: datetime | None
    files: list[ExportFileOut]
    mail: MailOut | None = Field(description="the link's e-mail, once the export is ready")
    page_url: str


def tenant_admin(tenant: TenantScope, principal: CurrentPrincipal) -> Tenant:
    """The path's tenant, for its own admins: 404 when foreign, 403 for other roles."""
    require_role(principal, "admin")
    return tenant


ExportTenant = Annotated[Tenant, Depends(tenant_admin)]


def export_of(session: Session, tenant: Tenant, export_id: str) -> Export:
    export = session.scalar(
        select(Export).where(Export.id == export_id, Export.tenant_id == tenant.id)
    )
    if export is None:
        raise NotFound("no such export", error_id="export-not-found")
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


@router.post("/tenants/{tenant_id}/exports", response_model=ExportOut, status_code=202)
def create_export(
    body: ExportIn,
    tenant: ExportTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
    at: Now,
) -> ExportOut:
    export = request_export(
        session,
        tenant,
        month=body.month,
        user_ids=body.user_ids,
        requested_by=principal.user_id,
        actor=principal.actor(),
        at=at,
    )
    audit(
        session,
        request,
        principal,
        "export.request",
        tenant.id,
        target=f"export:{export.id}",
        month=export.month,
        user_ids=export.user_ids,
    )
    session.commit()
    request.app.state.context.on_job_enqueued()
    return export_out(session, tenant, export, at)


@router.get("/tenants/{tenant_id}/exports", response_model=list[ExportOut])
def list_exports(tenant: ExportTenant, session: SessionDep, at: Now) -> list[ExportOut]:
    rows = session.scalars(
        select(Export)
        .where(Export.tenant_id == tenant.id)
        .order_by(Export.created_at.desc(), Export.id)
        .limit(100)
    )
    return [export_out(session, tenant, e, at) for e in rows]


@router.get("/tenants/{tenant_id}/exports/{export_id}", response_model=ExportOut)
def get_export(
    export_id: ExportId, tenant: ExportTenant, session: SessionDep, at: Now
) -> ExportOut:
    return export_out(session, tenant, export_of(session, tenant, export_id), at)


def _chunks(blobs: BlobStore, key: str, start: int, end: int) -> Iterator[bytes]:
    with blobs.open(key) as source:
        source.seek(start)
        left = end - start
        while left > 0 and (chunk := source.read(min(CHUNK, left))):
            left -= len(chunk)
            yield chunk


def download_name(tenant: Tenant, export: Export, file: ExportFile) -> str:
    return f"callvault-{tenant.id}-{export.month}-part{file.ordinal}of{len(export.files)}.zip"


@router.get(
    "/tenants/{tenant_id}/exports/{export_id}/files/{ordinal}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}, 206: {}, 410: {}},
)
def download_export_file(
    export_id: ExportId,
    ordinal: Ordinal,
    tenant: ExportTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
    at: Now,
) -> StreamingResponse:
    export = export_of(session, tenant, export_id)
    return stream_file(session, request, principal, tenant, export, ordinal, at)


def stream_file(
    session: Session,
    request: Request,
    principal: Principal,
    tenant: Tenant,
    export: Export,
    ordinal: int,
    at: datetime,
) -> StreamingResponse:
    if is_expired(export, at):
        raise ApiError("this export has expired", error_id="export-expired", status=410)
    if export.state != "ready":
        raise NotFound("the export is not ready", error_id="export-not-ready")
    file = next((f for f in export.files if f.ordinal == ordinal), None)
    if file is None:
        raise NotFound("no such file", error_id="export-file-not-found")
    blobs: BlobStore = request.app.state.context.blobs
    try:
        size = blobs.size(file.blob_key)
    except BlobNotFound as exc:
        raise ApiError("the file is gone", error_id="export-expired", status=410) from exc
    range_header = request.headers.get("range")
    start, end, status = 0, size, 200
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{file.sha256}"',
        "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="{download_name(tenant, export, file)}"',
    }
    if range_header:
        start, end = parse_range(range_header, size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    audit(
        session,
        request,
        principal,
        "export.download",
        tenant.id,
        target=f"export:{export.id}",
        ordinal=file.ordinal,
        range=range_header[:100] if range_header else None,
    )
    session.commit()
    return StreamingResponse(
        _chunks(blobs, file.blob_key, start, end),
        status_code=status,
        media_type="application/zip",
        headers=headers,
    )
