"""What a stored recording sets going, in the transaction that stores it.

Enqueued with the recording's rows, so each job exists exactly once however
often a crashed call is finished again: mailing it to the tenant's address
(SPEC 5), and asking a Playback user whether to keep it (SPEC 6:
``playback.ask``, when no list decided it and the user still exists);
webhooks will join here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from callvault.db.models import Recording, Tenant, User
from callvault.jobs.queue import enqueue
from callvault.policy.modes import Mode

MAIL_RECORDING = "recording.mail"
ASK_PLAYBACK = "playback.ask"


def after_recording_stored(
    session: Session, recording: Recording, tenant: Tenant, at: datetime
) -> None:
    if tenant.delivery_email:
        enqueue(
            session,
            MAIL_RECORDING,
            {"recording_id": recording.id},
            at=at,
            tenant_id=tenant.id,
            key=f"{MAIL_RECORDING}:{recording.id}",
        )
    if (
        recording.mode == Mode.PLAYBACK
        and not recording.saved
        and recording.user_id is not None
        and session.get(User, recording.user_id) is not None
    ):
        enqueue(
            session,
            ASK_PLAYBACK,
            {"recording_id": recording.id},
            at=at,
            tenant_id=tenant.id,
            key=f"{ASK_PLAYBACK}:{recording.id}",
        )
