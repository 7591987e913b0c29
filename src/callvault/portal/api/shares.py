"""Share links: one recording for someone without an account (SPEC section 5).

A link expires (1 hour to 30 days), can be revoked, is always stream-only
(the audio needs a Range request and is never offered as an attachment), and
every use is written to the tenant's audit log with the remote address. Only
the SHA-256 of the link's token is stored; the token is shown once. An
unknown, expired or revoked link, or one of a suspended tenant, all get the
same 404 ``share-not-found``. A live link to a recording whose audio expired
(or was deleted) answers 410 ``audio-expired`` (``retention/access.py``).
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.db.models import Call, CallParty, Recording, ShareLink, Tenant
from callvault.errors import ErrorId, NotFound
from callvault.portal.api.audio import AUDIO_RESPONSES, read_audio, stream_only_refusal
from callvault.portal.api.schemas import Strict
from callvault.portal.audit import audit, record
from callvault.portal.auth import CurrentPrincipal, DbId, Now, SessionDep, as_utc, hash_token
from callvault.portal.reports.service import recording_for
from callvault.portal.roles import TenantMember
from callvault.portal.timefmt import UtcDateTime, utc_text
from callvault.retention.access import require_audio

router = APIRouter(prefix="/api/v1", tags=["shares"])

ShareId = DbId
ShareToken = Annotated[str, Path(max_length=200)]
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


class ShareIn(Strict):
    expires_in_hours: int = Field(ge=1, le=720)


class ShareCreatedOut(BaseModel):
    id: int
    url: str = Field(description="the portal page that plays the recording")
    token: str = Field(description="shown once; only its hash is stored")
    expires_at: UtcDateTime


class ShareOut(BaseModel):
    id: int
    created_by: int | None
    created_at: UtcDateTime
    expires_at: UtcDateTime
    revoked_at: UtcDateTime | None
    uses: int
    active: bool


class SharedRecordingOut(BaseModel):
    started_at: UtcDateTime
    duration_ms: int
    parties: list[str] = Field(description="the parties' names; no numbers or addresses")
    expires_at: UtcDateTime
    audio_url: str


def _share_out(share: ShareLink, at: datetime) -> ShareOut:
    expires_at = as_utc(share.expires_at)
    return ShareOut(
        id=share.id,
        created_by=share.created_by,
        created_at=as_utc(share.created_at),
        expires_at=expires_at,
        revoked_at=as_utc(share.revoked_at) if share.revoked_at else None,
        uses=share.uses,
        active=share.revoked_at is None and expires_at > at,
    )


@router.post("/recordings/{recording_id}/shares", response_model=ShareCreatedOut, status_code=201)
def create_share(
    recording_id: str,
    body: ShareIn,
    principal: TenantMember,
    session: SessionDep,
    request: Request,
    at: Now,
) -> ShareCreatedOut:
    recording = recording_for(session, principal, recording_id)
    require_audio(session, recording, at)  # a link to audio that is gone gives nothing
    token = secrets.token_urlsafe(32)
    share = ShareLink(
        tenant_id=recording.tenant_id,
        recording_id=recording.id,
        token_hash=hash_token(token),
        created_by=principal.user_id,
        created_at=at,
        expires_at=at + timedelta(hours=body.expires_in_hours),
        stream_only=True,
        uses=0,
    )
    session.add(share)
    session.flush()
    audit(
        session,
        request,
        principal,
        "share.create",
        recording.tenant_id,
        target=f"recording:{recording.id}",
        share_id=share.id,
        expires_at=utc_text(share.expires_at),
    )
    session.commit()
    return ShareCreatedOut(id=share.id, url=f"/s/{token}", token=token, expires_at=share.expires_at)


@router.get("/recordings/{recording_id}/shares", response_model=list[ShareOut])
def list_shares(
    recording_id: str, principal: CurrentPrincipal, session: SessionDep, at: Now
) -> list[ShareOut]:
    recording = recording_for(session, principal, recording_id)
    rows = session.scalars(
        select(ShareLink)
        .where(ShareLink.tenant_id == recording.tenant_id, ShareLink.recording_id == recording.id)
        .order_by(ShareLink.id.desc())
    )
    return [_share_out(s, at) for s in rows]


@router.delete("/recordings/{recording_id}/shares/{share_id}", status_code=204)
def revoke_share(
    recording_id: str,
    share_id: ShareId,
    principal: TenantMember,
    session: SessionDep,
    request: Request,
    at: Now,
) -> Response:
    recording = recording_for(session, principal, recording_id)
    share = session.scalar(
        select(ShareLink).where(
            ShareLink.tenant_id == recording.tenant_id,
            ShareLink.recording_id == recording.id,
            ShareLink.id == share_id,
        )
    )
    if share is None:
        raise NotFound("no such share link", error_id=ErrorId.SHARE_NOT_FOUND)
    if share.revoked_at is None:
        share.revoked_at = at
        audit(
            session,
            request,
            principal,
            "share.revoke",
            recording.tenant_id,
            target=f"recording:{recording.id}",
            share_id=share.id,
        )
        session.commit()
    return Response(status_code=204)


def _live_share(session: Session, token: str, at: datetime) -> tuple[ShareLink, Recording]:
    gone = NotFound("this link does not exist or has expired", error_id=ErrorId.SHARE_NOT_FOUND)
    if not _TOKEN.match(token):
        raise gone
    share = session.scalar(select(ShareLink).where(ShareLink.token_hash == hash_token(token)))
    if share is None or share.revoked_at is not None or as_utc(share.expires_at) <= at:
        raise gone
    tenant = session.get(Tenant, share.tenant_id)
    recording = session.scalar(
        select(Recording).where(
            Recording.tenant_id == share.tenant_id, Recording.id == share.recording_id
        )
    )
    if tenant is None or tenant.suspended or recording is None:
        raise gone
    return share, recording


def live_share_recording(
    session: Session, token: str, at: datetime
) -> tuple[ShareLink, Recording] | None:
    """The link's share and recording while the link works, else None (for its page)."""
    try:
        return _live_share(session, token, at)
    except NotFound:
        return None


