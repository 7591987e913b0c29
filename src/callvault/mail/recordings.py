"""The ``recording.mail`` job: each finished recording to the tenant's address (SPEC 5).

Enqueued by ``recording.after.after_recording_stored`` with the recording's
rows. The MP3 goes as an attachment, or, over
``settings.mail_attachment_max_bytes``, a link to the portal stands in for it.
A stream-only tenant (``Tenant.stream_only``: its audio plays in the portal's
player only) gets the link, never the file: an attachment would hand out
every recording the tenant forbade to download.
A 4xx or an unreachable server is retried with the queue's backoff; a 5xx
(or the last attempt) fails the job for good and sets ``Recording.mail_error``,
which the recording page and the jobs list show. Audio that may no longer be
reached (expired, deleted: ``retention.access``) is not sent.

"Do not store in the portal" (the German manual's checkbox,
``Tenant.store_in_portal`` false): once the server accepted the message
(250) the audio is deleted with a receipt (``reason="mailed"``). It stays
when a legal hold covers it, and when only a link was mailed, since the
portal then holds the only copy (the settings refuse "do not store" for a
stream-only tenant: ``stream-only-needs-portal``).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from callvault.db.models import Call, Job, Recording, Tenant
from callvault.jobs.registry import JobContext, JobFailed, RetryLater, handler
from callvault.mail.messages import Party, RecordingMail, build_recording_message
from callvault.mail.smtp import MailPermanentError, MailTemporaryError, send
from callvault.recording.after import MAIL_RECORDING
from callvault.retention.access import is_audio_available, is_held
from callvault.retention.deletion import delete_audio
from callvault.storage.blobs import BlobNotFound

log = logging.getLogger(__name__)

MAIL_ACTOR = "system:mail"
MAIL_ERROR_MAX = 500  # Recording.mail_error's column


def _party(name: str | None, number: str | None, aor: str | None) -> Party:
    return Party(name=name, number=number or aor)


def _note(ctx: JobContext, note: str, **result: Any) -> dict[str, Any]:
    """Done without sending: the note is the job's message in the jobs list."""
    ctx.progress(1, 1, note)
    return {"sent": False, "note": note, **result}


def _record_failure(ctx: JobContext, recording_id: str, error: str) -> None:
    with ctx.sessions() as session:
        recording = session.get(Recording, recording_id)
        if recording is not None:
            recording.mail_error = error[:MAIL_ERROR_MAX]
            session.commit()


def _last_attempt(ctx: JobContext) -> bool:
    with ctx.sessions() as session:
        job = session.get(Job, ctx.job_id)
        return job is None or ctx.attempt >= job.max_attempts


@handler(MAIL_RECORDING)
def mail_recording(ctx: JobContext) -> dict[str, Any]:
    settings = ctx.services.settings
    recording_id = str(ctx.payload.get("recording_id", ""))
    now = ctx.now()
    with ctx.sessions() as session:
        recording = session.scalar(
            select(Recording).where(
                Recording.id == recording_id, Recording.tenant_id == ctx.tenant_id
            )
        )
        if recording is None:
            return _note(ctx, "the recording no longer exists")
        if recording.mailed_at is not None:  # a job run again after its worker died
            return _note(ctx, "mailed already", recording_id=recording_id)
        tenant = session.get(Tenant, recording.tenant_id)
        if tenant is None or not tenant.delivery_email:
            return _note(ctx, "the tenant has no delivery address any more")
        if not is_audio_available(session, recording, now):
            return _note(ctx, "the audio is no longer available: not mailed")
        call = session.get(Call, recording.call_id)
        stream_only = bool(tenant.stream_only)
        attach = not stream_only and recording.size_bytes <= settings.mail_attachment_max_bytes
        # delete after sending only when the message carries the audio itself
        delete_after = not tenant.store_in_portal and attach
        try:
            audio = ctx.blobs.read(recording.blob_key) if attach else None
        except BlobNotFound:
            return _note(ctx, "the audio is no longer available: not mailed")
        mail = RecordingMail(
            recording_id=recording.id,
            caller=_party(call.from_name, call.from_number, call.from_aor)
            if call
            else Party(None, None),
            callee=_party(call.to_name, call.to_number, call.to_aor) if call else Party(None, None),
            started_at=recording.started_at,
            duration_ms=recording.duration_ms,
            direction=call.direction if call else "unknown",
            language=tenant.language,
            timezone=tenant.timezone,
            size_bytes=recording.size_bytes,
            link=None
            if delete_after
            else f"{settings.public_url.rstrip('/')}/recordings/{recording.id}",
            stored_in_portal=not delete_after,
            stream_only=stream_only,
        )
        to = tenant.delivery_email
        message = build_recording_message(
            mail, smtp_from=settings.smtp_from, to=to, audio=audio, at=now
        )
    try:
        send(settings, message)
    except MailTemporaryError as exc:
        if _last_attempt(ctx):
            _record_failure(ctx, recording_id, f"not delivered after {ctx.attempt} tries: {exc}")
            raise JobFailed(str(exc)) from exc
        raise RetryLater(str(exc)) from exc
    except MailPermanentError as exc:
        _record_failure(ctx, recording_id, str(exc))
        raise JobFailed(str(exc)) from exc
    return _accepted(
        ctx,
        recording_id,
        to=to,
        attached=attach,
        delete_after=delete_after,
        stream_only=stream_only,
    )


def _accepted(
    ctx: JobContext,
    recording_id: str,
    *,
    to: str,
    attached: bool,
    delete_after: bool,
    stream_only: bool,
) -> dict[str, Any]:
    """The server said 250: note it, and drop the portal's copy when the tenant wants that."""
    now = ctx.now()
    with ctx.sessions() as session:
        recording = session.get(Recording, recording_id)
        if recording is None:
            return {"sent": True, "to": to, "attached": attached, "deleted": False}
        recording.mailed_at, recording.mail_error = now, None
        session.commit()
        deleted = False
        if attached:
            note = "mailed as attachment"
        elif stream_only:
            note = "mailed as link (stream-only: no attachment)"
        else:
            note = "mailed as link (too large to attach)"
        if delete_after:
            if is_held(session, recording):
                note += "; kept in the portal: a legal hold covers it"
            else:
                tenant = session.get(Tenant, recording.tenant_id)
                delete_audio(
                    session,
                    ctx.blobs,
                    [recording],
                    reason="mailed",
                    kind="mailed",
                    actor=MAIL_ACTOR,
                    at=now,
                    tenant=tenant,
                )
                deleted = True
                note += "; not stored in the portal: audio deleted"
    ctx.progress(1, 1, note)
    log.info("recording %s mailed to %s: %s", recording_id, to, note)
    return {"sent": True, "to": to, "attached": attached, "deleted": deleted}
