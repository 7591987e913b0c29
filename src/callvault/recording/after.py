"""What a stored recording sets going, in the transaction that stores it.

Enqueued with the recording's rows, so each job exists exactly once however
often a crashed call is finished again: mailing it to the tenant's address
(SPEC 5); the Playback question and webhooks will join here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from callvault.db.models import Recording, Tenant
from callvault.jobs.queue import enqueue

MAIL_RECORDING = "recording.mail"


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
