"""Persisting a finished call: blob first, then the rows, idempotently.

The spool directory is deleted by the caller only after this committed, so a
crash at any point leads to the spool being finished again at start-up; the
call id (the spool's uuid) makes the second attempt replace, not duplicate.

A call with several recordings (journal ``recordings``, SPEC section 2) gives
each tenant its own ``Call`` row and each kept recording its ``Recording``
row. Every tenant a party belongs to (journal ``tenants``) gets its ``Call``
row and parties even when nobody of it was recorded, and a call nobody was
recorded in is stored the same way, without audio: Reports › Calls lists
every call callvault saw for the tenant (SPEC section 5).

Ids stay deterministic so a re-finish replaces them: the first tenant's
call (the journal's ``tenant_id``) keeps the spool's uuid, another tenant's is
``uuid5(call uuid, tenant)``; a tenant's first recording has its call's id,
a further one ``uuid5(call uuid, key)``. A tenant's rows name only its own
users: another tenant's user is a party without ``user_id``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from callvault.db.models import (
    Call,
    CallParty,
    DtmfEvent,
    Recording,
    Segment,
    Tenant,
    User,
    utcnow,
)
from callvault.recording.after import after_recording_stored
from callvault.recording.finisher import FinishedAudio
from callvault.recording.journal import Dtmf, JournalEvent, Party
from callvault.recording.replay import replay
from callvault.retention.rule import retention_expiry
from callvault.storage.blobs import BlobStore

_IDS = uuid.UUID("5d8e9a52-3c1b-4f0e-9a57-6b2f0c1d7e43")  # namespace of derived row ids


@dataclass
class RecordingSummary:
    """One recording key of the journal: whose it is and who held it."""

    key: str
    tenant_id: int
    user_id: int  # the first user (a transfer keeps the key)
    user_ids: set[int] = field(default_factory=set)
    participant_ids: set[str] = field(default_factory=set)


@dataclass
class CallSummary:
    """What the journal says about a call, independent of its audio."""

    call_uuid: str
    tenant_id: int | None
    recorded_user_id: int | None
    sip_call_id: str
    recording_session_id: str | None
    started_at: datetime
    answered_ms: int | None
    ended_ms: int
    end_reason: str
    parties: list[Party]
    party_changes: list[tuple[int, list[Party]]]
    dtmf: list[Dtmf]
    not_recorded_reason: str | None = None
    multi: bool = False  # the journal lists ``recordings`` (then they decide)
    recordings: list[RecordingSummary] = field(default_factory=list)
    # every tenant a party belongs to (journal ``tenants`` and ``tenant_id``), recorded or not
    party_tenants: list[int] = field(default_factory=list)

    @property
    def recorded(self) -> bool:
        if self.multi:
            return bool(self.recordings)
        return self.tenant_id is not None and self.recorded_user_id is not None

    def tenants(self) -> list[int]:
        """The tenants with a recording in this call, the first one first, then every
        other tenant a party belongs to (its call is listed, without audio)."""
        tenants = list(dict.fromkeys(r.tenant_id for r in self.recordings))
        if self.tenant_id in tenants:
            tenants.remove(self.tenant_id)
            tenants.insert(0, self.tenant_id)
        return tenants + [t for t in dict.fromkeys(self.party_tenants) if t not in tenants]

    @property
    def listed(self) -> bool:
        """Whether some tenant's Reports › Calls lists this call (a party is its)."""
        return bool(self.tenants()) if self.multi else self.tenant_id is not None

    def call_id(self, tenant_id: int) -> str:
        """The tenant's ``Call`` row id: the spool's uuid for the first tenant."""
        if not self.multi or tenant_id == self.tenants()[0]:
            return self.call_uuid
        return uuid.uuid5(_IDS, f"{self.call_uuid}/{tenant_id}").hex

    def call_ids(self) -> list[str]:
        return [self.call_id(t) for t in self.tenants()] if self.multi else [self.call_uuid]

    def recording_id(self, key: str) -> str:
        """A recording's row id: its call's id for the tenant's first recording."""
        recording = next(r for r in self.recordings if r.key == key)
        first = next(r for r in self.recordings if r.tenant_id == recording.tenant_id)
        if first is recording:
            return self.call_id(recording.tenant_id)
        return uuid.uuid5(_IDS, f"{self.call_uuid}/{key}").hex


