"""A tenant's own announcement prompts: list, store or replace, delete (SPEC 3).

An upload is converted first (``upload.convert_upload``), then stored as a blob
under a key holding its SHA-256 (``announcements/<tenant>/<kind>-<sha>.wav``),
so the B2BUA's cache (``library.PromptLibrary``) never plays an old version.
The order keeps a crash harmless: the new blob is written, then the row and its
audit row are committed together, and only then is the replaced blob deleted
(a crash in between leaves an unused blob, never a row without audio).
Deleting a prompt brings the shipped one back. Each change is one audit row
(``announcement.upload`` / ``announcement.delete``); the callers reload the
SIP side's directory, whose ``TenantPolicy.prompts`` names the blob keys.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callvault.announcements.library import (
    KINDS,
    Kind,
    duration_ms,
    shipped_language,
    shipped_wav,
    tenant_prefix,
    wav_pcm,
)
from callvault.announcements.upload import ConvertedPrompt
from callvault.db.models import AnnouncementPrompt, Tenant
from callvault.errors import Conflict, ErrorId, NotFound
from callvault.portal.audit import record
from callvault.storage.blobs import BlobNotFound, BlobStore

MAX_NAME = 200  # AnnouncementPrompt.original_name


@dataclass(frozen=True)
class PromptInfo:
    """What plays for one kind: the tenant's upload, or the shipped prompt in its language."""

    kind: Kind
    custom: bool
    duration_ms: int
    language: str | None  # the shipped prompt's language; None for an upload
    original_name: str | None = None
    sha256: str | None = None
    uploaded_at: datetime | None = None
    uploaded_by: str | None = None


def blob_key(tenant_id: int, kind: Kind, sha256: str) -> str:
    return f"{tenant_prefix(tenant_id)}{kind}-{sha256[:32]}.wav"


def _row(session: Session, tenant_id: int, kind: Kind) -> AnnouncementPrompt | None:
    return session.scalar(
        select(AnnouncementPrompt).where(
            AnnouncementPrompt.tenant_id == tenant_id, AnnouncementPrompt.kind == kind
        )
    )


def _shipped_info(tenant: Tenant, kind: Kind) -> PromptInfo:
    language = shipped_language(tenant.language)
    pcm = wav_pcm(shipped_wav(language, kind))
    return PromptInfo(kind=kind, custom=False, duration_ms=duration_ms(pcm), language=language)


def prompts_of(session: Session, tenant: Tenant) -> list[PromptInfo]:
    """Both kinds, start first: what the tenant's calls play now."""
    rows = {
        row.kind: row
        for row in session.scalars(
            select(AnnouncementPrompt).where(AnnouncementPrompt.tenant_id == tenant.id)
        )
    }
    out: list[PromptInfo] = []
    for kind in KINDS:
        row = rows.get(kind)
        if row is None:
            out.append(_shipped_info(tenant, kind))
        else:
            out.append(
                PromptInfo(
                    kind=kind,
                    custom=True,
                    duration_ms=row.duration_ms,
                    language=None,
                    original_name=row.original_name,
                    sha256=row.sha256,
                    uploaded_at=row.uploaded_at,
                    uploaded_by=row.uploaded_by,
                )
            )
    return out


def prompt_wav(session: Session, blobs: BlobStore, tenant: Tenant, kind: Kind) -> bytes:
    """The WAV the other party hears for ``kind`` (the upload, else the shipped one)."""
    row = _row(session, tenant.id, kind)
    if row is not None:
        with contextlib.suppress(BlobNotFound):
            return blobs.read(row.blob_key)
    return shipped_wav(shipped_language(tenant.language), kind)


def store_prompt(
    session: Session,
    blobs: BlobStore,
    request: Request | None,
    actor: str,
    tenant: Tenant,
    kind: Kind,
    converted: ConvertedPrompt,
    original_name: str,
    at: datetime,
) -> PromptInfo:
    """Stores ``converted`` as the tenant's ``kind`` prompt, replacing any; audited; commits."""
    key = blob_key(tenant.id, kind, converted.sha256)
    name = original_name.strip()[:MAX_NAME] or None
    blobs.put(key, converted.wav)
    row = _row(session, tenant.id, kind)
    replaced = row.blob_key if row is not None else None
    if row is None:
        row = AnnouncementPrompt(tenant_id=tenant.id, kind=kind)
        session.add(row)
    row.blob_key, row.duration_ms, row.sha256 = key, converted.duration_ms, converted.sha256
    row.original_name, row.uploaded_at, row.uploaded_by = name, at, actor[:200]
    record(
        session,
        request,
        actor,
        "announcement.upload",
        tenant.id,
        target=f"announcement:{kind}",
        name=name,
        duration_ms=converted.duration_ms,
        sha256=converted.sha256,
        replaced=replaced is not None,
    )
    try:
        session.commit()
    except Exception as exc:
        session.rollback()
        if key != replaced:
            blobs.delete(key)
        if isinstance(exc, IntegrityError):  # another upload of this kind won the race
            raise Conflict(f"another {kind} prompt was stored at the same time; try again") from exc
        raise
    if replaced is not None and replaced != key:
        blobs.delete(replaced)
    return prompts_of(session, tenant)[KINDS.index(kind)]


def delete_prompt(
    session: Session,
    blobs: BlobStore,
    request: Request | None,
    actor: str,
    tenant: Tenant,
    kind: Kind,
) -> None:
    """The tenant's ``kind`` prompt goes; the shipped one plays again. Audited; commits."""
    row = _row(session, tenant.id, kind)
    if row is None:
        raise NotFound(
            f"the tenant has no own {kind} prompt (the shipped one plays)",
            error_id=ErrorId.PROMPT_NOT_FOUND,
        )
    key = row.blob_key
    session.delete(row)
    record(
        session,
        request,
        actor,
        "announcement.delete",
        tenant.id,
        target=f"announcement:{kind}",
        name=row.original_name,
        sha256=row.sha256,
    )
    session.commit()
    blobs.delete(key)
