"""Turns a call's spool into the recording's MP3 and metadata (SPEC 3, 4).

``finish(reader)`` is a plain, CPU-bound function: the caller runs it in a
thread or process pool, never on the event loop. Steps: read the journal (a
spool without an ``end`` event is a crash: the call ends with its last
audio), work out the recorded segments (answer, or start, to end, minus
pauses), lay every stream on the call timeline, sum streams into the user's
side (left) and the other party's (right), keep the chosen channels, join the
segments (``cut``) or keep the call's timeline with silence in the pauses
(``silence``), encode MP3 and hash it.

File time 0 is call time ``segments[0].call_start_ms``; the MP3 carries a LAME
gapless tag, so decoders that honour it (see ``mp3.py``) keep that exact.

``finish_all(reader)`` finishes every recording of a call (SPEC section 2,
"Matching parties": each recorded user gets their own, under their own
policy, with that user on the left). Decoding and the call timeline are done
once per call; each recording then gets its own channel plan (streams whose
sender is its user's participant go left, the other attributed streams
right, a single mixed stream stays mixed), its own policy run (only its
user's keys count as "user" keys), its own mix, MP3 and hash. A journal
without ``recordings`` gives one result, exactly what ``finish`` gives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from callvault.media.dtmf import DtmfDigit
from callvault.media.inband_dtmf import detect_keys
from callvault.policy.live import CaptureGate
from callvault.recording.journal import (
    Channel,
    Codec,
    Event,
    StreamLayout,
    recordings_from,
    stream_from_dict,
)
from callvault.recording.mp3 import encode_mp3
from callvault.recording.policy_apply import (
    KeyPress,
    PolicyOutcome,
    Side,
    decide,
    journal_keys,
    merge_keys,
    side_at,
)
from callvault.recording.spool import SpoolReader
from callvault.recording.timeline import StreamAudio, StreamTimeline

PauseMode = Literal["cut", "silence"]
Channels = Literal["both", "user", "other", "mix"]
Interval = tuple[int, int]
CODE_MARGIN_MS = 30  # around the short code's key presses, cut with the tones
FOREVER_MS = 2**62
T = TypeVar("T")


@dataclass
class Segment:
    """A recorded stretch: where it was in the call and where it is in the file."""

    call_start_ms: int
    call_end_ms: int
    file_start_ms: int
    file_end_ms: int


@dataclass
class FinishedAudio:
    mp3: bytes
    sha256: str
    duration_ms: int  # of the file
    call_duration_ms: int  # recorded span of the call: answer (or start) to end
    segments: list[Segment]
    channels: int
    sample_rate: int
    codecs: list[str]
    dtmf: list[dict[str, Any]]
    started_at_ms: int  # wall clock (unix epoch ms) of call time 0
    answered_ms: int | None  # call time of the answer
    ended_ms: int  # call time of the end
    stream_stats: dict[int, dict[str, int]] = field(default_factory=dict)
    empty: bool = False  # no audio at all in the recorded segments: ``mp3`` is b""
    end_reason: str | None = None
    policy: PolicyOutcome | None = None  # None: no policy in the journal (record it all)
    key: str | None = None  # the journal's recording key; None: a one-recording journal
    tenant_id: int | None = None  # whose recording (set with ``key``)
    user_id: int | None = None  # the recording's first user (set with ``key``)


@dataclass
class _StreamPlan:
    """What the journal says about one stream over the call."""

    index: int
    codecs: list[tuple[int, Mapping[int, Codec]]] = field(default_factory=list)
    channels: list[tuple[int, Channel]] = field(default_factory=list)
    senders: list[tuple[int, str | None]] = field(default_factory=list)  # participant sending
    paused: list[Interval] = field(default_factory=list)


@dataclass
class _RecordingPlan:
    """What the journal says about one recording (one ``recordings`` key) over the call."""

    key: str
    tenant_id: int
    users: list[tuple[int, int]]  # (t, user) changes: a transfer keeps the key
    participants: list[tuple[int, str]]  # (t, the user's participant) changes
    policy: dict[str, Any]  # merged snapshots of the user's tenant
    present: list[list[int | None]]  # [since, until or None]: while the user is in the call

    def presence(self) -> list[Interval]:
        return [(int(a or 0), FOREVER_MS if b is None else b) for a, b in self.present]


@dataclass
class _Journal:
    started_at_ms: int = 0
    start_ms: int = 0
    answered_ms: int | None = None
    end_ms: int | None = None
    end_reason: str | None = None
    last_event_ms: int = 0
    plans: dict[int, _StreamPlan] = field(default_factory=dict)
    paused: list[Interval] = field(default_factory=list)  # whole-recording pauses
    dtmf: list[dict[str, Any]] = field(default_factory=list)
    policy: dict[str, Any] | None = None  # merged policy snapshots (modes of every user)
    users: list[tuple[int, int]] = field(default_factory=list)  # (t, recorded user) changes
    parties: list[dict[str, Any]] = field(default_factory=list)  # everyone who took part
    multi: bool = False  # the journal lists ``recordings``: one result per key
    recordings: dict[str, _RecordingPlan] = field(default_factory=dict)  # in order of appearance
    party_ids: set[str] = field(default_factory=set)  # participants named so far
    captured: CaptureGate | None = None  # the live gate; None: an old spool (all captured)
    record_now: dict[int, list[list[int]]] = field(default_factory=dict)  # tenant -> [on, off]


def _read_journal(events: Iterable[Event]) -> _Journal:
    journal = _Journal()
    layouts: dict[int, StreamLayout] = {}
    global_pause: int | None = None
    stream_pause: dict[int, int] = {}  # stream -> paused since (pause events)
    inactive: dict[int, int] = {}  # stream -> inactive since (streams events)
    all_paused_since: int | None = None

    def plan(index: int) -> _StreamPlan:
        return journal.plans.setdefault(index, _StreamPlan(index))

    def close(index: int, since: int, t: int) -> None:
        if t > since:
            plan(index).paused.append((since, t))

    def apply_layout(t: int, streams: list[dict[str, Any]], channels_from: int | None) -> None:
        # ``channels_from``: the sides became known only now (the recorded user was
        # named late, e.g. by a metadata UPDATE) but hold since that time (0: all call)
        since = t if channels_from is None else channels_from
        for raw in streams:
            layout = stream_from_dict(raw)
            previous = layouts.get(layout.index)
            layouts[layout.index] = layout
            p = plan(layout.index)
            if previous is None or previous.codecs != layout.codecs:
                p.codecs.append((t, layout.codecs))
            if previous is None or previous.channel != layout.channel:
                p.channels = [(at, ch) for at, ch in p.channels if at < since]
                p.channels.append((since, layout.channel))
            if previous is None or previous.participant_id != layout.participant_id:
                p.senders = [(at, pid) for at, pid in p.senders if at < since]
                p.senders.append((since, layout.participant_id))
            if not layout.active:
                inactive.setdefault(layout.index, t)
            elif layout.index in inactive:
                close(layout.index, inactive.pop(layout.index), t)

    def all_paused() -> bool:
        if global_pause is not None:
            return True
        return bool(layouts) and all(i in stream_pause or i in inactive for i in layouts)

    for event in sorted(events, key=lambda e: e.t):
        t = event.t
        journal.last_event_ms = max(journal.last_event_ms, t)
        data = event.data
        if event.type in ("start", "parties"):
            _note_parties(journal, t, data)
        if event.type == "start":
            journal.start_ms = t
            journal.started_at_ms = int(data.get("started_at", 0))
            apply_layout(t, list(data.get("streams", [])), None)
        elif event.type == "answer":
            if journal.answered_ms is None:
                journal.answered_ms = t
        elif event.type == "streams":
            since = data.get("channels_from")
            apply_layout(t, list(data.get("streams", [])), None if since is None else int(since))
        elif event.type in ("pause", "resume"):
            stream = data.get("stream")
            if event.type == "pause":
                if stream is None:
                    if global_pause is None:
                        global_pause = t
                else:
                    stream_pause.setdefault(int(stream), t)
            elif stream is None:
                global_pause = None
                for index, since in stream_pause.items():
                    close(index, since, t)
                stream_pause.clear()
            elif int(stream) in stream_pause:
                close(int(stream), stream_pause.pop(int(stream)), t)
        elif event.type == "dtmf":
            journal.dtmf.append({"t": t, **data})
        elif event.type == "capture":
            if journal.captured is None:
                journal.captured = CaptureGate()
            journal.captured.set(t, bool(data.get("open")))
        elif event.type == "record_now":
            _note_record_now(journal, t, data)
        elif event.type == "end" and journal.end_ms is None:
            journal.end_ms = t
            journal.end_reason = data.get("reason")
        # One place decides whether the whole recording is paused.
        now_paused = all_paused()
        if now_paused and all_paused_since is None:
            all_paused_since = t
        elif not now_paused and all_paused_since is not None:
            if t > all_paused_since:
                journal.paused.append((all_paused_since, t))
            all_paused_since = None
    end = journal.end_ms if journal.end_ms is not None else None
    if all_paused_since is not None:
        journal.paused.append((all_paused_since, FOREVER_MS if end is None else end))
    for index, since in [*stream_pause.items(), *inactive.items()]:
        plan(index).paused.append((since, FOREVER_MS))
    return journal


def _note_record_now(journal: _Journal, t: int, data: Mapping[str, Any]) -> None:
    """LiveCenter's record now (and stop) of one tenant: windows that tenant's
    recordings keep whatever their user's mode would (``policy_apply.decide``)."""
    windows = journal.record_now.setdefault(int(data.get("tenant_id") or 0), [])
    recording = bool(windows) and windows[-1][1] == FOREVER_MS
    if data.get("on") and not recording:
        windows.append([t, FOREVER_MS])
    elif not data.get("on") and recording:
        windows[-1][1] = t