def summarise(events: Iterable[JournalEvent], fallback_end_ms: int) -> CallSummary:
    """The call's rows as its journal's replay tells them (``replay.py``);
    ``fallback_end_ms`` ends a call whose journal has no ``end`` (a crash)."""
    facts = replay(events)
    if not facts.has_start:
        raise ValueError("the journal has no start event")
    ended = facts.end_ms if facts.end_ms is not None else fallback_end_ms
    return CallSummary(
        call_uuid=facts.call_uuid,
        tenant_id=facts.tenant_id,
        recorded_user_id=facts.recorded_user_id,
        sip_call_id=facts.sip_call_id,
        recording_session_id=facts.recording_session_id,
        started_at=datetime.fromtimestamp(facts.started_at_ms / 1000, UTC),
        answered_ms=facts.answered_ms,
        ended_ms=max(ended, facts.answered_ms or 0),
        end_reason=facts.end_reason if facts.end_reason is not None else "recovered",
        parties=facts.parties,
        party_changes=facts.party_changes,
        dtmf=facts.dtmf,
        not_recorded_reason=facts.not_recorded_reason,
        multi=facts.multi,
        recordings=[
            RecordingSummary(r.key, r.tenant_id, r.users[0][1], r.user_ids, r.participant_ids)
            for r in facts.recordings.values()
        ],
        party_tenants=facts.party_tenants,
    )


def _direction(parties: list[Party]) -> str:
    users = [p for p in parties if p.user_id is not None]
    if len(users) >= 2:
        return "internal"
    if parties and parties[0].user_id is not None:
        return "outbound"
    return "inbound" if users else "unknown"


def persist_call(
    session: Session,
    blobs: BlobStore,
    summary: CallSummary,
    audio: FinishedAudio | None,
    *,
    commit: bool = True,
) -> str | None:
    """Write the call (and its recording when there is audio); return the recording id.

    ``commit=False`` leaves the transaction open so a caller can store several
    calls in one (the blob is written first either way). For a journal with
    ``recordings`` use ``persist_finished``.
    """
    assert summary.tenant_id is not None
    tenant_id = summary.tenant_id
    digits = _digits(summary, audio)
    _write_call(session, summary, tenant_id, summary.call_uuid, summary.party_changes, digits)
    recording_id: str | None = None
    if audio is not None and not audio.empty:
        recording_id = _write_recording(
            session,
            blobs,
            summary,
            tenant_id,
            summary.call_uuid,
            summary.call_uuid,
            summary.recorded_user_id,
            audio,
        )
    if commit:
        session.commit()
    else:
        session.flush()
    return recording_id


def persist_finished(
    session: Session,
    blobs: BlobStore,
    summary: CallSummary,
    audios: Sequence[FinishedAudio] | None,
    *,
    commit: bool = True,
) -> list[str]:
    """Write every tenant's call and every kept recording (``audios``: what
    ``finish_all`` returned, None when the call had no RTP); return the recording
    ids, the first tenant's first. A one-recording journal goes to ``persist_call``."""
    if not summary.multi:
        first = audios[0] if audios else None
        stored = persist_call(session, blobs, summary, first, commit=commit)
        return [] if stored is None else [stored]
    by_key = {a.key: a for a in audios or () if a.key is not None}
    foreign = _foreign_users(session, summary)
    ids: list[str] = []
    for tenant_id in summary.tenants():
        call_id = summary.call_id(tenant_id)
        mine = [r for r in summary.recordings if r.tenant_id == tenant_id]
        changes = [
            (t, _as_seen_by(parties, mine, foreign[tenant_id]))
            for t, parties in summary.party_changes
        ]
        keyed = next((by_key[r.key] for r in mine if r.key in by_key), None)
        _write_call(session, summary, tenant_id, call_id, changes, _digits(summary, keyed))
        for recording in mine:
            audio = by_key.get(recording.key)
            if audio is None or audio.empty:
                continue
            ids.append(
                _write_recording(
                    session,
                    blobs,
                    summary,
                    tenant_id,
                    call_id,
                    summary.recording_id(recording.key),
                    recording.user_id,
                    audio,
                )
            )
    if commit:
        session.commit()
    else:
        session.flush()
    return ids


