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
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from callvault.media.inband_dtmf import detect_keys
from callvault.recording.journal import Channel, Codec, Event, StreamLayout, stream_from_dict
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


@dataclass
class _StreamPlan:
    """What the journal says about one stream over the call."""

    index: int
    codecs: list[tuple[int, Mapping[int, Codec]]] = field(default_factory=list)
    channels: list[tuple[int, Channel]] = field(default_factory=list)
    paused: list[Interval] = field(default_factory=list)


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
        journal.paused.append((all_paused_since, 2**62 if end is None else end))
    for index, since in [*stream_pause.items(), *inactive.items()]:
        plan(index).paused.append((since, 2**62))
    return journal


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
    journal.parties.extend(data.get("parties", []))


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
    audio: StreamAudio, plan: _StreamPlan, length: int
) -> list[tuple[Channel, npt.NDArray[np.int16]]]:
    """The stream as full-length int16 parts, one per channel it was assigned to."""
    samples = np.zeros(length, dtype=np.int16)
    n = min(length, len(audio.samples))
    samples[:n] = audio.samples[:n]
    for since, until in plan.paused:  # a stream paused on its own is muted
        samples[_ms_to_sample(max(since, 0), audio.rate) : _ms_to_sample(until, audio.rate)] = 0
    channels = plan.channels or [(0, "mix")]
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


def finish(
    reader: SpoolReader,
    *,
    pause_mode: PauseMode | None = None,
    channels: Channels | None = None,
    bitrate_kbps: int = 32,
) -> FinishedAudio:
    """Finish one spooled call; ``pause_mode``/``channels`` default to the tenant's
    settings in the journal's policy snapshot (else cut, both)."""
    """Finish one spooled call (see the module docstring). CPU-bound: run off the loop."""
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
    calls = _subtract((begin_ms, end_ms), journal.paused) if end_ms > begin_ms else []
    outcome: PolicyOutcome | None = None
    if journal.policy is not None and journal.users:
        outcome = _apply_policy(journal, audios, begin_ms, end_ms)
        calls = list(outcome.segments) if outcome.keep else []
        pause_mode = pause_mode or journal.policy.get("pause_mode", "cut")
        channels = channels or journal.policy.get("channels", "both")
    pause_mode = pause_mode or "cut"
    channels = channels or "both"

    length = _ms_to_sample(end_ms, rate)
    parts = [
        part
        for index, audio in audios.items()
        for part in _stream_parts(audio, journal.plans[index], length)
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


def _apply_policy(
    journal: _Journal, audios: Mapping[int, StreamAudio], begin_ms: int, end_ms: int
) -> PolicyOutcome:
    """Every key of either side (journal + in-band) through the policy engine."""
    assert journal.policy is not None

    def side_of(stream: int, t: int) -> Side:
        plan = journal.plans.get(stream)
        return side_at(plan.channels if plan else [], t)

    keys = journal_keys(journal.dtmf, side_of)
    for index, audio in audios.items():
        plan = journal.plans.get(index)
        if plan is not None and all(ch == "right" for _t, ch in plan.channels):
            continue  # the other party's keys never matter: don't listen for them
        found = detect_keys(audio.samples, audio.rate, index)
        keys += [
            KeyPress(
                d.start_ms, d.digit, side_of(index, d.start_ms), d.duration_ms, "inband", index
            )
            for d in found
        ]
    keys = merge_keys(keys)
    return decide(
        policy=journal.policy,
        users=journal.users,
        parties=journal.parties,
        answered_ms=journal.answered_ms if journal.answered_ms is not None else begin_ms,
        end_ms=end_ms,
        src_pauses=journal.paused,
        keys=keys,
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
