"""Announcements API (SPEC 3, B2BUA mode): what the other party hears, and a tenant's own prompts.

- ``GET /api/v1/tenants/{t}/announcements``: both kinds (start, stop), each
  the tenant's upload or the prompt shipped in the tenant's language, with its
  length; the admin or the operator (settings access).
- ``PUT .../announcements/{kind}``: upload a WAV or MP3 as the body itself
  (``Content-Type: audio/wav`` or ``audio/mpeg``; the portal, like
  ``users.csv``, takes no multipart bodies), the file's name in ``?filename=``.
  It is converted to 8 kHz mono (``announcements.upload``: 2 MiB, 0.3 to 30 s,
  not silent) and replaces any earlier one. The tenant's own admin only, once
  the legal notice is accepted, like every recording setting.
- ``DELETE .../announcements/{kind}``: the shipped prompt plays again.
- ``GET .../announcements/{kind}/audio``: the WAV, to listen to it.

A foreign tenant is 404 before any 403 (``portal/roles.py``); each change is
audited and reloads the SIP side's directory, whose ``TenantPolicy.prompts``
the B2BUA reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.announcements import service
from callvault.announcements.library import Kind
from callvault.announcements.upload import MAX_UPLOAD_BYTES, PromptRefused, convert_upload
from callvault.db.models import LegalAcceptance, Tenant
from callvault.errors import ApiError, Conflict, ErrorId
from callvault.portal.announcements.schemas import PromptOut
from callvault.portal.auth import CurrentPrincipal, Now, SessionDep
from callvault.portal.roles import AdminTenant, OwnAdminTenant
from callvault.portal.timefmt import as_utc

router = APIRouter(prefix="/api/v1/tenants/{tenant_id}", tags=["announcements"])

# what browsers and tools send for a WAV or an MP3 (the bytes decide in the end)
AUDIO_TYPES = frozenset(
    {
        "audio/wav",
        "audio/x-wav",
        "audio/wave",
        "audio/vnd.wave",
        "audio/mpeg",
        "audio/mp3",
        "application/octet-stream",
    }
)


class UnsupportedType(ApiError):
    error_id = ErrorId.UNSUPPORTED_MEDIA_TYPE


async def audio_body(request: Request) -> bytes:
    """The uploaded file as the body, read up to ``MAX_UPLOAD_BYTES`` and no further."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type not in AUDIO_TYPES:
        raise UnsupportedType("send the WAV or MP3 file as the body with Content-Type: audio/wav")
    too_large = PromptRefused(
        f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB",
        error_id=ErrorId.PROMPT_TOO_LARGE,
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    stream: AsyncIterator[bytes] = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


AudioBody = Annotated[bytes, Depends(audio_body)]
FileName = Annotated[str, Query(max_length=200, description="the uploaded file's name")]


def _out(tenant: Tenant, info: service.PromptInfo) -> PromptOut:
    return PromptOut(
        kind=info.kind,
        custom=info.custom,
        duration_ms=info.duration_ms,
        language=info.language,
        original_name=info.original_name,
        sha256=info.sha256,
        uploaded_at=as_utc(info.uploaded_at) if info.uploaded_at else None,
        uploaded_by=info.uploaded_by,
        audio_url=f"/api/v1/tenants/{tenant.id}/announcements/{info.kind}/audio",
    )


def _require_accepted(session: Session, tenant: Tenant) -> None:
    # as every recording setting: nothing before the legal notice (SPEC 8)
    if (
        session.scalar(
            select(LegalAcceptance.id).where(LegalAcceptance.tenant_id == tenant.id).limit(1)
        )
        is None
    ):
        raise Conflict(
            "accept the legal notice before changing recording settings",
            error_id=ErrorId.LEGAL_NOTICE_REQUIRED,
        )


@router.get("/announcements", response_model=list[PromptOut])
def list_announcements(tenant: AdminTenant, session: SessionDep) -> list[PromptOut]:
    return [_out(tenant, info) for info in service.prompts_of(session, tenant)]


@router.put("/announcements/{kind}", response_model=PromptOut)
def upload_announcement(
    kind: Kind,
    body: AudioBody,
    tenant: OwnAdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
    at: Now,
    filename: FileName = "",
) -> PromptOut:
    _require_accepted(session, tenant)
    converted = convert_upload(body, filename)
    context = request.app.state.context
    info = service.store_prompt(
        session, context.blobs, request, principal.actor(), tenant, kind, converted, filename, at
    )
    context.on_directory_change()
    return _out(tenant, info)


@router.delete("/announcements/{kind}", status_code=204)
def delete_announcement(
    kind: Kind,
    tenant: OwnAdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> Response:
    _require_accepted(session, tenant)
    context = request.app.state.context
    service.delete_prompt(session, context.blobs, request, principal.actor(), tenant, kind)
    context.on_directory_change()
    return Response(status_code=204)


@router.get(
    "/announcements/{kind}/audio",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}}},
)
def announcement_audio(
    kind: Kind, tenant: AdminTenant, session: SessionDep, request: Request
) -> Response:
    """The WAV the other party hears (the upload, else the shipped one): to listen to it."""
    wav = service.prompt_wav(session, request.app.state.context.blobs, tenant, kind)
    return Response(
        wav,
        media_type="audio/wav",
        headers={
            "Content-Disposition": f'inline; filename="{kind}.wav"',
            "Cache-Control": "no-store",
        },
    )