def _note_parties(journal: _Journal, t: int, data: Mapping[str, Any]) -> None:
    snapshot = data.get("policy")
    if snapshot:
        if journal.policy is None:
            journal.policy = {**snapshot, "modes": dict(snapshot.get("modes", {}))}
        else:
            journal.policy["modes"].update(snapshot.get("modes", {}))
            journal.policy.setdefault("contacts", {}).update(snapshot.get("contacts", {}))
    user = data.get("recorded_user_id")
    if user is not None and (not journal.users or journal.users[-1][1] != user):
        # named late (no user before): the first user's policy holds from the start
        journal.users.append((0 if not journal.users else t, int(user)))
    _note_recordings(journal, t, data)
    journal.parties.extend(data.get("parties", []))
    journal.party_ids.update(
        str(p["participant_id"]) for p in data.get("parties", []) if "participant_id" in p
    )


def _note_recordings(journal: _Journal, t: int, data: Mapping[str, Any]) -> None:
    """Follow each recording key: its user, their participant, their policy and
    while they are in the call. A key seen first later in the call holds from the
    start when its participant was already in the call (named late, as Avaya
    does) or when no recording existed yet; a participant who joined later (a
    transfer to another tenant's user) is recorded from their arrival only."""
    refs = recordings_from(data)
    if refs is None:
        return
    journal.multi = True
    listed = set()
    for ref in refs:
        listed.add(ref.key)
        plan = journal.recordings.get(ref.key)
        if plan is None:
            joined_late = bool(journal.recordings) and ref.participant_id not in journal.party_ids
            since = t if joined_late else 0
            snapshot = ref.policy
            journal.recordings[ref.key] = _RecordingPlan(
                key=ref.key,
                tenant_id=ref.tenant_id,
                users=[(since, ref.user_id)],
                participants=[(since, ref.participant_id)],
                policy={
                    **snapshot,
                    "modes": dict(snapshot.get("modes", {})),
                    "contacts": dict(snapshot.get("contacts", {})),
                },
                present=[[since, None]],
            )
            continue
        if plan.users[-1][1] != ref.user_id:
            plan.users.append((t, ref.user_id))
        if plan.participants[-1][1] != ref.participant_id:
            plan.participants.append((t, ref.participant_id))
        plan.policy["modes"].update(ref.policy.get("modes", {}))
        plan.policy["contacts"].update(ref.policy.get("contacts", {}))
        if plan.present[-1][1] is not None:  # back in the call
            plan.present.append([t, None])
    for key, plan in journal.recordings.items():
        if key not in listed and plan.present[-1][1] is None:
            plan.present[-1][1] = t  # the user left the call: their recording ends


