"""The ``playback.ask`` job: after each unsaved Playback call, ask the user (SPEC 6).

Enqueued by ``recording.after`` with the recording's rows (once per
recording). It sends one Web Push message to every device of the user
(``push.send``: RFC 8030/8291/8292) and, when the user chose it
(``User.playback_email``) and has an address, an e-mail with a link to the
portal's keep/discard page. The inbox needs nothing from here: it lists the
unanswered Playback recordings itself.

The message is small JSON, no audio, and no more than the notification
shows (the other party, the local time) plus what answering needs: the
recording's id, its expiry, the two actions, the answer URL and the action
token (``playback.answers.recording_action_token``).

Each device is sent to once: its outcome is written to the job's payload
(``devices``) as it happens, so a retry sends only to the devices that had a
temporary failure (429, 5xx, no connection). 404/410 delete the
subscription. The job never holds up finishing a call: it is a job. It asks
nothing when the recording was answered or kept meanwhile, its audio is no
longer available, or its user is gone.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from callvault.db.models import Call, CallParty, Job, PushSubscription, Recording, Tenant, User
from callvault.jobs.registry import JobContext, RetryLater, handler
from callvault.mail.messages import Party
from callvault.mail.smtp import MailPermanentError, MailTemporaryError, send
from callvault.playback.answers import recording_action_token
from callvault.playback.messages import Question, question_mail, word
from callvault.push.send import Device, Outcome, PushResult, send_push
from callvault.push.subscriptions import devices_of
from callvault.push.vapid import vapid_key
from callvault.recording.after import ASK_PLAYBACK
from callvault.retention.access import is_audio_available
from callvault.settings import Settings

log = logging.getLogger(__name__)

ANSWER_URL = "/api/v1/playback/answer"
PAGE_PATH = "/playback/"  # + the recording's id: the portal's keep/discard page


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _note(ctx: JobContext, note: str, **result: Any) -> dict[str, Any]:
    ctx.progress(1, 1, note)
    return {"asked": False, "note": note, **result}


def other_party(session: Session, recording: Recording, call: Call | None) -> Party:
    """Who the recording's user spoke with: the call's first party on the other side."""
    if call is None:
        return Party(None, None)
    party = session.scalar(
        select(CallParty)
        .where(CallParty.call_id == call.id, CallParty.side == "other")
        .order_by(CallParty.joined_ms, CallParty.id)
        .limit(1)
    )
    if party is not None and (party.name or party.number or party.aor):
        return Party(party.name, party.number or party.aor)
    if call.direction == "outbound":
        return Party(call.to_name, call.to_number or call.to_aor)
    return Party(call.from_name, call.from_number or call.from_aor)


def push_message(question: Question, token: str) -> dict[str, Any]:
    language = question.language
    return {
        "type": ASK_PLAYBACK,
        "recording_id": question.recording_id,
        "title": question.title(),
        "body": question.body(),
        "expires_at": question.expires_at.isoformat(),
        "actions": [
            {"action": "keep", "title": word(language, "keep")},
            {"action": "discard", "title": word(language, "discard")},
        ],
        "answer_url": ANSWER_URL,
        "token": token,
    }


def vapid_subject(settings: Settings) -> str:
    """RFC 8292 section 2.1: how the push service reaches the operator."""
    _name, address = parseaddr(settings.smtp_from)
    return f"mailto:{address or settings.smtp_from}"


def _save_progress(
    ctx: JobContext, devices: dict[str, str], mailed: bool, session: Session
) -> None:
    """The outcome per device so far, in the job's payload: a retry reads it back."""
    payload = {**ctx.payload, "devices": devices, "mailed": mailed}
    session.execute(
        update(Job)
        .where(Job.id == ctx.job_id)
        .values(payload=payload)
        .execution_options(synchronize_session=False)
    )


def _record(
    ctx: JobContext,
    subscription_id: int,
    result: PushResult,
    devices: dict[str, str],
    mailed: bool,
    at: datetime,
) -> None:
    with ctx.sessions() as session:
        row = session.get(PushSubscription, subscription_id)
        if row is not None:
            if result.outcome is Outcome.DELIVERED:
                row.last_sent_at, row.failures = at, 0
            elif result.outcome is Outcome.GONE:
                session.delete(row)
            else:
                row.failures = (row.failures or 0) + 1
        if result.outcome is not Outcome.RETRY:
            devices[str(subscription_id)] = result.outcome.value
        _save_progress(ctx, devices, mailed, session)
        session.commit()


