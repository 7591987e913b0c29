"""Deletion receipts (issue 8 sections 2 and 5; SPEC 4) and the operator's purge button.

A receipt says what one purge run, discard, mail-and-delete or termination
destroyed: counts, when, who, and a JSON-lines list with the SHA-256 of each
file (``retention/deletion.py``). A tenant's admin (and the operator) reads
the tenant's receipts; the operator reads every receipt, terminated tenants'
included (their ``tenant_id`` is gone, the name stays). A download checks the
list's SHA-256 against the row before a byte is sent, and is audited.

``POST /api/v1/operator/purge`` queues the purge job now rather than at the
day's slot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.db.models import DeletionReceipt
from callvault.errors import ApiError, ErrorId, InvalidInput, NotFound
from callvault.jobs import queue
from callvault.portal.api.schemas import Page
from callvault.portal.audit import audit
from callvault.portal.auth import MAX_ID, CurrentPrincipal, DbId, Now, SessionDep
from callvault.portal.roles import AdminTenant, OperatorOnly
from callvault.portal.timefmt import UtcDateTime
from callvault.retention.purge import KIND as PURGE_JOB
from callvault.storage.blobs import BlobNotFound, BlobStore, BlobStoreError

router = APIRouter(prefix="/api/v1", tags=["retention"])

Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=20, description="next_cursor of the last page")]
KindFilter = Annotated[
    str | None, Query(max_length=16, description="purge | termination | discard | mailed")
]
CHUNK = 1 << 16


class ReceiptIntegrityError(ApiError):
    """The stored list does not match its SHA-256: never hand out an altered receipt."""

    error_id = ErrorId.RECEIPT_INTEGRITY


class ReceiptOut(BaseModel):
    id: int
    kind: str
    tenant_id: int | None
    tenant_name: str | None
    actor: str
    started_at: UtcDateTime
    finished_at: UtcDateTime | None
    counts: dict[str, Any]
    sha256: str | None
    download: str | None


class PurgeQueuedOut(BaseModel):
    job_id: int
    kind: str
    state: str


def receipt_out(receipt: DeletionReceipt, base: str) -> ReceiptOut:
    return ReceiptOut(
        id=receipt.id,
        kind=receipt.kind,
        tenant_id=receipt.tenant_id,
        tenant_name=receipt.tenant_name,
        actor=receipt.actor,
        started_at=receipt.started_at,
        finished_at=receipt.finished_at,
        counts=receipt.counts,
        sha256=receipt.sha256,
        download=f"{base}/{receipt.id}/download" if receipt.blob_key else None,
    )


def list_receipts(
    session: Session,
    *,
    tenant_id: int | None,
    kind: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[DeletionReceipt], str | None]:
    """Newest first, keyset-paged on the id; ``tenant_id`` None: every tenant's."""
    query = select(DeletionReceipt)
    if tenant_id is not None:
        query = query.where(DeletionReceipt.tenant_id == tenant_id)
    if kind:
        query = query.where(DeletionReceipt.kind == kind)
    if cursor:
        if not cursor.isdigit() or int(cursor) > MAX_ID + 1:
            raise InvalidInput("the cursor is not valid", error_id=ErrorId.BAD_CURSOR)
        query = query.where(DeletionReceipt.id < int(cursor))
    rows = list(session.scalars(query.order_by(DeletionReceipt.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    return rows[:limit], (str(rows[limit - 1].id) if more else None)


def find_receipt(session: Session, receipt_id: int, tenant_id: int | None) -> DeletionReceipt:
    receipt = session.get(DeletionReceipt, receipt_id)
    if receipt is None or (tenant_id is not None and receipt.tenant_id != tenant_id):
        raise NotFound("no such deletion receipt", error_id=ErrorId.RECEIPT_NOT_FOUND)
    return receipt


def _checked_stream(blobs: BlobStore, receipt: DeletionReceipt) -> Iterator[bytes]:
    """The list, after a first pass proved its SHA-256 (a list may hold a million lines)."""
    if receipt.blob_key is None:
        raise NotFound("this receipt has no file list", error_id=ErrorId.RECEIPT_NOT_FOUND)
    digest = hashlib.sha256()
    try:
        with blobs.open(receipt.blob_key) as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
    except BlobNotFound as exc:
        raise ReceiptIntegrityError("the receipt's file list is missing") from exc
    except BlobStoreError as exc:
        raise ApiError(
            "the receipt's storage does not answer; try again shortly",
            error_id=ErrorId.STORAGE_UNAVAILABLE,
        ) from exc
    if digest.hexdigest() != receipt.sha256:
        raise ReceiptIntegrityError("the receipt's file list does not match its SHA-256")

    def body() -> Iterator[bytes]:
        with blobs.open(receipt.blob_key or "") as stream:
            while chunk := stream.read(CHUNK):
                yield chunk

    return body()


def _download(
    request: Request,
    session: Session,
    principal: Any,
    receipt: DeletionReceipt,
) -> StreamingResponse:
    body = _checked_stream(request.app.state.context.blobs, receipt)
    audit(
        session,
        request,
        principal,
        "deletion-receipt.download",
        receipt.tenant_id,
        target=f"deletion-receipt:{receipt.id}",
        kind=receipt.kind,
        tenant_name=receipt.tenant_name,
    )
    session.commit()
    name = f"deletion-receipt-{receipt.id}-{receipt.kind}.jsonl"
    return StreamingResponse(
        body,
        media_type="application/x-ndjson",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-SHA256": receipt.sha256 or "",
            "Cache-Control": "no-store",
        },
    )


# --- a tenant's receipts (its admin, the operator) ---------------------------------


@router.get("/tenants/{tenant_id}/deletion-receipts", response_model=Page[ReceiptOut])
def tenant_receipts(
    tenant: AdminTenant,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    kind: KindFilter = None,
) -> Page[ReceiptOut]:
    rows, next_cursor = list_receipts(
        session, tenant_id=tenant.id, kind=kind, limit=limit, cursor=cursor
    )
    base = f"/api/v1/tenants/{tenant.id}/deletion-receipts"
    return Page[ReceiptOut](items=[receipt_out(r, base) for r in rows], next_cursor=next_cursor)


@router.get("/tenants/{tenant_id}/deletion-receipts/{receipt_id}", response_model=ReceiptOut)
def tenant_receipt(tenant: AdminTenant, receipt_id: DbId, session: SessionDep) -> ReceiptOut:
    receipt = find_receipt(session, receipt_id, tenant.id)
    return receipt_out(receipt, f"/api/v1/tenants/{tenant.id}/deletion-receipts")


@router.get(
    "/tenants/{tenant_id}/deletion-receipts/{receipt_id}/download",
    response_class=StreamingResponse,
)
def tenant_receipt_download(
    tenant: AdminTenant,
    receipt_id: DbId,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> StreamingResponse:
    return _download(request, session, principal, find_receipt(session, receipt_id, tenant.id))


# --- every receipt, terminated tenants' too (the operator) -------------------------

OPERATOR_BASE = "/api/v1/operator/deletion-receipts"


@router.get("/operator/deletion-receipts", response_model=Page[ReceiptOut])
def operator_receipts(
    _principal: OperatorOnly,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    kind: KindFilter = None,
    tenant_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Page[ReceiptOut]:
    rows, next_cursor = list_receipts(
        session, tenant_id=tenant_id, kind=kind, limit=limit, cursor=cursor
    )
    return Page[ReceiptOut](
        items=[receipt_out(r, OPERATOR_BASE) for r in rows], next_cursor=next_cursor
    )


@router.get("/operator/deletion-receipts/{receipt_id}", response_model=ReceiptOut)
def operator_receipt(receipt_id: DbId, _principal: OperatorOnly, session: SessionDep) -> ReceiptOut:
    return receipt_out(find_receipt(session, receipt_id, None), OPERATOR_BASE)


@router.get("/operator/deletion-receipts/{receipt_id}/download", response_class=StreamingResponse)
def operator_receipt_download(
    receipt_id: DbId, principal: OperatorOnly, session: SessionDep, request: Request
) -> StreamingResponse:
    return _download(request, session, principal, find_receipt(session, receipt_id, None))


@router.post("/operator/purge", status_code=202, response_model=PurgeQueuedOut)
def run_purge_now(
    principal: OperatorOnly, session: SessionDep, request: Request, at: Now
) -> PurgeQueuedOut:
    """Queues the retention purge (expired audio, minute quotas) to run at once."""
    job = queue.enqueue(
        session, PURGE_JOB, {"actor": principal.actor()}, at=at, created_by=principal.actor()
    )
    audit(session, request, principal, "retention.purge.request", None, target=f"job:{job.id}")
    session.commit()
    request.app.state.context.on_job_enqueued()
    return PurgeQueuedOut(job_id=job.id, kind=job.kind, state=job.state)