@router.get("/shared/{token}", response_model=SharedRecordingOut)
def shared_recording(
    token: ShareToken, session: SessionDep, request: Request, at: Now
) -> SharedRecordingOut:
    """Public: what the link's page shows. Counts as a use."""
    share, recording = _live_share(session, token, at)
    require_audio(session, recording, at)
    call = session.scalar(
        select(Call).where(Call.tenant_id == share.tenant_id, Call.id == recording.call_id)
    )
    names = session.scalars(
        select(CallParty.name)
        .where(CallParty.tenant_id == share.tenant_id, CallParty.call_id == recording.call_id)
        .order_by(CallParty.id)
    )
    parties = list(dict.fromkeys(n for n in names if n))
    share.uses += 1
    record(
        session,
        request,
        f"share:{share.id}",
        "share.view",
        share.tenant_id,
        target=f"recording:{recording.id}",
    )
    session.commit()
    return SharedRecordingOut(
        started_at=as_utc(call.started_at if call else recording.started_at),
        duration_ms=recording.duration_ms,
        parties=parties,
        expires_at=as_utc(share.expires_at),
        audio_url=f"/api/v1/shared/{token}/audio",
    )


@router.get("/shared/{token}/audio", response_class=Response, responses=AUDIO_RESPONSES)
def shared_audio(token: ShareToken, session: SessionDep, request: Request, at: Now) -> Response:
    """Public, stream-only: the player's Range requests; each one is audited."""
    share, recording = _live_share(session, token, at)
    require_audio(session, recording, at)
    range_header = request.headers.get("range")
    if not range_header:
        raise stream_only_refusal()
    audio = read_audio(request.app.state.context.blobs, recording, range_header)
    if audio.start == 0:
        share.uses += 1  # a new play; later ranges are seeks within it
    record(
        session,
        request,
        f"share:{share.id}",
        "share.play" if audio.start == 0 else "share.seek",
        share.tenant_id,
        target=f"recording:{recording.id}",
        range=range_header[:100],
    )
    session.commit()
    audio.headers["Content-Disposition"] = "inline"
    audio.headers["Cache-Control"] = "no-store"
    return audio.response()
