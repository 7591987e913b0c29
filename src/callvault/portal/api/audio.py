"""Recording audio over HTTP: Range requests for the player, downloads, audit."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response

from callvault.errors import ApiError
from callvault.portal.api.calls import _utc, recording_for
from callvault.portal.audit import audit
from callvault.portal.auth import CurrentPrincipal, SessionDep
from callvault.storage.blobs import BlobNotFound

router = APIRouter(prefix="/api/v1", tags=["audio"])


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


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


@router.get(
    "/recordings/{recording_id}/audio",
    response_class=Response,
    responses={200: {"content": {"audio/mpeg": {}}}, 206: {"content": {"audio/mpeg": {}}}},
)
def get_audio(
    recording_id: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
    download: bool = False,
) -> Response:
    recording = recording_for(session, principal, recording_id)
    blobs = request.app.state.context.blobs
    try:
        size = blobs.size(recording.blob_key)
    except BlobNotFound as exc:
        raise ApiError("the audio is no longer stored", error_id="audio-gone", status=410) from exc
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{recording.sha256}"'}
    started = _utc(recording.started_at)
    stamp = started.strftime("%Y-%m-%d_%H%M%S") if started else "recording"
    disposition = "attachment" if download else "inline"
    headers["Content-Disposition"] = f'{disposition}; filename="{stamp}_{recording.id[:8]}.mp3"'
    range_header = request.headers.get("range")
    if range_header:
        start, end = parse_range(range_header, size)
        body = blobs.read(recording.blob_key, start, end)
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        status = 206
    else:
        start, end = 0, size
        body = blobs.read(recording.blob_key)
        status = 200
    if start == 0:
        action = "recording.download" if download or not range_header else "recording.play"
        audit(
            session,
            request,
            principal,
            action,
            recording.tenant_id,
            target=f"recording:{recording.id}",
        )
        session.commit()
    return Response(content=body, status_code=status, media_type="audio/mpeg", headers=headers)
