"""The rows of Reports › Calls (the recordings list answers ``api.schemas.RecordingOut``)."""

from __future__ import annotations

from typing import Literal

from callvault.portal.api.schemas import CallOut
from callvault.portal.timefmt import UtcDateTime

AudioState = Literal["available", "expired", "deleted"]


class CallReportOut(CallOut):
    """A row of Reports › Calls: the call, its recordings' ids and labels, and for a
    recorded call whose audio is available the URLs of the play and download
    buttons (download is None where the tenant allows streaming only). ``audio``
    is None for a call without a recording."""

    started_at: UtcDateTime
    answered_at: UtcDateTime | None
    ended_at: UtcDateTime | None
    labels: list[str]
    audio: AudioState | None
    audio_url: str | None
    download_url: str | None