def _subtract(span: Interval, holes: list[Interval]) -> list[Interval]:
    start, end = span
    result: list[Interval] = []
    cursor = start
    for a, b in sorted(holes):
        if b <= cursor or a >= end:
            continue
        if a > cursor:
            result.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < end:
        result.append((cursor, end))
    return result


def _ms_to_sample(ms: int, rate: int) -> int:
    return ms * rate // 1000


def _stream_parts(
    audio: StreamAudio, plan: _StreamPlan, sides: list[tuple[int, Channel]], length: int
) -> list[tuple[Channel, npt.NDArray[np.int16]]]:
    """The stream as full-length int16 parts, one per channel it was assigned to
    (``sides``: the stream's channel history in the recording being made)."""
    samples = np.zeros(length, dtype=np.int16)
    n = min(length, len(audio.samples))
    samples[:n] = audio.samples[:n]
    for since, until in plan.paused:  # a stream paused on its own is muted
        samples[_ms_to_sample(max(since, 0), audio.rate) : _ms_to_sample(until, audio.rate)] = 0
    channels = sides or [(0, "mix")]
    if len(channels) == 1:
        return [(channels[0][1], samples)]
    parts: list[tuple[Channel, npt.NDArray[np.int16]]] = []
    for k, (since, channel) in enumerate(channels):
        start = 0 if k == 0 else _ms_to_sample(since, audio.rate)
        stop = length
        if k + 1 < len(channels):
            stop = min(stop, _ms_to_sample(channels[k + 1][0], audio.rate))
        if stop > start:
            part = np.zeros(length, dtype=np.int16)
            part[start:stop] = samples[start:stop]
            parts.append((channel, part))
    return parts


