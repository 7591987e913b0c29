"""Calls and recordings: Reports › Calls (SPEC section 5) and the recordings list.

Both lists page by keyset on (time desc, id desc), never OFFSET, so a deep
page costs what the first one does. Who sees what is decided in
``callvault.portal.visibility`` only; this module turns request parameters
into filters and rows into response bodies, fetching recording ids and labels
for a whole page at once.

The cursor is opaque: base64url of the last row's position and a checksum over
that position, the list it belongs to and the filters it was made with. A
cursor that was altered, or is replayed with other filters, is refused with
422 ``bad-cursor``. (A forged cursor can only move the caller within rows they
may see anyway: every scope is re-applied from the request.)

Reports › Calls lists every call, recorded or not (issue 8 section 5); a row
has play and download only while its recording's audio is available
(``retention.access.audio_available``), else it says why there is none
(``audio``: ``expired`` or ``deleted``). Times are UTC with ``+00:00``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    SQLColumnExpression,
    exists,
    false,
    func,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.orm import Session, selectinload

from callvault.db.models import Call, DtmfEvent, Recording, RecordingLabel, Tenant
from callvault.errors import InvalidInput, NotFound
from callvault.portal import visibility
from callvault.portal.api.schemas import (
    CallOut,
    DtmfOut,
    Page,
    PartyOut,
    RecordingOut,
    SegmentOut,
)
from callvault.portal.audit import audit
from callvault.portal.auth import CurrentPrincipal, Now, Principal, SessionDep, TenantScope
from callvault.portal.timefmt import UtcDateTime
from callvault.retention.access import audio_available
from callvault.tenants.numbers import to_e164

router = APIRouter(prefix="/api/v1", tags=["calls"])

Limit = Annotated[int, Query(ge=1, le=500, description="rows per page")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="next_cursor of the previous page")
]
Since = Annotated[
    datetime | None,
    Query(alias="from", description="calls started at or after (ISO 8601; no zone: UTC)"),
]
Until = Annotated[
    datetime | None, Query(alias="to", description="calls started before (ISO 8601; no zone: UTC)")
]
UserFilter = Annotated[int | None, Query(ge=1, description="a user who is a party of the call")]
NumberFilter = Annotated[
    str | None,
    Query(min_length=1, max_length=40, description="E.164 or digits; the caller or the callee"),
]
Direction = Annotated[Literal["inbound", "outbound", "internal"] | None, Query()]
LabelFilter = Annotated[
    str | None, Query(min_length=1, max_length=100, description="a label, case-insensitive")
]
Recorded = Annotated[
    bool | None, Query(description="only calls with (true) or without a recording")
]

_NUMBER_CHARS = re.compile(r"[\s\-().]")
_DIGITS = re.compile(r"\+?[0-9]{1,20}")


AudioState = Literal["available", "expired", "deleted"]


class CallReportOut(CallOut):
    """A row of Reports › Calls: the call, its recordings' ids and labels, and for a
    recorded call whose audio is available the URLs of the play and download
    buttons (download is None where the tenant allows streaming only). ``audio``
    is None for a call without a recording."""

    started_at: UtcDateTime
    answered_at: UtcDateTime | None
    ended_at: UtcDateTime | None
    labels: list[str]
    audio: AudioState | None
    audio_url: str | None
    download_url: str | None


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _as_stored(value: datetime) -> datetime:
    """A bound for comparisons with stored times, which are UTC."""
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _by_id_in(column: SQLColumnExpression[int], tenant_id: int) -> ColumnElement[bool]:
    """``column == tenant_id`` for look-ups by a list of ids: the same scope, but no
    index can serve it, so that the planner uses the ids' index rather than walk
    every row of the tenant (SQLite has no statistics to tell which is smaller)."""
    return (column + 0) == tenant_id


def normalise_label(text: str) -> str:
    """A label as annotations store it: trimmed, single spaces (case is kept)."""
    return " ".join(text.split())


def label_is(label: str) -> ColumnElement[bool]:
    """The label ``label``, in any case.

    Labels are stored with their case, so this compares ``lower()`` of both
    sides (the same function, so SQLite's ASCII-only folding agrees with
    itself); ``ix_recording_labels_tenant_lower_text`` makes it one look-up.
    """
    return func.lower(RecordingLabel.text) == func.lower(label)


@dataclass(frozen=True)
class ReportFilters:
    """The validated filters of one list request."""

    since: datetime | None = None
    until: datetime | None = None
    user_id: int | None = None
    number: str | None = None
    direction: str | None = None
    label: str | None = None
    recorded: bool | None = None

    @classmethod
    def parse(
        cls,
        tenant: Tenant,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        user_id: int | None = None,
        number: str | None = None,
        direction: str | None = None,
        label: str | None = None,
        recorded: bool | None = None,
    ) -> ReportFilters:
        since = _as_stored(since) if since is not None else None
        until = _as_stored(until) if until is not None else None
        if since is not None and until is not None and since >= until:
            raise InvalidInput("from: must be before to")
        if number is not None:
            number = _normalise_number(number, tenant.country_code)
        if label is not None:
            label = normalise_label(label)
            if not label:
                raise InvalidInput("label: must not be blank")
        return cls(since, until, user_id, number, direction, label, recorded)

    def fingerprint(self, kind: str) -> str:
        return repr((kind, *(getattr(self, f) for f in self.__dataclass_fields__)))


def _normalise_number(raw: str, country_code: str) -> str:
    """E.164 where the input is a full number; otherwise the digits (an extension)."""
    text = _NUMBER_CHARS.sub("", raw)
    if not _DIGITS.fullmatch(text):
        raise InvalidInput(f"number: {raw!r} is not a phone number (E.164 or digits)")
    return to_e164(text, country_code) or text


def _checksum(payload: str, fingerprint: str) -> str:
    return hashlib.blake2b(
        f"{payload}\n{fingerprint}".encode(), digest_size=9, person=b"cv-cursor-v1"
    ).hexdigest()


def _encode_cursor(at: datetime, row_id: str, fingerprint: str = "") -> str:
    payload = f"{_as_stored(at).isoformat()}|{row_id}"
    raw = f"{payload}|{_checksum(payload, fingerprint)}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, fingerprint: str = "") -> tuple[datetime, str]:
    bad = InvalidInput("cursor: not a cursor of this list and filters", error_id="bad-cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at_text, row_id, check = raw.split("|")
        at = datetime.fromisoformat(at_text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad from exc
    if check != _checksum(f"{at_text}|{row_id}", fingerprint) or at.tzinfo is None:
        raise bad
    return at.astimezone(UTC), row_id


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
    if not re.fullmatch(r"[0-9a-f]{32}", recording_id):
        raise NotFound("no such recording", error_id="recording-not-found")
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
        raise NotFound("no such recording", error_id="recording-not-found")
    return recording


# --- Reports › Calls -------------------------------------------------------------------


# A filter that selects few calls (a user's, a number's, a label's) is answered
# from its own index: its call ids are looked up and sorted ("driving set").
# Otherwise the calls are walked newest first on ix_calls_tenant_started (or
# _direction_started) and each one is checked, which stops after one page. The
# limits are where both cost about the same at 1 M calls (bench/calls_report.py):
# a lookup by id costs about ten steps of the ordered walk, and checking a party
# or a label costs a few more steps than comparing a number.
DRIVE_LIMITS = {"users": 3000, "label": 5000, "number": 2000}


@dataclass(frozen=True)
class CallPagePlan:
    """How one page is fetched: ``driver`` names the driving set, None the walk."""

    driver: str | None
    query: Select[str, datetime]


def _driving_sets(
    tenant_id: int, users: visibility.UserIds, filters: ReportFilters
) -> dict[str, Select[str] | CompoundSelect[str]]:
    sets: dict[str, Select[str] | CompoundSelect[str]] = {}
    if users is not None:
        sets["users"] = visibility.calls_of_users(tenant_id, users)
    if filters.label is not None:
        sets["label"] = (
            select(Recording.call_id)
            .join(RecordingLabel, RecordingLabel.recording_id == Recording.id)
            .where(RecordingLabel.tenant_id == tenant_id, label_is(filters.label))
        )
    if filters.number is not None:
        sets["number"] = union_all(
            select(Call.id).where(Call.tenant_id == tenant_id, Call.from_number == filters.number),
            select(Call.id).where(Call.tenant_id == tenant_id, Call.to_number == filters.number),
        )
    return sets


def _call_conditions(
    tenant_id: int, users: visibility.UserIds, filters: ReportFilters, driver: str | None
) -> list[ColumnElement[bool]]:
    """The filters as checks on one call, but for the driving set's own."""
    conditions: list[ColumnElement[bool]] = []
    if users is not None and driver != "users":
        conditions.append(visibility.has_party(tenant_id, users, Call.id))
    if filters.since is not None:
        conditions.append(Call.started_at >= filters.since)
    if filters.until is not None:
        conditions.append(Call.started_at < filters.until)
    if filters.direction is not None:
        conditions.append(Call.direction == filters.direction)
    if filters.number is not None and driver != "number":
        conditions.append(or_(Call.from_number == filters.number, Call.to_number == filters.number))
    if filters.label is not None and driver != "label":
        # correlated on the call only (indexes on call_id and recording_id);
        # recordings and labels belong to their call's tenant
        conditions.append(
            exists(
                select(RecordingLabel.id).where(
                    Recording.call_id == Call.id,
                    RecordingLabel.recording_id == Recording.id,
                    label_is(filters.label),
                )
            )
        )
    if filters.recorded is not None:
        has_recording = exists(select(Recording.call_id).where(Recording.call_id == Call.id))
        conditions.append(has_recording if filters.recorded else ~has_recording)
    return conditions


