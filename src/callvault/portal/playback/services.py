"""Playback's services for the API and the pages (SPEC section 6).

- ``answer_own`` / ``answer_by_token``: the user's answer from the portal (their
  own recording only: someone else who may see it gets 403, anybody else 404)
  or from a notification's button (the token decides, ``playback/answers.py``).
- ``inbox``: the user's open questions (unsaved, unanswered Playback recordings
  whose audio is still there), newest first.
- ``home_page``: the home screen, newest first by keyset: the user's own
  recordings and, for a listener who is not a playback user, the standard
  recordings of the members of the teams they lead (``visibility``), each
  with its colour mark; expired or deleted audio is left out.
- ``my_contacts`` / ``add_my_contact`` / ``remove_my_contact``: the user's own
  blacklist and whitelist (never kept, never asked / always kept, never asked).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from fastapi import Request
from sqlalchemy import ColumnElement, and_, func, or_, select, tuple_
from sqlalchemy.orm import Session

from callvault.db.models import Call, CallParty, Recording, User
from callvault.errors import ErrorId, Forbidden, NotFound
from callvault.playback.answers import (
    Answer,
    AnswerResult,
    action_key,
    answer,
    verify_action_token,
)
from callvault.portal import contacts
from callvault.portal.auth import Principal, user_principal
from callvault.portal.contacts import ContactIn, ContactOut
from callvault.portal.playback.schemas import (
    AnswerOut,
    HomePage,
    HomeRecording,
    InboxItem,
    InboxOut,
    Mark,
    OtherParty,
)
from callvault.portal.reports.query import decode_cursor, encode_cursor
from callvault.portal.reports.service import recording_for
from callvault.portal.visibility import visible_user_ids
from callvault.retention.access import audio_available
from callvault.storage.blobs import BlobStore

INBOX_ITEMS = 100  # the inbox lists this many; ``count`` counts them all
HOME_LIMIT_MAX = 100
PLAYBACK = "playback"


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _me(session: Session, principal: Principal) -> User:
    if principal.user_id is None:
        raise Forbidden("this is a tenant user's own", error_id=ErrorId.ROLE_REQUIRED)
    user = session.get(User, principal.user_id)
    if user is None or user.tenant_id != principal.tenant_id:
        raise NotFound("no such user", error_id=ErrorId.USER_NOT_FOUND)
    return user


def answer_out(result: AnswerResult) -> AnswerOut:
    return AnswerOut(
        recording_id=result.recording_id,
        answer=result.answer,
        answered_at=result.answered_at,
        saved=result.saved,
        expires_at=result.expires_at,
        audio_deleted=result.audio_deleted,
    )


def answer_own(
    session: Session,
    blobs: BlobStore,
    principal: Principal,
    recording_id: str,
    reply: Answer,
    at: datetime,
    request: Request | None = None,
) -> AnswerOut:
    """The logged-in user answers their own recording's question."""
    recording = recording_for(session, principal, recording_id)  # not visible: 404
    if principal.user_id is None or recording.user_id != principal.user_id:
        # an admin or a team lead sees it, but the question is the user's alone
        raise Forbidden(
            "only the recording's own user answers Playback's question",
            error_id=ErrorId.FORBIDDEN,
        )
    user = _me(session, principal)
    return answer_out(
        answer(session, blobs, recording, user, reply, at, principal.actor(), request=request)
    )


def answer_by_token(
    session: Session,
    blobs: BlobStore,
    token: str,
    reply: Answer,
    at: datetime,
    request: Request | None = None,
) -> AnswerOut:
    """A notification's button: the token names the recording and the user."""
    claim = verify_action_token(action_key(session), token, at)
    recording = session.get(Recording, claim.recording_id)
    user = session.get(User, claim.user_id)
    if recording is None or user is None or recording.user_id != user.id:
        raise NotFound("no such recording", error_id=ErrorId.RECORDING_NOT_FOUND)
    principal = user_principal(session, user)  # deactivated: 401; suspended tenant: 403
    return answer_out(
        answer(
            session,
            blobs,
            recording,
            user,
            reply,
            at,
            principal.actor(),
            request=request,
            via="token",
        )
    )


# --- the other party of each recording --------------------------------------------------


def other_parties(session: Session, recordings: Sequence[Recording]) -> dict[str, OtherParty]:
    """Recording id -> the other party of its call (name, number), two queries in all."""
    if not recordings:
        return {}
    tenant_id = recordings[0].tenant_id
    call_ids = sorted({r.call_id for r in recordings})
    calls = {
        c.id: c
        for c in session.scalars(
            select(Call).where(Call.tenant_id == tenant_id, Call.id.in_(call_ids))
        )
    }
    parties: dict[str, list[CallParty]] = {}
    for party in session.scalars(
        select(CallParty)
        .where(CallParty.tenant_id == tenant_id, CallParty.call_id.in_(call_ids))
        .order_by(CallParty.id)
    ):
        parties.setdefault(party.call_id, []).append(party)
    out: dict[str, OtherParty] = {}
    for recording in recordings:
        others = [
            p
            for p in parties.get(recording.call_id, [])
            if p.user_id is None or p.user_id != recording.user_id
        ]
        others.sort(key=lambda p: p.side != "other")  # the other side first
        if others and (others[0].name or others[0].number):
            out[recording.id] = OtherParty(name=others[0].name, number=others[0].number)
            continue
        call = calls.get(recording.call_id)
        if call is None:
            out[recording.id] = OtherParty(name=None, number=None)
        elif call.direction == "outbound":
            out[recording.id] = OtherParty(name=call.to_name, number=call.to_number)
        else:
            out[recording.id] = OtherParty(name=call.from_name, number=call.from_number)
    return out


