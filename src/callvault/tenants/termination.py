"""Terminating a tenant (issue 8 section 5, HIP; SPEC sections 4 and 8).

An operator action in two steps. ``request_termination`` tells what will be
destroyed and hands out a one-time confirmation token, valid for
``CONFIRM_VALID``; ``terminate`` takes the token and the tenant's exact name
and destroys every recording (its blob), call, user and personal datum of the
tenant: the tenant row goes and the database's cascades take the rest. A
receipt is kept (``DeletionReceipt``, kind ``termination``; the tenant's name
stays on it, its id goes NULL): counts, time, operator, and the SHA-256 of
each destroyed file in its JSON-lines blob. Both steps are refused while any
legal hold of the tenant is active.

Order, for crash safety (as ``retention/deletion.py``): the receipt and its
file list are stored and committed with the rows' deletion, the blobs are
deleted after; a crash in between leaves an unfinished receipt whose listed
blobs the purge's sweep deletes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from callvault.db.models import (
    AuditEvent,
    Call,
    DeletionReceipt,
    ExportFile,
    Recording,
    Tenant,
    TerminationRequest,
    User,
)
from callvault.errors import Conflict, ErrorId, InvalidInput, NotFound
from callvault.retention.deletion import finish_listed, open_receipt, write_receipt
from callvault.retention.holds import tenant_has_active_hold
from callvault.storage.blobs import BlobStore

CONFIRM_VALID = timedelta(minutes=10)
KIND = "termination"


@dataclass(frozen=True)
class TerminationSummary:
    """What terminating the tenant destroys."""

    tenant_id: int
    tenant_name: str
    users: int
    calls: int
    recordings: int
    audio_files: int  # recordings whose audio still exists
    audio_bytes: int
    export_files: int
    export_bytes: int

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k not in ("tenant_id", "tenant_name")}


def summarise(session: Session, tenant: Tenant) -> TerminationSummary:
    def count(model: Any) -> int:
        return int(
            session.scalar(
                select(func.count()).select_from(model).where(model.tenant_id == tenant.id)
            )
            or 0
        )

    files, size = session.execute(
        select(func.count(), func.coalesce(func.sum(Recording.size_bytes), 0)).where(
            Recording.tenant_id == tenant.id, Recording.audio_deleted_at.is_(None)
        )
    ).one()
    export_files, export_bytes = session.execute(
        select(func.count(), func.coalesce(func.sum(ExportFile.size_bytes), 0)).where(
            ExportFile.tenant_id == tenant.id
        )
    ).one()
    return TerminationSummary(
        tenant_id=tenant.id,
        tenant_name=tenant.name,
        users=count(User),
        calls=count(Call),
        recordings=count(Recording),
        audio_files=int(files),
        audio_bytes=int(size),
        export_files=int(export_files),
        export_bytes=int(export_bytes),
    )


def _refuse_if_held(session: Session, tenant: Tenant) -> None:
    if tenant_has_active_hold(session, tenant.id):
        raise Conflict(
            "a legal hold of this tenant is active; lift it before terminating",
            error_id=ErrorId.LEGAL_HOLD_ACTIVE,
        )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def request_termination(
    session: Session, tenant: Tenant, *, actor: str, at: datetime, remote_addr: str | None = None
) -> tuple[str, datetime, TerminationSummary]:
    """Step one: the confirmation token (shown once; an earlier one of this tenant is
    void), until when it is valid, and what would be destroyed. Audited; commits."""
    _refuse_if_held(session, tenant)
    summary = summarise(session, tenant)
    session.execute(delete(TerminationRequest).where(TerminationRequest.tenant_id == tenant.id))
    token = "term_" + secrets.token_urlsafe(24)
    expires_at = at + CONFIRM_VALID
    session.add(
        TerminationRequest(
            tenant_id=tenant.id,
            token_hash=_hash(token),
            requested_by=actor[:200],
            requested_at=at,
            expires_at=expires_at,
        )
    )
    session.add(  # the operator's audit (no tenant): it must outlive the tenant
        AuditEvent(
            tenant_id=None,
            at=at,
            actor=actor[:200],
            action="tenant.termination.request",
            target=f"tenant:{tenant.id}",
            remote_addr=remote_addr,
            details={"tenant_name": tenant.name, **summary.counts()},
        )
    )
    session.commit()
    return token, expires_at, summary


def check_confirmation(
    session: Session, tenant: Tenant, *, token: str, name: str, at: datetime
) -> None:
    """Step two's checks, each with its own error; nothing changes."""
    request = session.scalar(
        select(TerminationRequest).where(TerminationRequest.token_hash == _hash(token))
    )
    if request is None or request.tenant_id != tenant.id:
        raise InvalidInput(
            "this confirmation token is not this tenant's; request the termination again",
            error_id=ErrorId.TERMINATION_TOKEN_INVALID,
        )
    if _utc(request.expires_at) <= at:
        raise InvalidInput(
            "this confirmation token expired; request the termination again",
            error_id=ErrorId.TERMINATION_TOKEN_EXPIRED,
        )
    if not hmac.compare_digest(name.encode(), tenant.name.encode()):
        raise InvalidInput(
            "the name typed is not the tenant's name", error_id=ErrorId.TERMINATION_NAME_MISMATCH
        )
    _refuse_if_held(session, tenant)