def plan_call_page(
    session: Session,
    tenant_id: int,
    users: visibility.UserIds,
    filters: ReportFilters,
    after: tuple[datetime, str] | None,
    limit: int,
) -> CallPagePlan:
    """(id, started_at) of one page of calls after ``after``, newest first."""
    sets = _driving_sets(tenant_id, users, filters)
    driver: str | None = None
    smallest = 0
    for name, ids in sets.items():
        cap = DRIVE_LIMITS[name]
        counted: Select[Any] | CompoundSelect[Any] = ids
        if name == "label" and filters.label is not None:
            # as many as the labels (one per recording): count them in the index
            counted = select(RecordingLabel.id).where(
                RecordingLabel.tenant_id == tenant_id, label_is(filters.label)
            )
        count = session.scalar(select(func.count()).select_from(counted.limit(cap + 1).subquery()))
        assert count is not None
        if count <= cap and (driver is None or count < smallest):
            driver, smallest = name, count
    conditions = _call_conditions(tenant_id, users, filters, driver)
    if driver is None:
        conditions.insert(0, Call.tenant_id == tenant_id)
    else:
        # the same scope, written so that no index of calls can serve it: the
        # planner must start from the driving set's ids
        conditions[:0] = [(Call.tenant_id + 0) == tenant_id, Call.id.in_(sets[driver])]
    if after is not None:
        conditions.append(tuple_(Call.started_at, Call.id) < tuple_(*after))
    query = (
        select(Call.id, Call.started_at)
        .where(*conditions)
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(limit)
    )
    return CallPagePlan(driver, query)


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
        .where(_by_id_in(Recording.tenant_id, tenant_id), Recording.call_id.in_(call_ids))
        .order_by(Recording.created_at, Recording.id)
    ):
        by_call.setdefault(call_id, []).append(rec_id)
        audio[rec_id] = _audio_state(bool(available), deleted_reason)
    rec_ids = [r for ids in by_call.values() for r in ids]
    if rec_ids:
        for rec_id, text in session.execute(
            select(RecordingLabel.recording_id, RecordingLabel.text)
            .where(
                _by_id_in(RecordingLabel.tenant_id, tenant_id),
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


@router.get("/tenants/{tenant_id}/calls", response_model=Page[CallReportOut])
def list_calls(
    tenant: TenantScope,
    principal: CurrentPrincipal,
    session: SessionDep,
    at: Now,
    limit: Limit = 50,
    cursor: Cursor = None,
    since: Since = None,
    until: Until = None,
    user_id: UserFilter = None,
    number: NumberFilter = None,
    direction: Direction = None,
    label: LabelFilter = None,
    recorded: Recorded = None,
) -> Page[CallReportOut]:
    """Reports › Calls: the tenant's calls the caller may see, newest first."""
    filters = ReportFilters.parse(
        tenant,
        since=since,
        until=until,
        user_id=user_id,
        number=number,
        direction=direction,
        label=label,
        recorded=recorded,
    )
    fingerprint = filters.fingerprint("calls")
    after = _decode_cursor(cursor, fingerprint) if cursor else None
    users = visibility.narrow(visibility.visible_user_ids(session, principal, tenant.id), user_id)
    if users == []:
        return Page[CallReportOut](items=[], next_cursor=None)
    plan = plan_call_page(session, tenant.id, users, filters, after, limit + 1)
    page = list(session.execute(plan.query))
    more = len(page) > limit
    ids = [row[0] for row in page[:limit]]
    found = (
        {
            c.id: c
            for c in session.scalars(
                select(Call).where(_by_id_in(Call.tenant_id, tenant.id), Call.id.in_(ids))
            )
        }
        if ids
        else {}
    )
    calls = [found[i] for i in ids]
    recordings = _recordings_of(session, tenant.id, ids, at)
    items = [_call_out(c, recordings, tenant.stream_only) for c in calls]
    next_cursor = _encode_cursor(calls[-1].started_at, calls[-1].id, fingerprint) if more else None
    return Page[CallReportOut](items=items, next_cursor=next_cursor)


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
            .where(_by_id_in(Call.tenant_id, tenant_id), Call.id.in_(call_ids))
            .options(selectinload(Call.parties))
        )
    }
    dtmf: dict[str, list[DtmfEvent]] = {}
    for event in session.scalars(
        select(DtmfEvent)
        .where(_by_id_in(DtmfEvent.tenant_id, tenant_id), DtmfEvent.call_id.in_(call_ids))
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


def _recording_conditions(
    tenant_id: int, users: visibility.UserIds, filters: ReportFilters
) -> list[ColumnElement[bool]]:
    conditions = [visibility.recording_filter(tenant_id, users)]
    if filters.since is not None:
        # created_at >= started_at always, so this bound is safe and lets the
        # scan of ix_recordings_tenant_created stop at the period's start
        conditions += [Recording.started_at >= filters.since, Recording.created_at >= filters.since]
    if filters.until is not None:
        conditions.append(Recording.started_at < filters.until)
    call_conditions: list[ColumnElement[bool]] = []
    if filters.direction is not None:
        call_conditions.append(Call.direction == filters.direction)
    if filters.number is not None:
        call_conditions.append(
            (Call.from_number == filters.number) | (Call.to_number == filters.number)
        )
    if call_conditions:
        conditions.append(
            Recording.call_id.in_(
                select(Call.id).where(Call.tenant_id == tenant_id, *call_conditions)
            )
        )
    if filters.label is not None:
        conditions.append(
            Recording.id.in_(
                select(RecordingLabel.recording_id).where(
                    RecordingLabel.tenant_id == tenant_id, label_is(filters.label)
                )
            )
        )
    if filters.recorded is False:
        conditions.append(false())
    return conditions


@router.get("/tenants/{tenant_id}/recordings", response_model=Page[RecordingOut])
def list_recordings(
    tenant: TenantScope,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    since: Since = None,
    until: Until = None,
    user_id: UserFilter = None,
    number: NumberFilter = None,
    direction: Direction = None,
    label: LabelFilter = None,
    recorded: Recorded = None,
) -> Page[RecordingOut]:
    """The recordings the caller may see, newest first; the filters of Reports › Calls."""
    filters = ReportFilters.parse(
        tenant,
        since=since,
        until=until,
        user_id=user_id,
        number=number,
        direction=direction,
        label=label,
        recorded=recorded,
    )
    fingerprint = filters.fingerprint("recordings")
    users = visibility.narrow(visibility.visible_user_ids(session, principal, tenant.id), user_id)
    conditions = _recording_conditions(tenant.id, users, filters)
    if cursor:
        conditions.append(
            tuple_(Recording.created_at, Recording.id)
            < tuple_(*_decode_cursor(cursor, fingerprint))
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
    next_cursor = _encode_cursor(rows[-1].created_at, rows[-1].id, fingerprint) if more else None
    return Page[RecordingOut](
        items=_recordings_out(session, tenant.id, rows), next_cursor=next_cursor
    )


@router.get("/recordings/{recording_id}", response_model=RecordingOut)
def get_recording(
    recording_id: str, principal: CurrentPrincipal, session: SessionDep, request: Request
) -> RecordingOut:
    """One recording's metadata; each view is audited (``recording.view``)."""
    recording = recording_for(session, principal, recording_id)
    out = recording_out(session, recording)
    target = f"recording:{recording.id}"
    audit(session, request, principal, "recording.view", recording.tenant_id, target=target)
    session.commit()
    return out