# --- the inbox ----------------------------------------------------------------------------


def open_questions(tenant_id: int, user_id: int, at: datetime) -> ColumnElement[bool]:
    """SQL: the user's unsaved, unanswered Playback recordings whose audio is there."""
    return and_(
        Recording.tenant_id == tenant_id,
        Recording.user_id == user_id,
        Recording.mode == PLAYBACK,
        Recording.saved.is_(False),
        Recording.answer.is_(None),
        audio_available(at),
    )


def inbox_count(session: Session, principal: Principal, at: datetime) -> int:
    """How many questions the user has open (the top bar's count)."""
    if principal.tenant_id is None or principal.user_id is None:
        return 0
    where = open_questions(principal.tenant_id, principal.user_id, at)
    return int(session.scalar(select(func.count()).select_from(Recording).where(where)) or 0)


def inbox(session: Session, principal: Principal, at: datetime) -> InboxOut:
    user = _me(session, principal)
    where = open_questions(user.tenant_id, user.id, at)
    rows = list(
        session.scalars(
            select(Recording)
            .where(where)
            .order_by(Recording.started_at.desc(), Recording.id.desc())
            .limit(INBOX_ITEMS)
        )
    )
    party = other_parties(session, rows)
    return InboxOut(
        count=inbox_count(session, principal, at),
        items=[
            InboxItem(
                recording_id=r.id,
                other_party=party[r.id],
                started_at=_utc(r.started_at),
                expires_at=_utc(r.expires_at) if r.expires_at else None,
                duration_ms=r.duration_ms,
            )
            for r in rows
        ],
    )


# --- the home screen ----------------------------------------------------------------------


def mark_of(recording: Recording) -> Mark:
    if recording.mode != PLAYBACK:
        return "standard"
    return "saved" if recording.saved else "unsaved"


def home_scope(session: Session, principal: Principal, user: User) -> ColumnElement[bool]:
    """SQL: the recordings on ``user``'s home screen (audio availability aside)."""
    own = Recording.user_id == user.id
    if principal.role != "listener" or user.recording_mode == PLAYBACK:
        return and_(Recording.tenant_id == user.tenant_id, own)
    members = [
        u for u in visible_user_ids(session, principal, user.tenant_id) or [] if u != user.id
    ]
    if not members:
        return and_(Recording.tenant_id == user.tenant_id, own)
    standard = or_(Recording.mode.is_(None), Recording.mode != PLAYBACK)
    return and_(
        Recording.tenant_id == user.tenant_id,
        or_(own, and_(Recording.user_id.in_(members), standard)),
    )


def home_page(
    session: Session, principal: Principal, at: datetime, *, cursor: str | None, limit: int
) -> HomePage:
    user = _me(session, principal)
    fingerprint = f"me-recordings:{user.id}"
    query = select(Recording).where(home_scope(session, principal, user), audio_available(at))
    if cursor:
        query = query.where(
            tuple_(Recording.started_at, Recording.id) < tuple_(*decode_cursor(cursor, fingerprint))
        )
    rows = list(
        session.scalars(
            query.order_by(Recording.started_at.desc(), Recording.id.desc()).limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    party = other_parties(session, rows)
    items = []
    for r in rows:
        mark = mark_of(r)
        left = None
        if mark == "unsaved" and r.expires_at is not None:
            left = max(0, int((_utc(r.expires_at) - at).total_seconds()))
        items.append(
            HomeRecording(
                recording_id=r.id,
                call_id=r.call_id,
                user_id=r.user_id,
                own=r.user_id == user.id,
                mark=mark,
                time_left_s=left,
                other_party=party[r.id],
                started_at=_utc(r.started_at),
                expires_at=_utc(r.expires_at) if r.expires_at else None,
                duration_ms=r.duration_ms,
            )
        )
    next_cursor = (
        encode_cursor(_utc(rows[-1].started_at), rows[-1].id, fingerprint) if more else None
    )
    return HomePage(items=items, next_cursor=next_cursor)


# --- the user's own lists -----------------------------------------------------------------


def my_contacts(session: Session, principal: Principal) -> list[ContactOut]:
    return contacts.contacts_of(session, _me(session, principal))


def add_my_contact(
    session: Session, request: Request, principal: Principal, body: ContactIn
) -> ContactOut:
    """Adds to the user's own list, audited (``contacts.add``); commits."""
    return contacts.add_contact(session, request, principal, _me(session, principal), body)


def remove_my_contact(
    session: Session, request: Request, principal: Principal, contact_id: int
) -> None:
    """Removes from the user's own lists, audited (``contacts.remove``); commits."""
    contacts.remove_contact(session, request, principal, _me(session, principal), contact_id)
