"""Calls and recordings: lists with keyset paging, metadata, audio with Range.

Visibility (SPEC section 1) is decided in ``visible_*`` only: operators and
tenant admins see the whole tenant, everyone else their own calls.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.orm import Session, selectinload

from callvault.db.models import Call, CallParty, DtmfEvent, Recording
from callvault.errors import InvalidInput, NotFound
from callvault.portal.api.schemas import (
    CallOut,
    DtmfOut,
    Page,
    PartyOut,
    RecordingOut,
    SegmentOut,
)
from callvault.portal.auth import CurrentPrincipal, Principal, SessionDep, TenantScope

router = APIRouter(prefix="/api/v1", tags=["calls"])

Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=200)]


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _encode_cursor(at: datetime, row_id: str) -> str:
    raw = f"{_utc(at).isoformat()}|{row_id}"  # type: ignore[union-attr]
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(at), row_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("the cursor is not valid", error_id="bad-cursor") from exc


def _sees_whole_tenant(principal: Principal) -> bool:
    return principal.role in ("operator", "admin")


def visible_calls(principal: Principal, tenant_id: int) -> Select[Call]:
    query = select(Call).where(Call.tenant_id == tenant_id)
    if not _sees_whole_tenant(principal):
        query = query.where(
            exists().where(CallParty.call_id == Call.id, CallParty.user_id == principal.user_id)
        )
    return query


def visible_recordings(principal: Principal, tenant_id: int) -> Select[Recording]:
    query = select(Recording).where(Recording.tenant_id == tenant_id)
    if not _sees_whole_tenant(principal):
        query = query.where(
            or_(
                Recording.user_id == principal.user_id,
                exists().where(
                    CallParty.call_id == Recording.call_id,
                    CallParty.user_id == principal.user_id,
                ),
            )
        )
    return query


def recording_for(session: Session, principal: Principal, recording_id: str) -> Recording:
    if not re.fullmatch(r"[0-9a-f]{32}", recording_id):
        raise NotFound("no such recording", error_id="recording-not-found")
    if principal.is_operator:
        recording = session.get(Recording, recording_id)
    else:
        assert principal.tenant_id is not None
        recording = session.scalar(
            visible_recordings(principal, principal.tenant_id).where(Recording.id == recording_id)
        )
    if recording is None:
        raise NotFound("no such recording", error_id="recording-not-found")
    return recording


@router.get("/tenants/{tenant_id}/calls", response_model=Page[CallOut])
def list_calls(
    tenant: TenantScope,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[CallOut]:
    query = visible_calls(principal, tenant.id)
    if cursor:
        at, row_id = _decode_cursor(cursor)
        query = query.where(
            or_(Call.started_at < at, and_(Call.started_at == at, Call.id < row_id))
        )
    calls = list(
        session.scalars(query.order_by(Call.started_at.desc(), Call.id.desc()).limit(limit + 1))
    )
    more = len(calls) > limit
    calls = calls[:limit]
    rec_ids: dict[str, list[str]] = {}
    if calls:
        for rec_id, call_id in session.execute(
            select(Recording.id, Recording.call_id).where(
                Recording.tenant_id == tenant.id, Recording.call_id.in_([c.id for c in calls])
            )
        ):
            rec_ids.setdefault(call_id, []).append(rec_id)
    items = [
        CallOut(
            id=c.id,
            tenant_id=c.tenant_id,
            direction=c.direction,
            from_name=c.from_name,
            from_number=c.from_number,
            from_aor=c.from_aor,
            to_name=c.to_name,
            to_number=c.to_number,
            to_aor=c.to_aor,
            started_at=_utc(c.started_at),
            answered_at=_utc(c.answered_at),
            ended_at=_utc(c.ended_at),
            duration_ms=c.duration_ms,
            recording_ids=rec_ids.get(c.id, []),
        )
        for c in calls
    ]
    next_cursor = _encode_cursor(calls[-1].started_at, calls[-1].id) if more else None
    return Page[CallOut](items=items, next_cursor=next_cursor)


def recording_out(session: Session, recording: Recording) -> RecordingOut:
    call = session.scalar(
        select(Call)
        .where(Call.tenant_id == recording.tenant_id, Call.id == recording.call_id)
        .options(selectinload(Call.parties))
    )
    assert call is not None
    dtmf = session.scalars(
        select(DtmfEvent)
        .where(DtmfEvent.tenant_id == recording.tenant_id, DtmfEvent.call_id == call.id)
        .order_by(DtmfEvent.at_ms)
    )
    return RecordingOut(
        id=recording.id,
        tenant_id=recording.tenant_id,
        call_id=recording.call_id,
        user_id=recording.user_id,
        format=recording.format,
        sha256=recording.sha256,
        size_bytes=recording.size_bytes,
        duration_ms=recording.duration_ms,
        channels=recording.channels,
        sample_rate=recording.sample_rate,
        codecs=[c for c in recording.codecs.split(",") if c],
        started_at=_utc(call.started_at),
        answered_at=_utc(call.answered_at),
        ended_at=_utc(call.ended_at),
        created_at=_utc(recording.created_at),
        parties=[
            PartyOut(
                participant_id=p.participant_id,
                aor=p.aor,
                name=p.name,
                number=p.number,
                user_id=p.user_id,
                side=p.side,
                joined_ms=p.joined_ms,
                left_ms=p.left_ms,
            )
            for p in call.parties
        ],
        segments=[
            SegmentOut(
                call_start_ms=s.call_start_ms,
                call_end_ms=s.call_end_ms,
                file_start_ms=s.file_start_ms,
                file_end_ms=s.file_end_ms,
            )
            for s in recording.segments
        ],
        dtmf=[
            DtmfOut(
                stream_index=d.stream_index,
                digit=d.digit,
                at_ms=d.at_ms,
                duration_ms=d.duration_ms,
                source=d.source,
            )
            for d in dtmf
        ],
        audio_url=f"/api/v1/recordings/{recording.id}/audio",
        mode=recording.mode,
        saved=recording.saved,
        kept_reason=recording.kept_reason,
        expires_at=_utc(recording.expires_at),
    )


@router.get("/tenants/{tenant_id}/recordings", response_model=Page[RecordingOut])
def list_recordings(
    tenant: TenantScope,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[RecordingOut]:
    query = visible_recordings(principal, tenant.id).options(selectinload(Recording.segments))
    if cursor:
        at, row_id = _decode_cursor(cursor)
        query = query.where(
            or_(
                Recording.created_at < at,
                and_(Recording.created_at == at, Recording.id < row_id),
            )
        )
    rows = list(
        session.scalars(
            query.order_by(Recording.created_at.desc(), Recording.id.desc()).limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode_cursor(rows[-1].created_at, rows[-1].id) if more else None
    return Page[RecordingOut](
        items=[recording_out(session, r) for r in rows], next_cursor=next_cursor
    )


@router.get("/recordings/{recording_id}", response_model=RecordingOut)
def get_recording(
    recording_id: str, principal: CurrentPrincipal, session: SessionDep
) -> RecordingOut:
    return recording_out(session, recording_for(session, principal, recording_id))
