"""Whether a recording's audio may be reached: not deleted, and not expired unless held.

Expired audio is unreachable the moment it expires, before any purge ran; a
legal hold (on the tenant, the recording's user or the recording) stops
expiry, so held audio stays reachable past ``expires_at``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import Session

from callvault.db.models import LegalHold, Recording
from callvault.errors import ApiError, ErrorId


def held() -> ColumnElement[bool]:
    """SQL: an active legal hold covers the recording (correlated with ``Recording``)."""
    return exists().where(
        LegalHold.tenant_id == Recording.tenant_id,
        LegalHold.lifted_at.is_(None),
        or_(
            LegalHold.scope == "tenant",
            and_(LegalHold.scope == "user", LegalHold.user_id == Recording.user_id),
            and_(LegalHold.scope == "recording", LegalHold.recording_id == Recording.id),
        ),
    )


def audio_available(at: datetime) -> ColumnElement[bool]:
    """SQL: the recording's audio is there and may be played at ``at``."""
    return and_(
        Recording.audio_deleted_at.is_(None),
        or_(Recording.expires_at.is_(None), Recording.expires_at > at, held()),
    )


def is_audio_available(session: Session, recording: Recording, at: datetime) -> bool:
    return bool(
        session.scalar(
            select(Recording.id).where(Recording.id == recording.id, audio_available(at))
        )
    )


def is_held(session: Session, recording: Recording) -> bool:
    return bool(session.scalar(select(Recording.id).where(Recording.id == recording.id, held())))


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def audio_gone_at(session: Session, recording: Recording, at: datetime) -> datetime | None:
    """When the recording's audio stopped being reachable (expired or deleted); None
    while it may still be played."""
    if is_audio_available(session, recording, at):
        return None
    moments = [_utc(m) for m in (recording.audio_deleted_at, recording.expires_at) if m]
    return min(moments) if moments else _utc(at)


class AudioExpired(ApiError):
    """410 ``audio-expired``: the call is still listed, its audio is not to be had."""

    error_id = ErrorId.AUDIO_EXPIRED

    def __init__(self, gone_at: datetime) -> None:
        super().__init__(f"the audio of this recording expired on {gone_at:%Y-%m-%d}")
        self.gone_at = gone_at


def require_audio(session: Session, recording: Recording, at: datetime) -> None:
    """Every route that hands out audio, a play link or a player asks this first."""
    gone_at = audio_gone_at(session, recording, at)
    if gone_at is not None:
        raise AudioExpired(gone_at)
