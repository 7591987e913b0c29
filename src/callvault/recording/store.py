"""Persisting a finished call: blob first, then the rows, idempotently.

The spool directory is deleted by the caller only after this committed, so a
crash at any point leads to the spool being finished again at start-up; the
call id (the spool's uuid) makes the second attempt replace, not duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from callvault.db.models import Call, CallParty, DtmfEvent, Recording, Segment
from callvault.recording.finisher import FinishedAudio
from callvault.recording.journal import Event, Party, party_from_dict
from callvault.storage.blobs import BlobStore


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
    dtmf: list[dict[str, Any]]
    not_recorded_reason: str | None = None

    @property
    def recorded(self) -> bool:
        return self.tenant_id is not None and self.recorded_user_id is not None


def summarise(events: list[Event], fallback_end_ms: int) -> CallSummary:
    start = next((e for e in events if e.type == "start"), None)
    if start is None:
        raise ValueError("the journal has no start event")
    data = start.data
    parties = [party_from_dict(p) for p in data.get("parties", [])]
    tenant_id = data.get("tenant_id")
    user_id = data.get("recorded_user_id")
    unrecorded_because = data.get("not_recorded_reason")
    changes: list[tuple[int, list[Party]]] = [(0, parties)]
    answered: int | None = None
    end_ms, reason = fallback_end_ms, "recovered"
    dtmf: list[dict[str, Any]] = []
    for event in events:
        if event.type == "answer" and answered is None:
            answered = event.t
        elif event.type == "parties":
            parties = [party_from_dict(p) for p in event.data.get("parties", [])]
            changes.append((event.t, parties))
            # the recording belongs to the first recorded user; later ones see it as parties
            if user_id is None:
                tenant_id = event.data.get("tenant_id", tenant_id)
                user_id = event.data.get("recorded_user_id")
                unrecorded_because = event.data.get("not_recorded_reason", unrecorded_because)
        elif event.type == "dtmf":
            dtmf.append({"t": event.t, **event.data})
        elif event.type == "end":
            end_ms, reason = event.t, str(event.data.get("reason", "bye"))
    return CallSummary(
        call_uuid=str(data["call_uuid"]),
        tenant_id=tenant_id,
        recorded_user_id=user_id,
        sip_call_id=str(data.get("sip_call_id", "")),
        recording_session_id=data.get("recording_session_id"),
        started_at=datetime.fromtimestamp(int(data["started_at"]) / 1000, UTC),
        answered_ms=answered,
        ended_ms=max(end_ms, answered or 0),
        end_reason=reason,
        parties=parties,
        party_changes=changes,
        dtmf=dtmf,
        not_recorded_reason=unrecorded_because,
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
    calls in one (the blob is written first either way).
    """
    assert summary.tenant_id is not None
    tenant_id = summary.tenant_id
    at = summary.started_at
    first = summary.parties[0] if summary.parties else None
    second = summary.parties[1] if len(summary.parties) > 1 else None
    # Core inserts: this runs for every call, so no unit-of-work bookkeeping here
    session.execute(
        insert(Call),
        [
            {
                "id": summary.call_uuid,
                "tenant_id": tenant_id,
                "sip_call_id": summary.sip_call_id[:255],
                "recording_session_id": summary.recording_session_id,
                "direction": _direction(summary.parties),
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
    for t, parties in summary.party_changes:
        current = {p.participant_id for p in parties}
        for party in parties:
            if party.participant_id not in seen:
                seen[party.participant_id] = {
                    "tenant_id": tenant_id,
                    "call_id": summary.call_uuid,
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
        session.execute(insert(CallParty), list(seen.values()))
    digits = _digits(summary, audio)
    if digits:
        session.execute(
            insert(DtmfEvent),
            [{"tenant_id": tenant_id, "call_id": summary.call_uuid, **d} for d in digits],
        )
    recording_id: str | None = None
    if audio is not None and not audio.empty:
        key = f"{tenant_id}/{at:%Y/%m/%d}/{summary.call_uuid}.mp3"
        blobs.put(key, audio.mp3)
        recording = Recording(
            id=summary.call_uuid,
            tenant_id=tenant_id,
            call_id=summary.call_uuid,
            user_id=summary.recorded_user_id,
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
        recording_id = recording.id
    if commit:
        session.commit()
    else:
        session.flush()
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
            "stream_index": -1 if d.get("stream") is None else int(d["stream"]),
            "digit": str(d.get("digit", "?"))[:2],
            "at_ms": int(d["t"]),
            "duration_ms": int(d.get("duration_ms", 0)),
            "source": str(d.get("source", "rfc4733"))[:16],
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