def _foreign_users(session: Session, summary: CallSummary) -> dict[int, set[int]]:
    """Per tenant of the call, the parties' user ids that are not its own users.

    Recorded users are known from the journal; any other matched user (not on a
    recording list) is looked up, only when there is one."""
    tenant_of = {u: r.tenant_id for r in summary.recordings for u in r.user_ids}
    named = {
        p.user_id for _t, parties in summary.party_changes for p in parties if p.user_id is not None
    }
    unknown = named - tenant_of.keys()
    if unknown:
        rows = session.execute(select(User.id, User.tenant_id).where(User.id.in_(unknown)))
        tenant_of.update({user_id: tenant for user_id, tenant in rows})
    return {
        tenant: {u for u in named if tenant_of.get(u) != tenant} for tenant in summary.tenants()
    }


def _as_seen_by(
    parties: list[Party], mine: list[RecordingSummary], foreign: set[int]
) -> list[Party]:
    """The parties as one tenant's call lists them: its own recorded users' side is
    "user"; another tenant's user is just a party (no user id crosses tenants)."""
    own = {pid for r in mine for pid in r.participant_ids}
    return [
        replace(
            p,
            user_id=None if p.user_id in foreign else p.user_id,
            side="user" if p.participant_id in own else "other",
        )
        for p in parties
    ]


def _write_call(
    session: Session,
    summary: CallSummary,
    tenant_id: int,
    call_id: str,
    party_changes: list[tuple[int, list[Party]]],
    digits: list[dict[str, Any]],
) -> None:
    """The tenant's ``Call`` row with its parties and key presses."""
    at = summary.started_at
    parties = party_changes[-1][1] if party_changes else []
    first = parties[0] if parties else None
    second = parties[1] if len(parties) > 1 else None
    # Core inserts: this runs for every call, so no unit-of-work bookkeeping here
    session.execute(
        insert(Call),
        [
            {
                "id": call_id,
                "tenant_id": tenant_id,
                "sip_call_id": summary.sip_call_id[:255],
                "recording_session_id": summary.recording_session_id,
                "direction": _direction(parties),
                "from_name": first.name if first else None,
                "from_number": first.number if first else None,
                "from_aor": first.aor if first else None,
                "to_name": second.name if second else None,
                "to_number": second.number if second else None,
                "to_aor": second.aor if second else None,
                "started_at": at,
                "answered_at": at + timedelta(milliseconds=summary.answered_ms)
                if summary.answered_ms is not None
                else None,
                "ended_at": at + timedelta(milliseconds=summary.ended_ms),
                "duration_ms": summary.ended_ms - (summary.answered_ms or 0),
                "end_reason": summary.end_reason,
            }
        ],
    )
    seen: dict[str, dict[str, Any]] = {}
    for t, current_parties in party_changes:
        current = {p.participant_id for p in current_parties}
        for party in current_parties:
            if party.participant_id not in seen:
                seen[party.participant_id] = {
                    "tenant_id": tenant_id,
                    "call_id": call_id,
                    "participant_id": party.participant_id[:255],
                    "aor": party.aor,
                    "name": party.name,
                    "number": party.number,
                    "user_id": party.user_id,
                    "side": party.side,
                    "joined_ms": t,
                    "left_ms": None,
                }
        for pid, row in seen.items():
            if pid not in current and row["left_ms"] is None:
                row["left_ms"] = t
    if seen:
        # render_nulls: every party in one executemany (else the rows are grouped by
        # which of their columns are None: a user and a number were two INSERTs)
        session.execute(insert(CallParty).execution_options(render_nulls=True), list(seen.values()))
    if digits:
        session.execute(
            insert(DtmfEvent),
            [{"tenant_id": tenant_id, "call_id": call_id, **d} for d in digits],
        )