def _sum(parts: list[npt.NDArray[np.int16]], length: int) -> npt.NDArray[np.int16]:
    """Sum of int16 signals, clipped (no copy for the usual single contributor)."""
    if not parts:
        return np.zeros(length, dtype=np.int16)
    if len(parts) == 1:
        return parts[0]
    total = parts[0].astype(np.int32)
    for part in parts[1:]:
        total += part
    return np.clip(total, -32768, 32767).astype(np.int16)


_SIDES: dict[str, tuple[tuple[Channel, ...], ...]] = {
    "both": (("left", "mix"), ("right", "mix")),
    "user": (("left", "mix"),),
    "other": (("right", "mix"),),
    "mix": (("left", "right", "mix"),),
}


@dataclass
class _Decoded:
    """A call decoded once: the journal, every stream on the call timeline, its span."""

    journal: _Journal
    audios: dict[int, StreamAudio]
    rate: int
    begin_ms: int
    end_ms: int
    inband: dict[int, list[DtmfDigit]] = field(default_factory=dict)  # streams listened to

    def inband_keys(self, index: int) -> list[DtmfDigit]:
        """In-band keys of a stream, detected once however many recordings ask."""
        found = self.inband.get(index)
        if found is None:
            audio = self.audios[index]
            found = self.inband[index] = detect_keys(audio.samples, audio.rate, index)
        return found


