"""Pages of calls and recordings for a principal, and one recording (SPEC section 5).

Who sees what is decided in ``callvault.portal.visibility`` only; this module
applies it with a ``ReportQuery`` (``query``) and turns rows into response
bodies, fetching recording ids, labels and audio state for a whole page at
once. The API routes (``http``) and the page (``pages/reports.py``) both call
``calls_page``, so they can never disagree about visibility or filters.

Reports › Calls lists every call, recorded or not (issue 8 section 5); a row
has play and download only while its recording's audio is available
(``retention.access.audio_available``), else it says why there is none
(``audio``: ``expired`` or ``deleted``). Times are UTC with ``+00:00``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Select, select, tuple_
from sqlalchemy.orm import Session, selectinload

from callvault.db.hints import serial
from callvault.db.models import Call, DtmfEvent, Recording, RecordingLabel, Tenant
from callvault.errors import ErrorId, NotFound
from callvault.portal import visibility
from callvault.portal.api.schemas import DtmfOut, Page, PartyOut, RecordingOut, SegmentOut
from callvault.portal.auth import Principal
from callvault.portal.reports.query import (
    ReportQuery,
    by_id_in,
    decode_cursor,
    encode_cursor,
    plan_call_page,
    recording_conditions,
)
from callvault.portal.reports.schemas import AudioState, CallReportOut
from callvault.retention.access import audio_available


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# --- scope ----------------------------------------------------------------------------


def visible_calls(
    principal: Principal, tenant_id: int, session: Session | None = None
) -> Select[Call]:
    """The calls of ``tenant_id`` that ``principal`` may see."""
    return select(Call).where(_call_scope(principal, tenant_id, session))


def visible_recordings(
    principal: Principal, tenant_id: int, session: Session | None = None
) -> Select[Recording]:
    """The recordings of ``tenant_id`` that ``principal`` may see."""
    return select(Recording).where(_recording_scope(principal, tenant_id, session))


def _user_ids(principal: Principal, tenant_id: int, session: Session | None) -> visibility.UserIds:
    if session is None:  # callers without a session: own calls only for non-admins
        if visibility.sees_whole_tenant(principal) and (
            principal.is_operator or principal.tenant_id == tenant_id
        ):
            return None
        if principal.tenant_id != tenant_id or principal.user_id is None:
            return []
        return [principal.user_id]
    return visibility.visible_user_ids(session, principal, tenant_id)


def _call_scope(
    principal: Principal, tenant_id: int, session: Session | None
) -> ColumnElement[bool]:
    return visibility.call_filter(tenant_id, _user_ids(principal, tenant_id, session))


def _recording_scope(
    principal: Principal, tenant_id: int, session: Session | None
) -> ColumnElement[bool]:
    return visibility.recording_filter(tenant_id, _user_ids(principal, tenant_id, session))


def recording_for(session: Session, principal: Principal, recording_id: str) -> Recording:
    """The recording if ``principal`` may see it; 404 ``recording-not-found`` otherwise."""
    if not re.fullmatch(r"[0-9a-f]{32}", recording_id):
        raise NotFound("no such recording", error_id=ErrorId.RECORDING_NOT_FOUND)
    if principal.is_operator:
        recording = session.get(Recording, recording_id)
    else:
        assert principal.tenant_id is not None
        recording = session.scalar(
            visible_recordings(principal, principal.tenant_id, session).where(
                Recording.id == recording_id
            )
        )
    if recording is None:
        raise NotFound("no such recording", error_id=ErrorId.RECORDING_NOT_FOUND)
    return recording


# --- Reports › Calls -------------------------------------------------------------------


def calls_page(
    session: Session,
    principal: Principal,
    tenant: Tenant,
    query: ReportQuery,
    *,
    limit: int,
    at: datetime,
) -> Page[CallReportOut]:
    """The tenant's calls the principal may see, newest first, one page."""
    filters = query.filters
    fingerprint = filters.fingerprint("calls")
    after = decode_cursor(query.cursor, fingerprint) if query.cursor else None
    users = visibility.narrow(
        visibility.visible_user_ids(session, principal, tenant.id), filters.user_id
    )
    if users == []:
        return Page[CallReportOut](items=[], next_cursor=None)
    with serial(session):  # a page stops early: workers would cost more than they save
        plan = plan_call_page(session, tenant.id, users, filters, after, limit + 1)
        page = list(session.execute(plan.query))
    more = len(page) > limit
    ids = [row[0] for row in page[:limit]]
    found = (
        {
            c.id: c
            for c in session.scalars(
                select(Call).where(by_id_in(Call.tenant_id, tenant.id), Call.id.in_(ids))
            )
        }
        if ids
        else {}
    )
    calls = [found[i] for i in ids]
    recordings = _recordings_of(session, tenant.id, ids, at)
    items = [_call_out(c, recordings, tenant.stream_only) for c in calls]
    next_cursor = encode_cursor(calls[-1].started_at, calls[-1].id, fingerprint) if more else None
    return Page[CallReportOut](items=items, next_cursor=next_cursor)


@dataclass(frozen=True)
class PageRecordings:
    """A page's recordings: ids per call, labels per recording, and per recording
    whether its audio may be reached now (else why not)."""

    by_call: dict[str, list[str]]
    labels: dict[str, list[str]]
    audio: dict[str, AudioState]


