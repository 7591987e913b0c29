"""Recording audio over HTTP: the portal's player, downloads, audit (SPEC sections 5, 8).

The portal's player asks ``POST /recordings/{id}/play`` for a play link:
the audio URL with ``?play=<token>``, an HMAC (key: ``app.state.play_key``,
random per process) over the portal session, the recording and an expiry
``PLAY_LINK_LIFETIME`` ahead. Issuing the link is the one audit row of that
listening session (``recording.play``); the player's Range requests with it
are not audited again. A play link works only with the cookie session it was
made for, and is answered ``Content-Disposition: inline`` and
``Cache-Control: no-store``.

Stream-only tenants' audio is served through play links only, and only to
Range requests (a browser's player always sends one; "save as" does not):
no downloads, nothing for bearer tokens. This stops casual downloading, not
a determined user, whose browser necessarily receives the audio
(docs/security.md). Other tenants' audio may also be fetched directly (API
clients, the download button); every such request is audited
(``recording.download``).

Expired audio is unreachable at once (SPEC 4): a play link is not issued and
the audio is not served (410 ``audio-expired``) once ``expires_at`` passed,
unless a legal hold keeps it (``retention/access.py`` decides).

The audio is streamed from the blob store in chunks (``BlobStore.read_range``:
a seek on local disk, one ranged GET on S3), so neither a Range request nor
a whole file is ever held in memory; a blob store that does not answer is a
503 ``storage-unavailable``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.db.models import Call, Recording, Tenant
from callvault.errors import ApiError, ErrorId, Forbidden
from callvault.portal.audit import audit
from callvault.portal.auth import CurrentPrincipal, Now, Principal, SessionDep, as_utc
from callvault.portal.reports.service import recording_for
from callvault.portal.timefmt import UtcDateTime
from callvault.retention.access import require_audio
from callvault.storage.blobs import BlobNotFound, BlobStore, BlobStoreError

router = APIRouter(prefix="/api/v1", tags=["audio"])

AUDIO_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"audio/mpeg": {}}},
    206: {"content": {"audio/mpeg": {}}},
}

# 18 digits pass any real file size (an exabyte); a longer number is refused before int()
# ever sees it (CPython refuses to parse integers of more than 4300 digits).
_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")
PLAY_LINK_LIFETIME = timedelta(minutes=10)
PLAY_TOKEN_MAX = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9+_-]+")


def parse_range(header: str, size: int) -> tuple[int, int]:
    """One byte range ``[start, end)`` of ``size``; 416 when unsatisfiable."""
    match = _RANGE.match(header.strip().split(",", 1)[0].strip()) if len(header) <= 200 else None
    if match is None:
        raise ApiError("the Range header is not understood", error_id=ErrorId.BAD_RANGE)
    first, last = match.groups()
    if first == "" and last == "":
        raise ApiError("the Range header is empty", error_id=ErrorId.BAD_RANGE)
    if first == "":
        length = int(last)
        start, end = max(0, size - length), size
    else:
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    if start >= size or end <= start:
        raise ApiError("the range lies outside the file", error_id=ErrorId.RANGE_UNSATISFIABLE)
    return start, end


def stream_only_refusal() -> Forbidden:
    return Forbidden(
        "recordings of this organisation can only be played in the browser, not downloaded",
        error_id=ErrorId.STREAM_ONLY,
    )


@dataclass
class AudioSlice:
    """The bytes to answer with, for a whole file or one Range, as chunks from the store."""

    chunks: Iterator[bytes]
    status: int
    start: int
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        return StreamingResponse(
            self.chunks, status_code=self.status, media_type="audio/mpeg", headers=self.headers
        )


def read_audio(blobs: BlobStore, recording: Recording, range_header: str | None) -> AudioSlice:
    """The recording's bytes (all, or the one range asked for), streamed; nothing read yet
    but the first chunk's request, so a missing blob or a store outage answers an error."""
    try:
        size = blobs.size(recording.blob_key)
        start, end, status = 0, size, 200
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{recording.sha256}"'}
        if range_header:
            start, end = parse_range(range_header, size)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        chunks = blobs.read_range(recording.blob_key, start, end)
    except BlobNotFound as exc:
        raise ApiError("the audio is no longer stored", error_id=ErrorId.AUDIO_GONE) from exc
    except BlobStoreError as exc:
        raise ApiError(
            "the recording's storage does not answer; try again shortly",
            error_id=ErrorId.STORAGE_UNAVAILABLE,
        ) from exc
    return AudioSlice(chunks, status, start, headers)


def _part(value: str | None) -> str:
    if not value:
        return "unknown"
    if "@" in value:
        value = value.split("@", 1)[0].removeprefix("sip:").removeprefix("sips:")
    return _UNSAFE.sub("-", value).strip("-")[:40] or "unknown"