def _decode(reader: SpoolReader) -> _Decoded:
    journal = _read_journal(reader.events())
    timelines: dict[int, StreamTimeline] = {}
    for index in reader.stream_indexes():
        plan = journal.plans.setdefault(index, _StreamPlan(index))
        history = plan.codecs or [(0, {})]
        timeline = StreamTimeline(history[0][1], codec_history=history[1:])
        for arrival_ms, raw in reader.packets(index):
            timeline.feed(arrival_ms, raw)
        timeline.finish()
        timelines[index] = timeline
    rate = max((t.native_rate for t in timelines.values()), default=8000)
    audios = {index: t.render(rate) for index, t in timelines.items()}

    last_audio_ms = max((a.last_ms or 0 for a in audios.values()), default=0)
    if journal.end_ms is not None:
        end_ms = journal.end_ms
    else:  # crash recovery: the call lasted as long as its audio (or its journal)
        end_ms = max(last_audio_ms, journal.last_event_ms)
    begin_ms = journal.answered_ms if journal.answered_ms is not None else journal.start_ms
    return _Decoded(journal, audios, rate, begin_ms, end_ms)


def finish(
    reader: SpoolReader,
    *,
    pause_mode: PauseMode | None = None,
    channels: Channels | None = None,
    bitrate_kbps: int = 32,
) -> FinishedAudio:
    """Finish one spooled call as one recording (the journal's first): see the module
    docstring. ``pause_mode``/``channels`` default to the tenant's settings in the
    journal's policy snapshot (else cut, both). CPU-bound: run off the loop."""
    decoded = _decode(reader)
    journal = decoded.journal
    return _render(
        decoded,
        {index: plan.channels for index, plan in journal.plans.items()},
        policy=journal.policy if journal.users else None,
        users=journal.users,
        pause_mode=pause_mode,
        channels=channels,
        bitrate_kbps=bitrate_kbps,
    )


def finish_all(reader: SpoolReader, *, bitrate_kbps: int = 32) -> list[FinishedAudio]:
    """Every recording of a spooled call, in the order the journal named them (one
    per ``recordings`` key; an empty list when the journal lists none). A journal
    without ``recordings`` gives ``[finish(reader)]``. CPU-bound: run off the loop."""
    decoded = _decode(reader)
    journal = decoded.journal
    if not journal.multi:
        return [
            _render(
                decoded,
                {index: plan.channels for index, plan in journal.plans.items()},
                policy=journal.policy if journal.users else None,
                users=journal.users,
                bitrate_kbps=bitrate_kbps,
            )
        ]
    results = []
    first = True
    for recording in journal.recordings.values():
        sides = {
            index: _recording_channels(plan, recording) for index, plan in journal.plans.items()
        }

        def side_of_participant(pid: str, t: int, recording: _RecordingPlan = recording) -> Side:
            return "user" if pid == _value_at(recording.participants, t, None) else "other"

        result = _render(
            decoded,
            sides,
            policy=recording.policy,
            users=recording.users,
            presence=recording.presence(),
            forced=[(a, b) for a, b in journal.record_now.get(recording.tenant_id, [])],
            side_of_participant=side_of_participant,
            # a key nobody can attribute (SIP INFO) counts for the first recording only
            unattributed=None if first else "other",
            bitrate_kbps=bitrate_kbps,
        )
        result.key, result.tenant_id = recording.key, recording.tenant_id
        result.user_id = recording.users[0][1]
        results.append(result)
        first = False
    return results


def _value_at(history: Sequence[tuple[int, T]], t: int, default: T) -> T:
    """The value a (since, value) history holds at ``t``; its first value before it."""
    current = history[0][1] if history else default
    for since, value in history:
        if since > t:
            break
        current = value
    return current


def _recording_channels(plan: _StreamPlan, recording: _RecordingPlan) -> list[tuple[int, Channel]]:
    """Where a stream goes in one recording: left while its sender is that
    recording's user, right otherwise; a mixed stream (the call's only one) stays mixed."""
    times = sorted(
        {0}
        | {t for t, _ in plan.channels}
        | {t for t, _ in plan.senders}
        | {t for t, _ in recording.participants}
    )
    result: list[tuple[int, Channel]] = []
    for t in times:
        channel: Channel = "mix"
        if _value_at(plan.channels, t, "mix") != "mix":
            sender = _value_at(plan.senders, t, None)
            mine = sender is not None and sender == _value_at(recording.participants, t, None)
            channel = "left" if mine else "right"
        if not result or result[-1][1] != channel:
            result.append((t, channel))
    return result