def _recordings_of(
    session: Session, tenant_id: int, call_ids: list[str], at: datetime
) -> PageRecordings:
    """Recording ids per call, labels and audio per recording, for a whole page at once."""
    by_call: dict[str, list[str]] = {}
    labels: dict[str, list[str]] = {}
    audio: dict[str, AudioState] = {}
    if not call_ids:
        return PageRecordings(by_call, labels, audio)
    for rec_id, call_id, available, deleted_reason in session.execute(
        select(
            Recording.id,
            Recording.call_id,
            audio_available(at).label("available"),
            Recording.audio_deleted_reason,
        )
        .where(by_id_in(Recording.tenant_id, tenant_id), Recording.call_id.in_(call_ids))
        .order_by(Recording.created_at, Recording.id)
    ):
        by_call.setdefault(call_id, []).append(rec_id)
        audio[rec_id] = _audio_state(bool(available), deleted_reason)
    rec_ids = [r for ids in by_call.values() for r in ids]
    if rec_ids:
        for rec_id, text in session.execute(
            select(RecordingLabel.recording_id, RecordingLabel.text)
            .where(
                by_id_in(RecordingLabel.tenant_id, tenant_id),
                RecordingLabel.recording_id.in_(rec_ids),
            )
            .order_by(RecordingLabel.text)
        ):
            labels.setdefault(rec_id, []).append(text)
    return PageRecordings(by_call, labels, audio)


def _audio_state(available: bool, deleted_reason: str | None) -> AudioState:
    if available:
        return "available"
    # expired, or purged after expiry or over the quota: the report says "audio expired"
    if deleted_reason in (None, "expired", "quota"):
        return "expired"
    return "deleted"


def _call_out(call: Call, recordings: PageRecordings, stream_only: bool) -> CallReportOut:
    started = _utc(call.started_at)
    assert started is not None
    recording_ids = recordings.by_call.get(call.id, [])
    labels = recordings.labels
    # play and download: the first recording whose audio is still there
    playable = [r for r in recording_ids if recordings.audio[r] == "available"]
    first = playable[0] if playable else None
    states = [recordings.audio[r] for r in recording_ids]
    audio: AudioState | None = None
    if states:
        audio = "available" if first else ("expired" if "expired" in states else "deleted")
    return CallReportOut(
        id=call.id,
        tenant_id=call.tenant_id,
        direction=call.direction,
        from_name=call.from_name,
        from_number=call.from_number,
        from_aor=call.from_aor,
        to_name=call.to_name,
        to_number=call.to_number,
        to_aor=call.to_aor,
        started_at=started,
        answered_at=_utc(call.answered_at),
        ended_at=_utc(call.ended_at),
        duration_ms=call.duration_ms,
        recording_ids=recording_ids,
        labels=sorted({t for r in recording_ids for t in labels.get(r, [])}),
        audio=audio,
        audio_url=f"/api/v1/recordings/{first}/audio" if first else None,
        download_url=(
            f"/api/v1/recordings/{first}/audio?download=true" if first and not stream_only else None
        ),
    )


# --- recordings ----------------------------------------------------------------------


def recordings_page(
    session: Session,
    principal: Principal,
    tenant: Tenant,
    query: ReportQuery,
    *,
    limit: int,
) -> Page[RecordingOut]:
    """The recordings the principal may see, newest first; the filters of Reports › Calls."""
    filters = query.filters
    fingerprint = filters.fingerprint("recordings")
    users = visibility.narrow(
        visibility.visible_user_ids(session, principal, tenant.id), filters.user_id
    )
    conditions = recording_conditions(tenant.id, users, filters)
    if query.cursor:
        conditions.append(
            tuple_(Recording.created_at, Recording.id)
            < tuple_(*decode_cursor(query.cursor, fingerprint))
        )
    if users == []:
        return Page[RecordingOut](items=[], next_cursor=None)
    rows = list(
        session.scalars(
            select(Recording)
            .where(*conditions)
            .options(selectinload(Recording.segments))
            .order_by(Recording.created_at.desc(), Recording.id.desc())
            .limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id, fingerprint) if more else None
    return Page[RecordingOut](
        items=_recordings_out(session, tenant.id, rows), next_cursor=next_cursor
    )


def recording_out(session: Session, recording: Recording) -> RecordingOut:
    return _recordings_out(session, recording.tenant_id, [recording])[0]


def _recordings_out(
    session: Session, tenant_id: int, recordings: list[Recording]
) -> list[RecordingOut]:
    """Response bodies for recordings of one tenant: calls, parties and DTMF in three
    queries for the whole list, not three per recording."""
    call_ids = sorted({r.call_id for r in recordings})
    calls = {
        c.id: c
        for c in session.scalars(
            select(Call)
            .where(by_id_in(Call.tenant_id, tenant_id), Call.id.in_(call_ids))
            .options(selectinload(Call.parties))
        )
    }
    dtmf: dict[str, list[DtmfEvent]] = {}
    for event in session.scalars(
        select(DtmfEvent)
        .where(by_id_in(DtmfEvent.tenant_id, tenant_id), DtmfEvent.call_id.in_(call_ids))
        .order_by(DtmfEvent.at_ms, DtmfEvent.id)
    ):
        dtmf.setdefault(event.call_id, []).append(event)
    return [_recording_body(r, calls[r.call_id], dtmf.get(r.call_id, [])) for r in recordings]


def _recording_body(recording: Recording, call: Call, dtmf: list[DtmfEvent]) -> RecordingOut:
    started = _utc(call.started_at)
    created = _utc(recording.created_at)
    assert started is not None and created is not None
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
        started_at=started,
        answered_at=_utc(call.answered_at),
        ended_at=_utc(call.ended_at),
        created_at=created,
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
