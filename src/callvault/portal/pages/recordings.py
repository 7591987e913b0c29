"""One recording: player, waveform, timeline, parties, labels, comments, shares.

Visibility is the API's (``reports.service.recording_for``): a colleague's or another
tenant's recording is a 404 page, exactly as the API answers. The public
share page shows no metadata of its own; its script asks the public share
API, which decides whether the link still works.

Opening the page is audited (``recording.view``), and so is the play link
the page hands its player (``recording.play``, see ``api.audio``).

Once the audio expired (or was deleted) the page still shows the call, with
the date the audio went instead of the player and the download button; a
share link's page says the same. Active legal holds on the recording show.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from callvault.db.models import RecordingComment, RecordingLabel, ShareLink, Tenant, User
from callvault.errors import ErrorId, NotFound
from callvault.playback.answers import is_asked
from callvault.portal.api.audio import issue_play_link
from callvault.portal.api.shares import live_share_recording
from callvault.portal.audit import audit
from callvault.portal.auth import Now, SessionDep, as_utc
from callvault.portal.pages.render import PageRoute, render
from callvault.portal.pages.viewer import ViewerDep, signed_in
from callvault.portal.reports.service import recording_for, recording_out
from callvault.portal.timefmt import local_times
from callvault.retention.access import audio_gone_at
from callvault.retention.holds import holds_on

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def file_offset_ms(segments: list[dict[str, int]], call_ms: int) -> int | None:
    """Where a moment of the call lies in the file; None when it fell in a cut pause."""
    for s in segments:
        if s["call_start_ms"] <= call_ms < s["call_end_ms"]:
            return s["file_start_ms"] + (call_ms - s["call_start_ms"])
    return None


@router.get("/recordings/{recording_id}", response_class=HTMLResponse)
def recording_page(
    recording_id: str, request: Request, viewer: ViewerDep, session: SessionDep, at: Now
) -> HTMLResponse:
    principal = signed_in(viewer, "admin", "listener", "user")
    recording = recording_for(session, principal, recording_id)
    audit(
        session,
        request,
        principal,
        "recording.view",
        recording.tenant_id,
        target=f"recording:{recording.id}",
    )
    gone_at = audio_gone_at(session, recording, at)
    # the player needs the portal session a play link is bound to (not a bearer token)
    play = (
        issue_play_link(session, request, principal, recording, at, source="page")
        if principal.session_id is not None and gone_at is None
        else None
    )
    session.commit()
    meta = recording_out(session, recording).model_dump(mode="json")
    tenant = session.get(Tenant, recording.tenant_id)
    timezone = tenant.timezone if tenant else "UTC"
    if tenant is not None:  # the page shows the tenant's clock; the API stays UTC
        local_times(meta, tenant.timezone)
    stream_only = bool(tenant.stream_only) if tenant else True
    names: dict[int, str] = {
        row.id: row.name
        for row in session.execute(
            select(User.id, User.name).where(User.tenant_id == recording.tenant_id)
        )
    }
    labels = session.scalars(
        select(RecordingLabel)
        .where(
            RecordingLabel.tenant_id == recording.tenant_id,
            RecordingLabel.recording_id == recording.id,
        )
        .order_by(RecordingLabel.text)
    )
    comments = session.scalars(
        select(RecordingComment)
        .where(
            RecordingComment.tenant_id == recording.tenant_id,
            RecordingComment.recording_id == recording.id,
        )
        .order_by(RecordingComment.created_at, RecordingComment.id)
    )
    shares = session.scalars(
        select(ShareLink)
        .where(ShareLink.tenant_id == recording.tenant_id, ShareLink.recording_id == recording.id)
        .order_by(ShareLink.created_at.desc(), ShareLink.id.desc())
    )
    marks: list[dict[str, Any]] = []
    for d in meta["dtmf"]:
        offset = file_offset_ms(meta["segments"], d["at_ms"])
        if offset is not None:
            marks.append({"digit": d["digit"], "at_ms": offset, "stream_index": d["stream_index"]})
    return render(
        request,
        viewer,
        "recording.html",
        page="recording",
        rec=meta,
        user_name=names.get(recording.user_id) if recording.user_id else None,
        names=names,
        labels=list(labels),
        comments=list(comments),
        shares=list(shares),
        stream_only=stream_only,
        # recordings by e-mail (mail.recordings): sent, failed for good, or sent and not kept
        mail={
            "mailed_at": recording.mailed_at,
            "error": recording.mail_error,
            "not_stored": recording.audio_deleted_reason == "mailed",
        },
        play_url=play.url if play else "",
        audio_gone_on=local_date(gone_at, timezone) if gone_at else None,
        holds=holds_on(session, recording),
        # Playback's question (SPEC 6), for the recording's own user while it is open
        ask=is_asked(recording)
        and recording.answered_at is None
        and gone_at is None
        and recording.user_id == principal.user_id,
        timeline={
            "duration_ms": meta["duration_ms"],
            "segments": meta["segments"],
            "dtmf": marks,
            "channels": meta["channels"],
        },
    )


@router.get("/s/{token}", response_class=HTMLResponse)
def shared_page(
    token: str, request: Request, viewer: ViewerDep, session: SessionDep, at: Now
) -> HTMLResponse:
    if not re.fullmatch(r"[A-Za-z0-9_\-]{8,200}", token):
        raise NotFound("no such link", error_id=ErrorId.SHARE_NOT_FOUND)
    # a dead link is the script's to say (it asks the API); expired audio is said here
    live = live_share_recording(session, token, at)
    gone_at = audio_gone_at(session, live[1], at) if live else None
    timezone = "UTC"
    if live and gone_at:
        tenant = session.get(Tenant, live[0].tenant_id)
        timezone = tenant.timezone if tenant else timezone
    return render(
        request,
        viewer,
        "shared.html",
        page="shared",
        token=token,
        audio_gone_on=local_date(gone_at, timezone) if gone_at else None,
    )


def local_date(at: datetime, timezone: str) -> str:
    """The day ``at`` falls on in the tenant's time zone (YYYY-MM-DD)."""
    return as_utc(at).astimezone(ZoneInfo(timezone)).date().isoformat()