def _render(
    decoded: _Decoded,
    sides: Mapping[int, list[tuple[int, Channel]]],
    *,
    policy: dict[str, Any] | None,
    users: list[tuple[int, int]],
    presence: list[Interval] | None = None,
    forced: list[Interval] | None = None,
    side_of_participant: Callable[[str, int], Side] | None = None,
    unattributed: Side | None = None,
    pause_mode: PauseMode | None = None,
    channels: Channels | None = None,
    bitrate_kbps: int = 32,
) -> FinishedAudio:
    """One recording of a decoded call: policy, mix, cut, encode. ``sides``: each
    stream's channel history as this recording sees it; ``presence``: when its
    user was in the call (None: the whole call)."""
    journal, audios, rate = decoded.journal, decoded.audios, decoded.rate
    begin_ms, end_ms = decoded.begin_ms, decoded.end_ms
    if presence:
        begin_ms = max(begin_ms, min(end_ms, presence[0][0]))
    calls = _subtract((begin_ms, end_ms), journal.paused) if end_ms > begin_ms else []
    outcome: PolicyOutcome | None = None
    if policy is not None and users:
        outcome = _apply_policy(
            decoded,
            sides,
            policy,
            users,
            begin_ms,
            side_of_participant=side_of_participant,
            unattributed=unattributed,
            forced=forced or [],
        )
        if presence is not None:
            outcome = _within(outcome, presence)
        calls = list(outcome.segments) if outcome.keep else []
        pause_mode = pause_mode or policy.get("pause_mode", "cut")
        channels = channels or policy.get("channels", "both")
    elif presence is not None:
        calls = [kept for span in calls for kept in _intersect(span, presence)]
    if journal.captured is not None:
        # only what the live policy let reach the disk exists (e.g. a user named late)
        captured = journal.captured.windows(end_ms)
        if outcome is not None:
            outcome = _within(outcome, captured, "nothing of what the policy keeps was captured")
            calls = list(outcome.segments) if outcome.keep else []
        else:
            calls = [kept for span in calls for kept in _intersect(span, captured)]
    pause_mode = pause_mode or "cut"
    channels = channels or "both"

    length = _ms_to_sample(end_ms, rate)
    parts = [
        part
        for index, audio in audios.items()
        for part in _stream_parts(audio, journal.plans[index], sides.get(index, []), length)
    ]
    outputs = [
        _sum([samples for channel, samples in parts if channel in wanted], length)
        for wanted in _SIDES[channels]
    ]
    if outcome is not None and outcome.code_spans:
        # the short code's tones are not kept: silence the user's side while they sound
        for k, wanted in enumerate(_SIDES[channels]):
            if "left" not in wanted:
                continue
            out = outputs[k] = outputs[k].copy()
            for start, stop in outcome.code_spans:
                a = _ms_to_sample(max(0, start - CODE_MARGIN_MS), rate)
                out[a : _ms_to_sample(stop + CODE_MARGIN_MS, rate)] = 0

    segments: list[Segment] = []
    final: list[npt.NDArray[np.int16]]
    if pause_mode == "cut":
        ranges = []
        file_ms = 0
        for start, end in calls:
            ranges.append((_ms_to_sample(start, rate), _ms_to_sample(end, rate)))
            segments.append(Segment(start, end, file_ms, file_ms + end - start))
            file_ms += end - start
        final = [
            np.concatenate([out[a:b] for a, b in ranges]) if ranges else np.zeros(0, dtype=np.int16)
            for out in outputs
        ]
    else:
        origin = calls[0][0] if calls else begin_ms
        first = _ms_to_sample(origin, rate)
        last = _ms_to_sample(calls[-1][1], rate) if calls else first
        final = [out[first:last].copy() for out in outputs]
        cursor = origin
        for start, end in calls:
            for out in final:  # silence where the recording was paused
                out[_ms_to_sample(cursor - origin, rate) : _ms_to_sample(start - origin, rate)] = 0
            segments.append(Segment(start, end, start - origin, end - origin))
            cursor = end

    recorded_any = any(
        audio.first_ms is not None
        and any(audio.first_ms < end and (audio.last_ms or 0) > start for start, end in calls)
        for audio in audios.values()
    )
    n = len(final[0])
    if recorded_any and n > 0:
        mp3 = encode_mp3(final[0], final[1] if len(final) > 1 else None, rate, bitrate_kbps)
    else:
        mp3 = b""

    codecs: list[str] = []
    for audio in audios.values():
        codecs.extend(c for c in audio.codecs if c not in codecs)
    return FinishedAudio(
        mp3=mp3,
        sha256=hashlib.sha256(mp3).hexdigest(),
        duration_ms=n * 1000 // rate if mp3 else 0,
        call_duration_ms=max(0, end_ms - begin_ms),
        segments=segments,
        channels=len(final),
        sample_rate=rate,
        codecs=codecs,
        dtmf=[_dtmf_entry(d, segments) for d in journal.dtmf],
        started_at_ms=journal.started_at_ms,
        answered_ms=journal.answered_ms,
        ended_ms=end_ms,
        stream_stats={index: audio.stats for index, audio in audios.items()},
        empty=not mp3,
        end_reason=journal.end_reason if journal.end_ms is not None else "recovered",
        policy=outcome,
    )


