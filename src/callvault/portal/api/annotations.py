"""Labels and comments on a recording (SPEC section 5).

Whoever can see a recording (``reports.service.recording_for``: 404 for foreign or
invisible ids) may read its labels and comments; writing needs a tenant
account (the operator reads but does not annotate customers' recordings).
Every change is audited.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from callvault.db.models import Call, RecordingComment, RecordingLabel, User
from callvault.errors import Conflict, ErrorId, InvalidInput, NotFound
from callvault.portal.api.schemas import Strict
from callvault.portal.audit import audit
from callvault.portal.auth import CurrentPrincipal, DbId, Now, SessionDep, as_utc
from callvault.portal.reports.service import recording_for
from callvault.portal.roles import TenantMember
from callvault.portal.timefmt import UtcDateTime

router = APIRouter(prefix="/api/v1/recordings/{recording_id}", tags=["annotations"])

MAX_LABEL_LENGTH = 100
MAX_LABELS = 20
MAX_COMMENT_LENGTH = 4000
LabelId = DbId


class LabelIn(Strict):
    text: str = Field(min_length=1, max_length=400, description="at most 100 characters")


class LabelOut(BaseModel):
    id: int
    text: str


class CommentIn(Strict):
    text: str = Field(min_length=1, max_length=MAX_COMMENT_LENGTH)


class CommentOut(BaseModel):
    id: int
    user_id: int | None
    author: str | None
    text: str
    created_at: UtcDateTime


def normalise_label(text: str) -> str:
    label = " ".join(text.split())
    if not label:
        raise InvalidInput("text: a label cannot be blank", error_id=ErrorId.INVALID_INPUT)
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidInput(
            f"text: a label may have at most {MAX_LABEL_LENGTH} characters",
            error_id=ErrorId.LABEL_TOO_LONG,
        )
    return label


@router.get("/labels", response_model=list[LabelOut])
def list_labels(
    recording_id: str, principal: CurrentPrincipal, session: SessionDep
) -> list[LabelOut]:
    recording = recording_for(session, principal, recording_id)
    rows = session.scalars(
        select(RecordingLabel)
        .where(
            RecordingLabel.tenant_id == recording.tenant_id,
            RecordingLabel.recording_id == recording.id,
        )
        .order_by(RecordingLabel.text)
    )
    return [LabelOut(id=r.id, text=r.text) for r in rows]


@router.post("/labels", response_model=LabelOut, status_code=201)
def add_label(
    recording_id: str,
    body: LabelIn,
    principal: TenantMember,
    session: SessionDep,
    request: Request,
) -> LabelOut:
    recording = recording_for(session, principal, recording_id)
    text = normalise_label(body.text)
    scope = (
        RecordingLabel.tenant_id == recording.tenant_id,
        RecordingLabel.recording_id == recording.id,
    )
    if session.scalar(select(RecordingLabel.id).where(*scope, RecordingLabel.text == text)):
        raise Conflict("the recording has this label already", error_id=ErrorId.LABEL_EXISTS)
    count = session.scalar(select(func.count()).select_from(RecordingLabel).where(*scope)) or 0
    if count >= MAX_LABELS:
        raise InvalidInput(
            f"a recording may have at most {MAX_LABELS} labels", error_id=ErrorId.TOO_MANY_LABELS
        )
    label = RecordingLabel.of(recording, session.get_one(Call, recording.call_id), text)
    session.add(label)
    session.flush()
    audit(
        session,
        request,
        principal,
        "label.add",
        recording.tenant_id,
        target=f"recording:{recording.id}",
        label=text,
    )
    session.commit()
    return LabelOut(id=label.id, text=label.text)


@router.delete("/labels/{label_id}", status_code=204)
def remove_label(
    recording_id: str,
    label_id: LabelId,
    principal: TenantMember,
    session: SessionDep,
    request: Request,
) -> Response:
    recording = recording_for(session, principal, recording_id)
    label = session.scalar(
        select(RecordingLabel).where(
            RecordingLabel.tenant_id == recording.tenant_id,
            RecordingLabel.recording_id == recording.id,
            RecordingLabel.id == label_id,
        )
    )
    if label is None:
        raise NotFound("no such label", error_id=ErrorId.LABEL_NOT_FOUND)
    session.delete(label)
    audit(
        session,
        request,
        principal,
        "label.remove",
        recording.tenant_id,
        target=f"recording:{recording.id}",
        label=label.text,
    )
    session.commit()
    return Response(status_code=204)


@router.get("/comments", response_model=list[CommentOut])
def list_comments(
    recording_id: str, principal: CurrentPrincipal, session: SessionDep
) -> list[CommentOut]:
    recording = recording_for(session, principal, recording_id)
    rows = session.execute(
        select(RecordingComment, User.name)
        .outerjoin(
            User,
            (User.id == RecordingComment.user_id) & (User.tenant_id == RecordingComment.tenant_id),
        )
        .where(
            RecordingComment.tenant_id == recording.tenant_id,
            RecordingComment.recording_id == recording.id,
        )
        .order_by(RecordingComment.created_at, RecordingComment.id)
    )
    return [
        CommentOut(
            id=c.id,
            user_id=c.user_id,
            author=name,
            text=c.text,
            created_at=as_utc(c.created_at),
        )
        for c, name in rows
    ]


@router.post("/comments", response_model=CommentOut, status_code=201)
def add_comment(
    recording_id: str,
    body: CommentIn,
    principal: TenantMember,
    session: SessionDep,
    request: Request,
    at: Now,
) -> CommentOut:
    recording = recording_for(session, principal, recording_id)
    text = body.text.strip()
    if not text:
        raise InvalidInput("text: a comment cannot be blank", error_id=ErrorId.INVALID_INPUT)
    comment = RecordingComment(
        tenant_id=recording.tenant_id,
        recording_id=recording.id,
        user_id=principal.user_id,
        text=text,
        created_at=at,
    )
    session.add(comment)
    session.flush()
    audit(
        session,
        request,
        principal,
        "comment.add",
        recording.tenant_id,
        target=f"recording:{recording.id}",
        comment_id=comment.id,
    )
    session.commit()
    return CommentOut(
        id=comment.id, user_id=comment.user_id, author=principal.name, text=text, created_at=at
    )
