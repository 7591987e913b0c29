"""Answering Playback's question: keep or discard an unsaved recording (SPEC section 6).

After each call of a playback user that no contact list decided, the recording
is stored unsaved for ``UNSAVED_PLAYBACK_DAYS`` and the user is asked
(``playback.ask``: push, inbox, e-mail). ``answer`` applies the one answer:

- **keep**: saved, expiring by the tenant's retention rule counted from the
  call (``retention.rule.retention_expiry``, the same rule the store and the
  slider apply to saved recordings; a minute-quota plan bounds it further
  through the quota purge), audited ``playback.keep``;
- **discard**: the audio deleted at once with a receipt
  (``retention.deletion.delete_audio``, reason ``discarded``), audited
  ``playback.discard``; a legal hold refuses it (409 ``legal-hold-active``).

Answering twice is 409 ``playback-answered`` (the answer is written by a
conditional UPDATE, so two answers racing each other cannot both win); after
the audio expired, 410 ``audio-expired``; a recording that was never asked
(not Playback, or saved already) 409 ``playback-not-asked``.

Answer tokens let a notification's Keep/Discard buttons answer without a
portal session (the service worker POSTs them to ``/api/v1/playback/answer``):
``v1.<recording id>.<user id>.<expiry>.<HMAC-SHA256>``, good for answering
that one recording's question by that one user until the recording's unsaved
expiry, and for nothing else. The HMAC key is the server secret
``playback.action`` in the ``server_secrets`` table (created by migration
0017, else on first use), so every portal and job process agrees on it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from fastapi import Request
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from callvault.db.models import Recording, ServerSecret, Tenant, User, utcnow
from callvault.errors import ApiError, Conflict, ErrorId, Forbidden, NotFound
from callvault.portal.audit import record
from callvault.retention.access import is_audio_available, is_held, require_audio
from callvault.retention.deletion import delete_audio
from callvault.retention.rule import retention_expiry
from callvault.storage.blobs import BlobStore

Answer = Literal["keep", "discard"]
ACTION_SECRET = "playback.action"
TOKEN_MAX = 200  # a token is about 100 characters; anything longer is refused unread
_PURPOSE = b"callvault playback answer v1"
_TOKEN = re.compile(r"^v1\.([0-9a-f]{32})\.([0-9]{1,10})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def action_key(session: Session) -> bytes:
    """The answer tokens' HMAC key (32 bytes), the same in every process.

    Migration 0017 creates it; should the row be missing, the first caller
    creates it (``INSERT .. ON CONFLICT DO NOTHING``, then read back, so two
    processes racing agree). The caller commits.
    """
    value = session.scalar(select(ServerSecret.value).where(ServerSecret.name == ACTION_SECRET))
    if value is None:
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(
            insert(ServerSecret)
            .values(name=ACTION_SECRET, value=_b64(secrets.token_bytes(32)), created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        value = session.scalar(select(ServerSecret.value).where(ServerSecret.name == ACTION_SECRET))
        assert value is not None
    return _unb64(value)


def _mac(key: bytes, recording_id: str, user_id: int, expires: int) -> str:
    message = b"\0".join((_PURPOSE, recording_id.encode(), b"%d" % user_id, b"%d" % expires))
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def action_token(key: bytes, recording_id: str, user_id: int, expires_at: datetime) -> str:
    """A token answering ``recording_id``'s question as ``user_id`` until ``expires_at``."""
    expires = int(_utc(expires_at).timestamp())
    return f"v1.{recording_id}.{user_id}.{expires}.{_mac(key, recording_id, user_id, expires)}"


def recording_action_token(session: Session, recording: Recording) -> str:
    """The token for an unsaved Playback recording's question (``playback.ask``'s push),
    valid until the recording's unsaved expiry."""
    if recording.user_id is None or recording.expires_at is None:
        raise ValueError("only a user's unsaved recording with an expiry is asked")
    return action_token(action_key(session), recording.id, recording.user_id, recording.expires_at)


@dataclass(frozen=True)
class ActionClaim:
    """What a verified token allows: answering this recording as this user."""

    recording_id: str
    user_id: int
    expires_at: datetime


class ActionTokenInvalid(ApiError):
    """403 ``action-token-invalid``: not a token of this server (altered, or made up)."""

    error_id = ErrorId.ACTION_TOKEN_INVALID

    def __init__(self) -> None:
        super().__init__("this answer link is not valid; answer in the portal")


class ActionTokenExpired(ApiError):
    """410 ``action-token-expired``: the question ended with the unsaved recording."""

    error_id = ErrorId.ACTION_TOKEN_EXPIRED

    def __init__(self, expired_at: datetime) -> None:
        super().__init__(
            f"the question expired on {expired_at:%Y-%m-%d %H:%M} UTC with the unsaved recording"
        )