def _write_recording(
    session: Session,
    blobs: BlobStore,
    summary: CallSummary,
    tenant_id: int,
    call_id: str,
    recording_id: str,
    user_id: int | None,
    audio: FinishedAudio,
) -> str:
    """The blob first, then the ``Recording`` row with its segments."""
    at = summary.started_at
    key = f"{tenant_id}/{at:%Y/%m/%d}/{recording_id}.mp3"
    blobs.put(key, audio.mp3)
    recording = Recording(
        id=recording_id,
        tenant_id=tenant_id,
        call_id=call_id,
        user_id=user_id,
        blob_key=key,
        sha256=audio.sha256,
        size_bytes=len(audio.mp3),
        duration_ms=audio.duration_ms,
        channels=audio.channels,
        sample_rate=audio.sample_rate,
        codecs=",".join(audio.codecs),
        started_at=at,
    )
    if audio.policy is not None:
        recording.mode = audio.policy.mode
        recording.kept_reason = audio.policy.reason[:255]
        recording.saved = not audio.policy.unsaved
        if audio.policy.expires_days is not None:
            # an unsaved playback recording goes whatever the retention slider says
            recording.expires_at = at + timedelta(days=audio.policy.expires_days)
    tenant = session.get(Tenant, tenant_id)
    if tenant is not None and recording.expires_at is None:
        recording.expires_at = retention_expiry(
            at, tenant.retention_days, tenant.retention_changed_at, tenant.timezone
        )
    recording.segments = [
        Segment(
            ordinal=i,
            call_start_ms=s.call_start_ms,
            call_end_ms=s.call_end_ms,
            file_start_ms=s.file_start_ms,
            file_end_ms=s.file_end_ms,
        )
        for i, s in enumerate(audio.segments)
    ]
    session.add(recording)
    if tenant is not None:
        after_recording_stored(session, recording, tenant, utcnow())
    return recording_id


def _digits(summary: CallSummary, audio: FinishedAudio | None) -> list[dict[str, Any]]:
    """The call's key presses: the finisher's merged list (journal + in-band, each
    key once) when the policy ran, else the journal's."""
    if audio is not None and audio.policy is not None:
        return [
            {
                "stream_index": -1 if k.stream is None else k.stream,
                "digit": k.digit[:2],
                "at_ms": k.t,
                "duration_ms": k.duration_ms,
                "source": k.source[:16],
            }
            for k in audio.policy.keys
        ]
    return [
        {
            "stream_index": -1 if d.stream is None else d.stream,
            "digit": d.digit[:2],
            "at_ms": d.t,
            "duration_ms": d.duration_ms,
            "source": d.source[:16],
        }
        for d in summary.dtmf
    ]


def delete_call(session: Session, call_id: str) -> None:
    """Remove a call's rows so that finishing it again replaces them (crash retry)."""
    recordings = select(Recording.id).where(Recording.call_id == call_id)
    session.execute(delete(Segment).where(Segment.recording_id.in_(recordings)))
    session.execute(delete(Recording).where(Recording.call_id == call_id))
    session.execute(delete(DtmfEvent).where(DtmfEvent.call_id == call_id))
    session.execute(delete(CallParty).where(CallParty.call_id == call_id))
    session.execute(delete(Call).where(Call.id == call_id))
