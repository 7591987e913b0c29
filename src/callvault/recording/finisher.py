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

In-band keys (the short code, cut from the user's side in every mode) are
searched for in the decoded streams, except in what the live listener already
searched during the call (the journal's ``inband_listened`` stretches): there
the finisher only looks again around the keys the listener journalled, so each
keeps the start and length the timeline gives it (docs/finishing.md).

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
from callvault.media.inband_dtmf import DETECTOR_VERSION, detect_keys
from callvault.recording.journal import Channel, Dtmf, PolicySnapshot, Side
from callvault.recording.mp3 import encode_mp3
from callvault.recording.policy_apply import (
    KeyPress,
    PolicyOutcome,
    decide,
    journal_keys,
    merge_keys,
    side_at,
)
from callvault.recording.replay import (
    CallFacts,
    Interval,
    RecordingPlan,
    StreamPlan,
    replay,
)
from callvault.recording.spool import SpoolReader
from callvault.recording.timeline import StreamAudio, StreamTimeline

PauseMode = Literal["cut", "silence"]
Channels = Literal["both", "user", "other", "mix"]
CODE_MARGIN_MS = 30  # around the short code's key presses, cut with the tones
# The live listener's clock is arrival time, the timeline's is RTP time anchored on
# the earliest packet (re-anchored beyond 500 ms): the two differ by the jitter.
# What it heard is trusted this far inside its edges, and the finisher looks again
# this far around each key it heard.
LISTENED_GUARD_MS = 1000
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
    audio: StreamAudio, plan: StreamPlan, sides: list[tuple[int, Channel]], length: int
) -> list[tuple[Channel, npt.NDArray[np.int16]]]:
    """The stream as full-length int16 parts, one per channel it was assigned to
    (``sides``: the stream's channel history in the recording being made). Parts
    may share the stream's samples: read them, never write into them."""
    channels = sides or [(0, "mix")]
    samples: npt.NDArray[np.int16]
    if not plan.paused and len(channels) == 1 and len(audio.samples) >= length:
        # the usual stream: its own samples, not a copy (nothing writes into a part)
        return [(channels[0][1], audio.samples[:length])]
    samples = np.zeros(length, dtype=np.int16)
    n = min(length, len(audio.samples))
    samples[:n] = audio.samples[:n]
    for since, until in plan.paused:  # a stream paused on its own is muted
        samples[_ms_to_sample(max(since, 0), audio.rate) : _ms_to_sample(until, audio.rate)] = 0
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

    journal: CallFacts
    audios: dict[int, StreamAudio]
    rate: int
    begin_ms: int
    end_ms: int
    inband: dict[int, list[DtmfDigit]] = field(default_factory=dict)  # streams listened to

    def inband_keys(self, index: int) -> list[DtmfDigit]:
        """In-band keys of a stream, detected once however many recordings ask;
        audio the live listener searched is skipped (``_listened``)."""
        found = self.inband.get(index)
        if found is None:
            audio = self.audios[index]
            heard, keys_heard = self._listened(index, audio.rate)
            found = self.inband[index] = detect_keys(
                audio.samples, audio.rate, index, heard=heard, keys_heard=keys_heard
            )
        return found

    def _listened(
        self, index: int, rate: int
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Sample ranges of the stream the live listener searched with this very
        detector, and around the in-band keys it journalled. Its keys are in the
        journal already; the finisher looks again around them only so that each
        keeps the start and length the timeline gives it (its cut), as before."""
        guard = LISTENED_GUARD_MS
        heard = [
            (_ms_to_sample(a + guard, rate), _ms_to_sample(b - guard, rate))
            for (a, b), detector in self.journal.listened.get(index, [])
            if detector == DETECTOR_VERSION and b - a > 2 * guard
        ]
        keys_heard = [
            (
                _ms_to_sample(max(0, key.t - guard), rate),
                _ms_to_sample(key.t + key.duration_ms + guard, rate),
            )
            for key in self.journal.dtmf
            if key.stream == index and key.source == "inband"
        ]
        return heard, keys_heard if heard else []


def _decode(reader: SpoolReader) -> _Decoded:
    journal = replay(reader.events())
    timelines: dict[int, StreamTimeline] = {}
    for index in reader.stream_indexes():
        plan = journal.plans.setdefault(index, StreamPlan(index))
        history = plan.codecs or [(0, {})]
        timelines[index] = StreamTimeline.from_spool(
            reader.records(index), history[0][1], codec_history=history[1:]
        )
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

        def side_of_participant(pid: str, t: int, recording: RecordingPlan = recording) -> Side:
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


def _recording_channels(plan: StreamPlan, recording: RecordingPlan) -> list[tuple[int, Channel]]:
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
    policy: PolicySnapshot | None,
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
        pause_mode = pause_mode or policy.pause_mode
        channels = channels or policy.channels
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

    calls, tail_ms = _with_tail(calls, audios.values(), end_ms)
    length = _ms_to_sample(tail_ms, rate)
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
            out[ranges[0][0] : ranges[0][1]]  # one stretch: a view, the encoder copies it
            if len(ranges) == 1
            else np.concatenate([out[a:b] for a, b in ranges])
            if ranges
            else np.zeros(0, dtype=np.int16)
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


def _with_tail(
    calls: list[Interval], audios: Iterable[StreamAudio], end_ms: int
) -> tuple[list[Interval], int]:
    """The kept stretches, and where the recording's timeline ends: at the hang-up,
    unless the stretch kept up to it holds no audio because all of it lies just
    past it. Everything in a spool arrived by the hang-up (the gate closes there),
    so it sounded before it; but a packet is placed from its arrival, and a short
    call whose loop read its only packets at the hang-up's own millisecond (behind
    the network under load, or in the BYE's own iteration) had all of its audio
    placed past the end, and nothing was kept. Such a stretch runs on to the end
    of that audio. A call with audio before the hang-up still ends there."""
    placed = [(a.first_ms, a.last_ms) for a in audios if a.first_ms is not None]
    spans = [(first, last or first) for first, last in placed]
    if not calls or calls[-1][1] < end_ms or not spans:
        return calls, end_ms
    if any(first < stop and last > start for first, last in spans for start, stop in calls):
        return calls, end_ms
    tail = max(last for _first, last in spans)
    if min(first for first, _last in spans) > end_ms or tail <= end_ms:
        return calls, end_ms
    return [*calls[:-1], (calls[-1][0], tail)], tail


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
    policy: PolicySnapshot,
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
        parties=journal.everyone,
        answered_ms=max(answered, begin_ms),
        end_ms=decoded.end_ms,
        src_pauses=journal.paused,
        keys=keys,
        forced=forced or [],
    )


def _dtmf_entry(key: Dtmf, segments: list[Segment]) -> dict[str, Any]:
    """A DTMF event with its place in the file (``file_ms`` None when not recorded)."""
    t = key.t
    file_ms = None
    for seg in segments:
        if seg.call_start_ms <= t < seg.call_end_ms:
            file_ms = seg.file_start_ms + t - seg.call_start_ms
            break
    return {"t": t, **key.body(), "file_ms": file_ms}
