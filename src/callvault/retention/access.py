"""Whether a recording's audio may be reached: not deleted, and not expired unless held.

Expired audio is unreachable the moment it expires, before any purge ran; a
legal hold (on the tenant, the recording's user or the recording) stops
expiry, so held audio stays reachable past ``expires_at``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import Session

from callvault.db.models import LegalHold, Recording


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