def _intersect(span: Interval, within: list[Interval]) -> list[Interval]:
    start, end = span
    return [(max(start, a), min(end, b)) for a, b in within if max(start, a) < min(end, b)]


def _within(
    outcome: PolicyOutcome,
    presence: list[Interval],
    why_none: str = "the user left before any was kept",
) -> PolicyOutcome:
    """The decision cut to ``presence`` (while the recording's user was in the call,
    or while the live gate was open)."""
    segments = tuple(kept for span in outcome.segments for kept in _intersect(span, presence))
    if segments == outcome.segments:
        return outcome
    if outcome.keep and not segments:
        return replace(outcome, keep=False, segments=(), reason=why_none)
    return replace(outcome, segments=segments)


def _apply_policy(
    decoded: _Decoded,
    sides: Mapping[int, list[tuple[int, Channel]]],
    policy: dict[str, Any],
    users: list[tuple[int, int]],
    begin_ms: int,
    *,
    side_of_participant: Callable[[str, int], Side] | None = None,
    unattributed: Side | None = None,
    forced: list[Interval] | None = None,
) -> PolicyOutcome:
    """Every key of either side (journal + in-band) through the policy engine."""
    journal = decoded.journal

    def side_of(stream: int, t: int) -> Side:
        return side_at(sides.get(stream, []), t)

    keys = journal_keys(
        journal.dtmf,
        side_of,
        side_of_participant=side_of_participant,
        unattributed=unattributed,
    )
    for index in decoded.audios:
        if all(ch == "right" for _t, ch in sides.get(index, [])):
            continue  # the other party's keys never matter: don't listen for them
        keys += [
            KeyPress(
                d.start_ms, d.digit, side_of(index, d.start_ms), d.duration_ms, "inband", index
            )
            for d in decoded.inband_keys(index)
        ]
    keys = merge_keys(keys)
    answered = journal.answered_ms if journal.answered_ms is not None else begin_ms
    return decide(
        policy=policy,
        users=users,
        parties=journal.parties,
        answered_ms=max(answered, begin_ms),
        end_ms=decoded.end_ms,
        src_pauses=journal.paused,
        keys=keys,
        forced=forced or [],
    )


def _dtmf_entry(raw: dict[str, Any], segments: list[Segment]) -> dict[str, Any]:
    """A DTMF event with its place in the file (``file_ms`` None when not recorded)."""
    t = int(raw["t"])
    file_ms = None
    for seg in segments:
        if seg.call_start_ms <= t < seg.call_end_ms:
            file_ms = seg.file_start_ms + t - seg.call_start_ms
            break
    return {**raw, "file_ms": file_ms}
