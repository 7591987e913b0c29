"""Rows for Playback's tests: calls with a party and recordings with real blobs."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from callvault.db.models import Call, CallParty, Recording
from callvault.retention.rule import UNSAVED_PLAYBACK_DAYS
from callvault.storage.blobs import BlobStore


def recording(
    session: Session,
    blobs: BlobStore,
    tenant_id: int,
    user_id: int,
    started_at: datetime,
    *,
    mode: str | None = "playback",
    saved: bool = False,
    expires_at: datetime | None = None,
    other_name: str = "Customer",
    other_number: str = "+31612345678",
) -> str:
    """A finished call of ``user_id`` with the other party, and its recording: by default
    an unsaved Playback one expiring 3 days after the call (as the store makes it)."""
    call = Call(
        tenant_id=tenant_id,
        sip_call_id=f"pb-{secrets.token_hex(6)}",
        direction="inbound",
        from_name=other_name,
        from_number=other_number,
        to_number="+31201110001",
        started_at=started_at,
        answered_at=started_at,
        ended_at=started_at + timedelta(seconds=30),
        duration_ms=30_000,
    )
    call.parties = [
        CallParty(tenant_id=tenant_id, participant_id="u", user_id=user_id, side="user"),
        CallParty(
            tenant_id=tenant_id,
            participant_id="o",
            name=other_name,
            number=other_number,
            side="other",
        ),
    ]
    session.add(call)
    session.flush()
    audio = secrets.token_bytes(64) * 20
    key = f"{tenant_id}/{call.id}.mp3"
    blobs.put(key, audio)
    if expires_at is None and mode == "playback" and not saved:
        expires_at = started_at + timedelta(days=UNSAVED_PLAYBACK_DAYS)
    session.add(
        Recording(
            id=call.id,
            tenant_id=tenant_id,
            call_id=call.id,
            user_id=user_id,
            blob_key=key,
            sha256=hashlib.sha256(audio).hexdigest(),
            size_bytes=len(audio),
            duration_ms=30_000,
            channels=2,
            sample_rate=8000,
            codecs="PCMU",
            started_at=started_at,
            expires_at=expires_at,
            mode=mode,
            saved=saved,
            kept_reason="playback: unsaved" if mode == "playback" and not saved else "always",
        )
    )
    session.flush()
    return call.id