def download_filename(recording: Recording, call: Call | None) -> str:
    """``<YYYY-MM-DD_HHMM>_<from>_<to>.mp3``, every part within [A-Za-z0-9+_-]."""
    stamp = as_utc(recording.started_at).strftime("%Y-%m-%d_%H%M")
    source = _part(call.from_number or call.from_name or call.from_aor) if call else "unknown"
    dest = _part(call.to_number or call.to_name or call.to_aor) if call else "unknown"
    extension = _UNSAFE.sub("", recording.format) or "mp3"
    return f"{stamp}_{source}_{dest}.{extension}"


def _play_mac(key: bytes, session_id: int, recording_id: str, expires: int) -> str:
    message = f"{session_id}:{recording_id}:{expires}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def play_token(key: bytes, session_id: int, recording_id: str, expires_at: datetime) -> str:
    expires = int(expires_at.timestamp())
    return f"{expires}.{_play_mac(key, session_id, recording_id, expires)}"


def play_token_ok(
    key: bytes, token: str, session_id: int | None, recording_id: str, at: datetime
) -> bool:
    """The token was made for this portal session and recording, and has not expired."""
    expires, _, mac = token.partition(".")
    if session_id is None or not expires.isdigit() or len(expires) > 12:
        return False
    if int(expires) <= at.timestamp():
        return False
    expected = _play_mac(key, session_id, recording_id, int(expires))
    return hmac.compare_digest(expected.encode(), mac.encode())


class PlayOut(BaseModel):
    url: str
    expires_at: UtcDateTime


def issue_play_link(
    session: Session,
    request: Request,
    principal: Principal,
    recording: Recording,
    at: datetime,
    *,
    source: str = "player",
) -> PlayOut:
    """A play link for the principal's portal session; audits the listening session once.

    The caller commits.
    """
    if principal.session_id is None:
        raise Forbidden(
            "audio plays in the portal's player; log in to the portal", error_id=ErrorId.PLAYER_ONLY
        )
    require_audio(session, recording, at)
    tenant = session.get(Tenant, recording.tenant_id)
    expires_at = (at + PLAY_LINK_LIFETIME).astimezone(UTC).replace(microsecond=0)
    token = play_token(request.app.state.play_key, principal.session_id, recording.id, expires_at)
    audit(
        session,
        request,
        principal,
        "recording.play",
        recording.tenant_id,
        target=f"recording:{recording.id}",
        stream_only=bool(tenant and tenant.stream_only),
        source=source,
    )
    return PlayOut(
        url=f"/api/v1/recordings/{recording.id}/audio?play={token}", expires_at=expires_at
    )


def _call_of(session: Session, recording: Recording) -> Call | None:
    return session.scalar(
        select(Call).where(Call.tenant_id == recording.tenant_id, Call.id == recording.call_id)
    )


@router.post("/recordings/{recording_id}/play", response_model=PlayOut)
def start_play(
    recording_id: str, principal: CurrentPrincipal, session: SessionDep, request: Request, at: Now
) -> PlayOut:
    """A short-lived play link for the portal's player (cookie sessions only); audited."""
    recording = recording_for(session, principal, recording_id)
    link = issue_play_link(session, request, principal, recording, at)
    session.commit()
    return link


PlayToken = Annotated[str | None, Query(max_length=PLAY_TOKEN_MAX)]


@router.get("/recordings/{recording_id}/audio", response_class=Response, responses=AUDIO_RESPONSES)
def get_audio(
    recording_id: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
    at: Now,
    download: bool = False,
    play: PlayToken = None,
) -> Response:
    recording = recording_for(session, principal, recording_id)
    require_audio(session, recording, at)  # expired: 410, on the 200 and 206 paths alike
    tenant = session.get(Tenant, recording.tenant_id)
    assert tenant is not None
    range_header = request.headers.get("range")
    blobs = request.app.state.context.blobs
    if play is not None:
        key: bytes = request.app.state.play_key
        if not play_token_ok(key, play, principal.session_id, recording.id, at):
            raise Forbidden(
                "this play link has expired; reload the page", error_id=ErrorId.PLAY_LINK_EXPIRED
            )
        if tenant.stream_only and (download or not range_header):
            raise stream_only_refusal()
        audio = read_audio(blobs, recording, range_header)
        # audited once, when the link was issued
        audio.headers["Content-Disposition"] = "inline"
    else:
        if tenant.stream_only:
            raise stream_only_refusal()
        audio = read_audio(blobs, recording, range_header)
        filename = download_filename(recording, _call_of(session, recording))
        disposition = "attachment" if download else "inline"
        audio.headers["Content-Disposition"] = f'{disposition}; filename="{filename}"'
        audit(
            session,
            request,
            principal,
            "recording.download",
            recording.tenant_id,
            target=f"recording:{recording.id}",
            range=range_header[:100] if range_header else None,
        )
        session.commit()
    audio.headers["Cache-Control"] = "no-store"
    return audio.response()
