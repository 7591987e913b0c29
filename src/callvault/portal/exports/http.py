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
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from callvault.db.models import Export, ExportFile, Tenant
from callvault.errors import ApiError, ErrorId, NotFound
from callvault.exports.request import request_export
from callvault.portal.api.audio import parse_range
from callvault.portal.audit import audit
from callvault.portal.auth import CurrentPrincipal, Now, Principal, SessionDep
from callvault.portal.exports.schemas import ExportIn, ExportOut
from callvault.portal.exports.services import export_of, export_out, exports_of, is_expired
from callvault.portal.roles import OwnAdminTenant
from callvault.storage.blobs import BlobNotFound, BlobStore, BlobStoreError

router = APIRouter(prefix="/api/v1", tags=["exports"])

ExportId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]
Ordinal = Annotated[int, Path(ge=1, le=10_000)]
CHUNK = 1 << 20


@router.post("/tenants/{tenant_id}/exports", response_model=ExportOut, status_code=202)
def create_export(
    body: ExportIn,
    tenant: OwnAdminTenant,
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
def list_exports(tenant: OwnAdminTenant, session: SessionDep, at: Now) -> list[ExportOut]:
    return exports_of(session, tenant, at)


@router.get("/tenants/{tenant_id}/exports/{export_id}", response_model=ExportOut)
def get_export(
    export_id: ExportId, tenant: OwnAdminTenant, session: SessionDep, at: Now
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
    tenant: OwnAdminTenant,
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
        raise ApiError("this export has expired", error_id=ErrorId.EXPORT_EXPIRED)
    if export.state != "ready":
        raise NotFound("the export is not ready", error_id=ErrorId.EXPORT_NOT_READY)
    file = next((f for f in export.files if f.ordinal == ordinal), None)
    if file is None:
        raise NotFound("no such file", error_id=ErrorId.EXPORT_FILE_NOT_FOUND)
    blobs: BlobStore = request.app.state.context.blobs
    try:
        size = blobs.size(file.blob_key)
    except BlobNotFound as exc:
        raise ApiError("the file is gone", error_id=ErrorId.EXPORT_EXPIRED) from exc
    except BlobStoreError as exc:
        raise ApiError(
            "the export's storage does not answer; try again shortly",
            error_id=ErrorId.STORAGE_UNAVAILABLE,
        ) from exc
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