def _destroyed_files(session: Session, tenant_id: int) -> Iterator[dict[str, object]]:
    recordings = session.execute(
        select(
            Recording.id,
            Recording.call_id,
            Recording.blob_key,
            Recording.sha256,
            Recording.size_bytes,
        )
        .where(Recording.tenant_id == tenant_id, Recording.audio_deleted_at.is_(None))
        .order_by(Recording.id)
        .execution_options(yield_per=1000)
    )
    for row in recordings:
        yield {
            "kind": "recording",
            "recording_id": row.id,
            "call_id": row.call_id,
            "blob_key": row.blob_key,
            "sha256": row.sha256,
            "size_bytes": row.size_bytes,
        }
    exports = session.execute(
        select(ExportFile.export_id, ExportFile.blob_key, ExportFile.sha256, ExportFile.size_bytes)
        .where(ExportFile.tenant_id == tenant_id)
        .order_by(ExportFile.id)
    )
    for part in exports:
        yield {
            "kind": "export",
            "export_id": part.export_id,
            "blob_key": part.blob_key,
            "sha256": part.sha256,
            "size_bytes": part.size_bytes,
        }


def terminate(
    session: Session,
    blobs: BlobStore,
    tenant_id: int,
    *,
    token: str,
    name: str,
    actor: str,
    at: datetime,
    remote_addr: str | None = None,
) -> DeletionReceipt:
    """Step two: checks the token and the name, then destroys the tenant; its receipt.

    Commits. Raises ``NotFound``, ``InvalidInput`` (token, name) or ``Conflict``
    (legal hold) before anything is touched.
    """
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", error_id=ErrorId.TENANT_NOT_FOUND)
    check_confirmation(session, tenant, token=token, name=name, at=at)
    summary = summarise(session, tenant)
    receipt = open_receipt(session, kind=KIND, actor=actor, at=at, tenant=tenant)
    files = write_receipt(blobs, receipt, _destroyed_files(session, tenant.id))
    receipt.counts = {**summary.counts(), "files": files}
    session.add(
        AuditEvent(
            tenant_id=None,
            at=at,
            actor=actor[:200],
            action="tenant.terminate",
            target=f"tenant:{tenant.id}",
            remote_addr=remote_addr,
            details={
                "tenant_name": tenant.name,
                "receipt_id": receipt.id,
                "receipt_sha256": receipt.sha256,
                **receipt.counts,
            },
        )
    )
    session.flush()
    session.expunge(tenant)
    # the database's ON DELETE CASCADE takes calls, recordings, users, holds, audit rows...
    session.execute(delete(Tenant).where(Tenant.id == tenant_id))
    session.commit()
    finish_listed(session, blobs, receipt, at)  # the blobs, now that no row names them
    session.refresh(receipt)  # its tenant_id went NULL with the tenant
    return receipt