@handler(ASK_PLAYBACK)
def ask_playback(ctx: JobContext) -> dict[str, Any]:
    settings = ctx.services.settings
    now = ctx.now()
    recording_id = str(ctx.payload.get("recording_id", ""))
    devices: dict[str, str] = {
        str(k): str(v) for k, v in dict(ctx.payload.get("devices") or {}).items()
    }
    mailed = bool(ctx.payload.get("mailed"))
    with ctx.sessions() as session:
        recording = session.scalar(
            select(Recording).where(
                Recording.id == recording_id, Recording.tenant_id == ctx.tenant_id
            )
        )
        if recording is None:
            return _note(ctx, "the recording no longer exists")
        if recording.answered_at is not None or recording.saved:
            return _note(ctx, "answered already: not asked", recording_id=recording_id)
        if not is_audio_available(session, recording, now):
            return _note(ctx, "the audio is no longer available: not asked")
        user = session.get(User, recording.user_id) if recording.user_id is not None else None
        tenant = session.get(Tenant, recording.tenant_id)
        if user is None or not user.active or tenant is None:
            return _note(ctx, "the user is gone: not asked")
        if recording.expires_at is None:  # unsaved Playback always expires (retention.rule)
            return _note(ctx, "the recording has no expiry: not asked")
        started, expires = _utc(recording.started_at), _utc(recording.expires_at)
        question = Question(
            recording_id=recording.id,
            other=other_party(session, recording, session.get(Call, recording.call_id)),
            started_at=started,
            expires_at=expires,
            language=user.language or tenant.language,
            timezone=tenant.timezone,
        )
        message = push_message(question, recording_action_token(session, recording))
        session.commit()  # the token's key, should this be the first use of it
        pending = [
            (row.id, Device(row.endpoint, row.p256dh, row.auth))
            for row in devices_of(session, tenant.id, user.id)
            if str(row.id) not in devices
        ]
        mail_to = user.email if user.playback_email and user.email and not mailed else None
    retry: list[PushResult] = []
    if pending:
        key = vapid_key(ctx.sessions, now)
        ttl = int((expires - now).total_seconds())
        for number, (subscription_id, device) in enumerate(pending, 1):
            result = send_push(
                device,
                message,
                key=key,
                subject=vapid_subject(settings),
                now=now,
                ttl=ttl,
                timeout=settings.push_timeout_s,
                allow_http_loopback=settings.push_allow_http_loopback,
            )
            if result.outcome is Outcome.RETRY:
                retry.append(result)
            elif result.outcome is Outcome.REFUSED:
                log.warning("push to device %s refused: %s", subscription_id, result.detail)
            _record(ctx, subscription_id, result, devices, mailed, now)
            ctx.progress(number, len(pending), f"device {subscription_id}: {result.detail}")
    mail_note = None
    if mail_to is not None:
        link = f"{settings.public_url.rstrip('/')}{PAGE_PATH}{question.recording_id}"
        mail = question_mail(question, link=link, smtp_from=settings.smtp_from, to=mail_to, at=now)
        try:
            send(settings, mail)
            mailed = True
        except MailTemporaryError as exc:
            retry.append(PushResult(Outcome.RETRY, None, f"e-mail: {exc}"))
        except MailPermanentError as exc:  # the push and the inbox still ask
            mail_note = f"e-mail not sent: {exc}"
            mailed = True  # not again: it would be refused again
        with ctx.sessions() as session:
            _save_progress(ctx, devices, mailed, session)
            session.commit()
    if retry:
        waits = [r.retry_after for r in retry if r.retry_after is not None]
        raise RetryLater(
            f"{len(retry)} to try again: {retry[0].detail}", after=max(waits) if waits else None
        )
    outcomes = list(devices.values())
    summary = {
        "asked": True,
        "recording_id": recording_id,
        "pushed": outcomes.count(Outcome.DELIVERED.value),
        "gone": outcomes.count(Outcome.GONE.value),
        "refused": outcomes.count(Outcome.REFUSED.value),
        "mailed": bool(mail_to or mailed) and mail_note is None,
    }
    note = f"asked on {summary['pushed']} device(s)" + (
        f"; {mail_note}" if mail_note else ", by e-mail" if summary["mailed"] else ""
    )
    ctx.progress(1, 1, note)
    return {**summary, "note": note}
