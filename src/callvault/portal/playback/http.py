"""Playback's API (SPEC section 6): answer the question, the inbox, the home screen, lists.

- ``POST /api/v1/recordings/{id}/keep`` and ``/discard``: the recording's own
  user, by portal session (with CSRF) or bearer token. An admin or a team lead
  who sees the recording gets 403 (the question is the user's alone); anyone
  who does not see it 404.
- ``POST /api/v1/playback/answer`` ``{"token", "answer"}``: a notification's
  Keep/Discard button, posted by the service worker without opening the
  portal. No cookie is needed and none is looked at, so there is no CSRF
  check, by design: CSRF abuses credentials a browser attaches by itself,
  and this route has none; its only authority is the token in the body,
  which a forging site cannot know (``playback/answers.py``: HMAC-bound to
  one recording, one user and the recording's unsaved expiry). It is
  bounded rather than rate-limited: the body is a small JSON object (the
  token at most ``TOKEN_MAX`` characters, refused unread beyond), the MAC is
  checked in constant time before any recording is looked up, and each
  recording takes one answer only.
- ``GET /api/v1/me/inbox``: the open questions (count and the newest items).
- ``GET /api/v1/me/recordings``: the home screen, newest first, keyset-paged,
  each with its mark (unsaved / saved / standard).
- ``GET/POST/DELETE /api/v1/me/contacts``: the user's own blacklist and
  whitelist (as ``/tenants/{t}/users/{id}/contacts``, which admins use);
  audited, the SIP side's directory reloaded at once.

Every answer is audited (``playback.keep`` / ``playback.discard``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from callvault.playback.answers import Answer
from callvault.portal.auth import MAX_ID, Now, SessionDep
from callvault.portal.contacts import ContactIn, ContactOut
from callvault.portal.playback import services
from callvault.portal.playback.schemas import AnswerOut, HomePage, InboxOut, TokenAnswerIn
from callvault.portal.roles import TenantMember

router = APIRouter(prefix="/api/v1", tags=["playback"])

RecordingId = Annotated[str, Path(min_length=1, max_length=32)]
ContactId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _answer(
    recording_id: str,
    reply: Answer,
    principal: TenantMember,
    session: SessionDep,
    request: Request,
    at: Now,
) -> AnswerOut:
    blobs = request.app.state.context.blobs
    return services.answer_own(session, blobs, principal, recording_id, reply, at, request)


@router.post("/recordings/{recording_id}/keep", response_model=AnswerOut)
def keep_recording(
    recording_id: RecordingId,
    principal: TenantMember,
    session: SessionDep,
    request: Request,
    at: Now,
) -> AnswerOut:
    """Keep an unsaved Playback recording for the plan's period."""
    return _answer(recording_id, "keep", principal, session, request, at)


@router.post("/recordings/{recording_id}/discard", response_model=AnswerOut)
def discard_recording(
    recording_id: RecordingId,
    principal: TenantMember,
    session: SessionDep,
    request: Request,
    at: Now,
) -> AnswerOut:
    """Discard an unsaved Playback recording: its audio is deleted at once, with a receipt."""
    return _answer(recording_id, "discard", principal, session, request, at)


@router.post("/playback/answer", response_model=AnswerOut)
def answer_with_token(
    body: TokenAnswerIn, session: SessionDep, request: Request, at: Now
) -> AnswerOut:
    """A notification's Keep/Discard: the token is the authority (no cookie, no CSRF)."""
    blobs = request.app.state.context.blobs
    return services.answer_by_token(session, blobs, body.token, body.answer, at, request)


@router.get("/me/inbox", response_model=InboxOut)
def my_inbox(principal: TenantMember, session: SessionDep, at: Now) -> InboxOut:
    return services.inbox(session, principal, at)


@router.get("/me/recordings", response_model=HomePage)
def my_recordings(
    principal: TenantMember,
    session: SessionDep,
    at: Now,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=services.HOME_LIMIT_MAX)] = 50,
) -> HomePage:
    return services.home_page(session, principal, at, cursor=cursor, limit=limit)


@router.get("/me/contacts", response_model=list[ContactOut])
def my_contacts(principal: TenantMember, session: SessionDep) -> list[ContactOut]:
    return services.my_contacts(session, principal)


@router.post("/me/contacts", response_model=ContactOut, status_code=201)
def add_my_contact(
    body: ContactIn, principal: TenantMember, session: SessionDep, request: Request
) -> ContactOut:
    contact = services.add_my_contact(session, request, principal, body)
    request.app.state.context.on_directory_change()
    return contact


@router.delete("/me/contacts/{contact_id}", status_code=204)
def remove_my_contact(
    contact_id: ContactId, principal: TenantMember, session: SessionDep, request: Request
) -> Response:
    services.remove_my_contact(session, request, principal, contact_id)
    request.app.state.context.on_directory_change()
    return Response(status_code=204)
