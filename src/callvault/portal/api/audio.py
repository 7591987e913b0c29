"""Recording audio over HTTP: Range requests for the player, downloads, audit.

Stream-only tenants (SPEC section 5) get no downloads: ``?download=true``
and any full-file fetch without a Range header (what a browser's player never
does) are refused with 403 ``stream-only``. Every play (a range starting at
byte 0) and every download is audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.db.models import Call, Recording, Tenant
from callvault.errors import ApiError, Forbidden
from callvault.portal.api.calls import recording_for
from callvault.portal.audit import audit
from callvault.portal.auth import CurrentPrincipal, SessionDep, as_utc
from callvault.storage.blobs import BlobNotFound, BlobStore

router = APIRouter(prefix="/api/v1", tags=["audio"])

AUDIO_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"audio/mpeg": {}}},
    206: {"content": {"audio/mpeg": {}}},
}

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9+_-]+")


def parse_range(header: str, size: int) -> tuple[int, int]:
    """One byte range ``[start, end)`` of ``size``; 416 when unsatisfiable."""
    match = _RANGE.match(header.strip().split(",", 1)[0].strip())
    if match is None:
        raise ApiError("the Range header is not understood", error_id="bad-range", status=416)
    first, last = match.groups()
    if first == "" and last == "":
        raise ApiError("the Range header is empty", error_id="bad-range", status=416)
    if first == "":
        length = int(last)
        start, end = max(0, size - length), size
    else:
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    if start >= size or end <= start:
        raise ApiError(
            "the range lies outside the file", error_id="range-unsatisfiable", status=416
        )
    return start, end


def stream_only_refusal() -> Forbidden:
    return Forbidden(
        "recordings of this organisation can only be played in the browser, not downloaded",
        error_id="stream-only",
    )


@dataclass
class AudioSlice:
    """The bytes to answer with, for a whole file or one Range."""

    body: bytes
    status: int
    start: int
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        return Response(
            content=self.body,
            status_code=self.status,
            media_type="audio/mpeg",
            headers=self.headers,
        )


def read_audio(blobs: BlobStore, recording: Recording, range_header: str | None) -> AudioSlice:
    try:
        size = blobs.size(recording.blob_key)
    except BlobNotFound as exc:
        raise ApiError("the audio is no longer stored", error_id="audio-gone", status=410) from exc
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{recording.sha256}"'}
    if range_header:
        start, end = parse_range(range_header, size)
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        return AudioSlice(blobs.read(recording.blob_key, start, end), 206, start, headers)
    return AudioSlice(blobs.read(recording.blob_key), 200, 0, headers)


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


def _call_of(session: Session, recording: Recording) -> Call | None:
    return session.scalar(
        select(Call).where(Call.tenant_id == recording.tenant_id, Call.id == recording.call_id)
    )


@router.get("/recordings/{recording_id}/audio", response_class=Response, responses=AUDIO_RESPONSES)
def get_audio(
    recording_id: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
    download: bool = False,
) -> Response:
    recording = recording_for(session, principal, recording_id)
    tenant = session.get(Tenant, recording.tenant_id)
    assert tenant is not None
    range_header = request.headers.get("range")
    if tenant.stream_only and (download or not range_header):
        raise stream_only_refusal()
    audio = read_audio(request.app.state.context.blobs, recording, range_header)
    filename = download_filename(recording, _call_of(session, recording))
    disposition = "attachment" if download else "inline"
    audio.headers["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    if audio.start == 0:
        action = "recording.download" if download or not range_header else "recording.play"
        audit(
            session,
            request,
            principal,
            action,
            recording.tenant_id,
            target=f"recording:{recording.id}",
            stream_only=tenant.stream_only,
        )
        session.commit()
    return audio.response()