def verify_action_token(key: bytes, token: str, at: datetime) -> ActionClaim:
    """The claim of a genuine, unexpired token; 403 ``action-token-invalid`` for anything
    else (checked in constant time before anything is looked up), 410
    ``action-token-expired`` for a genuine token past its expiry."""
    match = _TOKEN.match(token) if len(token) <= TOKEN_MAX else None
    if match is None:
        raise ActionTokenInvalid()
    recording_id, user_text, expires_text, mac = match.groups()
    user_id, expires = int(user_text), int(expires_text)
    if not hmac.compare_digest(_mac(key, recording_id, user_id, expires).encode(), mac.encode()):
        raise ActionTokenInvalid()
    expires_at = datetime.fromtimestamp(expires, UTC)
    if _utc(at) >= expires_at:
        raise ActionTokenExpired(expires_at)
    return ActionClaim(recording_id, user_id, expires_at)


@dataclass(frozen=True)
class AnswerResult:
    recording_id: str
    answer: Answer
    answered_at: datetime
    saved: bool
    expires_at: datetime | None  # keep: the plan's expiry; discard: None (the audio is gone)
    audio_deleted: bool
    receipt_id: int | None = None  # discard: the deletion receipt


def answered_refusal(recording: Recording) -> Conflict:
    """409 ``playback-answered``, saying what was answered and when."""
    done = "kept" if recording.answer == "keep" else "discarded"
    when = f" on {_utc(recording.answered_at):%Y-%m-%d %H:%M} UTC" if recording.answered_at else ""
    return Conflict(f"this recording was {done} already{when}", error_id=ErrorId.PLAYBACK_ANSWERED)


def is_asked(recording: Recording) -> bool:
    """An unsaved Playback recording: the question is open until answered or expired."""
    return recording.mode == "playback" and not recording.saved and recording.user_id is not None


def kept_expiry(tenant: Tenant, recording: Recording) -> datetime:
    """Where a kept recording's expiry lands: the tenant's retention from the call, as for
    any saved recording (``recording/store.py``, ``rule.recompute_expiry``)."""
    return retention_expiry(
        recording.started_at, tenant.retention_days, tenant.retention_changed_at, tenant.timezone
    )


def answer(
    session: Session,
    blobs: BlobStore,
    recording: Recording,
    user: User,
    answer: Answer,
    at: datetime,
    actor: str,
    *,
    request: Request | None = None,
    via: str = "portal",
) -> AnswerResult:
    """Applies ``user``'s answer to ``recording``'s question, audited; commits.

    ``user`` must be the recording's own user (the caller resolved who may ask;
    anyone else is refused 403 here as well). ``via`` (portal | token) goes to the
    audit row.
    """
    if recording.tenant_id != user.tenant_id:
        raise NotFound("no such recording", error_id=ErrorId.RECORDING_NOT_FOUND)
    if recording.user_id != user.id:
        raise Forbidden(
            "only the recording's own user answers Playback's question",
            error_id=ErrorId.FORBIDDEN,
        )
    if recording.answer is not None:
        raise answered_refusal(recording)
    if not is_asked(recording):
        raise Conflict(
            "this recording was not left unsaved by Playback; nothing to answer",
            error_id=ErrorId.PLAYBACK_NOT_ASKED,
        )
    require_audio(session, recording, at)  # expired or gone: 410 audio-expired
    tenant = session.get(Tenant, recording.tenant_id)
    assert tenant is not None
    if answer == "discard" and is_held(session, recording):
        raise Conflict(
            "a legal hold keeps this recording; it cannot be discarded",
            error_id=ErrorId.LEGAL_HOLD_ACTIVE,
        )
    values: dict[str, object] = {"answer": answer, "answered_at": at}
    if answer == "keep":
        values |= {"saved": True, "expires_at": kept_expiry(tenant, recording)}
    # the first answer wins, also against one arriving at the same moment elsewhere
    won = session.scalar(
        update(Recording)
        .where(Recording.id == recording.id, Recording.answer.is_(None))
        .values(**values)
        .returning(Recording.id)
        .execution_options(synchronize_session=False)
    )
    if won is None:
        session.rollback()
        session.refresh(recording)
        raise answered_refusal(recording)
    session.refresh(recording)
    record(
        session,
        request,
        actor,
        f"playback.{answer}",
        tenant.id,
        target=f"recording:{recording.id}",
        via=via,
    )
    receipt_id: int | None = None
    if answer == "discard":
        # commits the answer, the audit row and the receipt together, then deletes the blob
        receipt = delete_audio(
            session,
            blobs,
            [recording],
            reason="discarded",
            kind="discard",
            actor=actor,
            at=at,
            tenant=tenant,
        )
        receipt_id = receipt.id
        session.refresh(recording)
    else:
        session.commit()
    return AnswerResult(
        recording_id=recording.id,
        answer=answer,
        answered_at=_utc(at),
        saved=recording.saved,
        expires_at=None if answer == "discard" else _utc(kept_expiry(tenant, recording)),
        audio_deleted=not is_audio_available(session, recording, at),
        receipt_id=receipt_id,
    )
