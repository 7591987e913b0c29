"""The finisher end to end: synthetic spools in, MP3 out, tones found where expected."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import pytest
from tests.recording.callbuilder import (
    EVENT,
    G722,
    OPUS,
    PCMA,
    PCMU,
    CallBuilder,
    Timed,
    layout,
    rtp_stream,
)

from callvault.media.analysis import dominant_frequency, rms_dbfs, tone_spans
from callvault.media.rtp import RtpPacket
from callvault.recording.finisher import FinishedAudio, PauseMode, Segment, finish
from callvault.recording.mp3 import decode_mp3

TOLERANCE = 0.06  # seconds


def spans_match(found: list[tuple[float, float]], expected: list[tuple[float, float]]) -> None:
    assert len(found) == len(expected), (found, expected)
    for (a, b), (x, y) in zip(found, expected, strict=True):
        assert abs(a - x) <= TOLERANCE and abs(b - y) <= TOLERANCE, (found, expected)


def decoded(result: FinishedAudio) -> np.ndarray:
    audio, rate = decode_mp3(result.mp3)
    assert rate == result.sample_rate
    assert audio.shape == (result.channels, result.duration_ms * rate // 1000)
    assert hashlib.sha256(result.mp3).hexdigest() == result.sha256
    return audio


def messy(timed: Timed, seed: int) -> Timed:
    """Jitter, neighbour swaps, duplicates and 2 % loss, as a real network does."""
    rng = random.Random(seed)
    out: Timed = []
    for arrival, packet in timed:
        if rng.random() < 0.02:
            continue
        out.append((arrival + rng.randint(0, 40), packet))
        if rng.random() < 0.03:
            out.append((arrival + rng.randint(40, 80), packet))
    for i in range(0, len(out) - 1, 7):
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


def stereo_call(tmp_path: Path) -> CallBuilder:
    call = CallBuilder(
        tmp_path,
        [layout(0, "left", {0: PCMU, 101: EVENT}), layout(1, "right", {8: PCMA})],
    )
    call.event("answer", 500)
    call.packets(0, messy(rtp_stream("PCMU", 0, (500, 7000), [(440, 1000, 5000)]), 1))
    call.packets(
        1,
        messy(rtp_stream("PCMA", 8, (500, 7000), [(1000, 2000, 6000)], ssrc=99, seq0=65500), 2),
    )
    return call


def test_stereo_call_places_each_side_on_its_channel(tmp_path: Path) -> None:
    call = stereo_call(tmp_path)
    call.event("dtmf", 2500, stream=0, digit="5", duration_ms=100, source="rfc4733")
    call.packets(0, [(2500, RtpPacket(101, 1, 0, 0x1234, bytes(4)))])
    call.event("end", 7000, reason="bye")
    result = finish(call.reader())

    assert result.segments == [Segment(500, 7000, 0, 6500)]
    assert (result.channels, result.sample_rate, result.duration_ms) == (2, 8000, 6500)
    assert result.started_at_ms == 1_700_000_000_000
    assert (result.answered_ms, result.ended_ms, result.call_duration_ms) == (500, 7000, 6500)
    assert result.codecs == ["PCMU", "PCMA"]
    assert result.end_reason == "bye" and not result.empty
    assert result.dtmf == [
        {
            "t": 2500,
            "stream": 0,
            "digit": "5",
            "duration_ms": 100,
            "source": "rfc4733",
            "file_ms": 2000,
        }
    ]
    stats = result.stream_stats
    assert stats[0]["duplicates"] > 0 and stats[0]["lost"] > 0 and stats[0]["dtmf_packets"] == 1

    audio = decoded(result)
    left, right = audio
    spans_match(tone_spans(left, 8000, 440), [(0.5, 4.5)])
    spans_match(tone_spans(right, 8000, 1000), [(1.5, 5.5)])
    assert tone_spans(left, 8000, 1000) == [] and tone_spans(right, 8000, 440) == []


def test_channels_user_other_and_mix(tmp_path: Path) -> None:
    call = stereo_call(tmp_path)
    call.event("end", 7000, reason="bye")
    reader = call.reader()
    user = decoded(finish(reader, channels="user"))
    other = decoded(finish(reader, channels="other"))
    mix = decoded(finish(reader, channels="mix"))
    assert user.shape[0] == other.shape[0] == mix.shape[0] == 1
    spans_match(tone_spans(user[0], 8000, 440), [(0.5, 4.5)])
    assert tone_spans(user[0], 8000, 1000) == []
    spans_match(tone_spans(other[0], 8000, 1000), [(1.5, 5.5)])
    assert tone_spans(other[0], 8000, 440) == []
    # In the mix both tones are present where only one speaks.
    assert abs(dominant_frequency(mix[0][8000:12000], 8000) - 440) < 5
    assert abs(dominant_frequency(mix[0][40000:44000], 8000) - 1000) < 5


@pytest.mark.parametrize("mode", ["cut", "silence"])
def test_pause_cut_or_silence(tmp_path: Path, mode: PauseMode) -> None:
    call = CallBuilder(tmp_path, [layout(0, "left", {0: PCMU}), layout(1, "right", {0: PCMU})])
    call.event("answer", 500)
    parts = [(440, 1000, 2500), (1000, 3500, 5000)]
    call.packets(0, rtp_stream("PCMU", 0, (500, 7000), parts, delay_ms=15))
    call.packets(1, rtp_stream("PCMU", 0, (500, 7000), [(700, 3900, 4100)], ssrc=7, delay_ms=25))
    call.event("pause", 3000, stream=None)
    call.event("resume", 4000, stream=None)
    call.event("end", 7000, reason="bye")
    result = finish(call.reader(), pause_mode=mode)
    left, right = decoded(result)
    if mode == "cut":
        assert result.segments == [Segment(500, 3000, 0, 2500), Segment(4000, 7000, 2500, 5500)]
        assert result.duration_ms == 5500
        spans_match(tone_spans(left, 8000, 1000), [(2.5, 3.5)])
        spans_match(tone_spans(right, 8000, 700), [(2.5, 2.6)])
    else:
        assert result.segments == [Segment(500, 3000, 0, 2500), Segment(4000, 7000, 3500, 6500)]
        assert result.duration_ms == 6500
        spans_match(tone_spans(left, 8000, 1000), [(3.5, 4.5)])
        spans_match(tone_spans(right, 8000, 700), [(3.5, 3.6)])
        assert rms_dbfs(left[int(2.55 * 8000) : int(3.45 * 8000)]) < -60
    spans_match(tone_spans(left, 8000, 440), [(0.5, 2.0)])


def test_all_streams_inactive_is_a_pause(tmp_path: Path) -> None:
    streams = [layout(0, "left", {0: PCMU}), layout(1, "right", {0: PCMU})]
    call = CallBuilder(tmp_path, streams)
    call.event("answer", 0)
    call.packets(0, rtp_stream("PCMU", 0, (0, 4000), [(440, 0, 4000)]))
    held = [layout(s.index, s.channel, s.codecs, active=False).to_dict() for s in streams]
    call.event("streams", 1000, streams=held)
    call.event("pause", 1500, stream=0)  # already paused: no effect on segments
    call.event("streams", 2000, streams=[s.to_dict() for s in streams])
    call.event("end", 4000, reason="bye")
    result = finish(call.reader())
    assert [(s.call_start_ms, s.call_end_ms) for s in result.segments] == [(0, 1000), (2000, 4000)]
    # Stream 0 stays paused on its own after 1.5 s: muted, the recording goes on.
    left, _ = decoded(result)
    spans_match(tone_spans(left, 8000, 440), [(0.0, 1.0)])
    assert result.duration_ms == 3000


def test_mixed_stream_goes_to_both_channels(tmp_path: Path) -> None:
    call = CallBuilder(tmp_path, [layout(0, "mix", {0: PCMU})])
    call.packets(0, rtp_stream("PCMU", 0, (0, 3000), [(440, 1000, 2000)]))
    call.event("end", 3000, reason="bye")
    result = finish(call.reader())
    assert result.answered_ms is None and result.segments == [Segment(0, 3000, 0, 3000)]
    left, right = decoded(result)
    spans_match(tone_spans(left, 8000, 440), [(1.0, 2.0)])
    spans_match(tone_spans(right, 8000, 440), [(1.0, 2.0)])
    mono = decoded(finish(call.reader(), channels="mix"))
    spans_match(tone_spans(mono[0], 8000, 440), [(1.0, 2.0)])


def test_channels_stay_aligned(tmp_path: Path) -> None:
    call = CallBuilder(tmp_path, [layout(0, "left", {0: PCMU}), layout(1, "right", {8: PCMA})])
    bursts = [(1000, 1000, 1200), (1000, 2500, 2600)]
    call.packets(0, messy(rtp_stream("PCMU", 0, (0, 3000), bursts, delay_ms=30), 3))
    call.packets(1, messy(rtp_stream("PCMA", 8, (0, 3000), bursts, ssrc=5, delay_ms=90), 4))
    call.event("end", 3000, reason="bye")
    left, right = decoded(finish(call.reader()))
    a, b = tone_spans(left, 8000, 1000), tone_spans(right, 8000, 1000)
    assert len(a) == len(b) == 2
    # Both sides were delayed differently; each is anchored to its own least-delayed packet.
    for (x0, x1), (y0, y1) in zip(a, b, strict=True):
        assert abs(x0 - y0) <= 0.07 and abs(x1 - y1) <= 0.07


def test_ssrc_change_and_timestamp_jump(tmp_path: Path) -> None:
    call = CallBuilder(tmp_path, [layout(0, "left", {0: PCMU})])
    first = rtp_stream("PCMU", 0, (0, 2000), [(440, 0, 2000)], ssrc=1)
    # New SSRC with unrelated sequence and timestamp (a transfer behind an SBC).
    second = rtp_stream("PCMU", 0, (2000, 4000), [(1000, 2000, 4000)], ssrc=2, seq0=7, ts0=99)
    # Same SSRC after a hold: timestamps frozen across 1 s without packets.
    third = rtp_stream(
        "PCMU", 0, (5000, 6000), [(700, 5000, 6000)], ssrc=2, seq0=107, ts0=99 + 16000
    )
    # ... then the timestamp jumps far ahead with no gap in time.
    fourth = rtp_stream(
        "PCMU", 0, (6000, 7000), [(1500, 6000, 7000)], ssrc=2, seq0=157, ts0=3_000_000_000
    )
    call.packets(0, first + second + third + fourth)
    call.event("end", 7000, reason="bye")
    result = finish(call.reader(), channels="user")
    (mono,) = decoded(result)
    spans_match(tone_spans(mono, 8000, 440), [(0.0, 2.0)])
    spans_match(tone_spans(mono, 8000, 1000), [(2.0, 4.0)])
    spans_match(tone_spans(mono, 8000, 700), [(5.0, 6.0)])
    spans_match(tone_spans(mono, 8000, 1500), [(6.0, 7.0)])
    stats = result.stream_stats[0]
    assert stats["ssrcs"] == 2 and stats["reanchors"] == 2


def test_wideband_g722_and_opus(tmp_path: Path) -> None:
    call = CallBuilder(tmp_path, [layout(0, "left", {9: G722}), layout(1, "right", {111: OPUS})])
    call.packets(0, rtp_stream("G722", 9, (0, 3000), [(3000, 500, 2500)], delay_ms=10))
    call.packets(1, rtp_stream("opus", 111, (0, 3000), [(5000, 1000, 2000)], ssrc=8, delay_ms=10))
    call.event("end", 3000, reason="bye")
    result = finish(call.reader())
    assert result.sample_rate == 16000 and result.codecs == ["G722", "opus"]
    left, right = decoded(result)
    spans_match(tone_spans(left, 16000, 3000), [(0.5, 2.5)])
    spans_match(tone_spans(right, 16000, 5000), [(1.0, 2.0)])


def test_narrowband_stream_is_upsampled_next_to_wideband(tmp_path: Path) -> None:
    call = CallBuilder(tmp_path, [layout(0, "left", {0: PCMU}), layout(1, "right", {9: G722})])
    call.packets(0, rtp_stream("PCMU", 0, (0, 2000), [(440, 500, 1500)]))
    call.packets(1, rtp_stream("G722", 9, (0, 2000), [(3500, 500, 1500)], ssrc=3))
    call.event("end", 2000, reason="bye")
    result = finish(call.reader())
    left, right = decoded(result)
    assert result.sample_rate == 16000
    spans_match(tone_spans(left, 16000, 440), [(0.5, 1.5)])
    spans_match(tone_spans(right, 16000, 3500), [(0.5, 1.5)])


def test_codec_switch_mid_stream(tmp_path: Path) -> None:
    call = CallBuilder(tmp_path, [layout(0, "left", {0: PCMU, 8: PCMA})])
    a = rtp_stream("PCMU", 0, (0, 1000), [(440, 0, 1000)])
    b = rtp_stream("PCMA", 8, (1000, 2000), [(1000, 1000, 2000)], seq0=1050, ts0=5000 + 8000)
    call.packets(0, a + b)
    call.event("end", 2000, reason="bye")
    (mono,) = decoded(finish(call.reader(), channels="user"))
    spans_match(tone_spans(mono, 8000, 440), [(0.0, 1.0)])
    spans_match(tone_spans(mono, 8000, 1000), [(1.0, 2.0)])


def test_crash_recovery_without_end_and_torn_tails(tmp_path: Path) -> None:
    call = CallBuilder(tmp_path, [layout(0, "left", {0: PCMU})])
    call.event("answer", 200)
    call.packets(0, rtp_stream("PCMU", 0, (200, 3200), [(440, 1000, 3200)]))
    reader = call.reader()
    with open(tmp_path / "stream-0.rtp", "ab") as fh:
        fh.write(b"\x10\x27\x00\x00\xac\x00\x80")  # a torn record header + bytes
    with open(tmp_path / "journal.jsonl", "a") as fh:
        fh.write('{"type":"end","t":99')  # a torn journal line
    result = finish(reader)
    assert result.end_reason == "recovered" and result.ended_ms == 3200
    assert result.segments == [Segment(200, 3200, 0, 3000)]
    left, _ = decoded(result)
    spans_match(tone_spans(left, 8000, 440), [(0.8, 3.0)])


def test_no_audio_is_empty(tmp_path: Path) -> None:
    call = CallBuilder(tmp_path, [layout(0, "left", {0: PCMU})])
    call.event("end", 2000, reason="cancel")
    result = finish(call.reader())
    assert result.empty and result.mp3 == b"" and result.duration_ms == 0
    assert result.segments == [Segment(0, 2000, 0, 2000)]


def test_audio_read_at_the_hang_up_is_kept(tmp_path: Path) -> None:
    """A short call whose loop read its only packets at the BYE (a loop behind the
    network under load): every packet carries the hang-up's millisecond, so its audio
    is placed from there on. It sounded before the hang-up and is kept (the steady
    bench's calls stored with no recording: a 935 ms call, one packet per stream)."""
    call = CallBuilder(
        tmp_path,
        [layout(0, "left", {0: PCMU}), layout(1, "right", {8: PCMA})],
        recorded_user_id=1,
    )
    call.event("capture", 0, open=True)
    call.event("answer", 0)
    sent = [(0, 440), (1, 1000)]
    for index, freq in sent:
        codec, pt = ("PCMU", 0) if index == 0 else ("PCMA", 8)
        timed = rtp_stream(codec, pt, (880, 940), [(freq, 880, 940)], ptime_ms=60)
        assert len(timed) == 1
        call.packets(index, [(935, timed[0][1])])  # sent at 880, read at the BYE
    call.event("end", 935, reason="bye")
    call.event("capture", 935, open=False)
    result = finish(call.reader())

    assert not result.empty and result.call_duration_ms == 935
    # the packets' audio (anchored as early as the packets allow) runs to its end
    assert result.segments == [Segment(0, 935 + 60, 0, 935 + 60)]
    left, right = decoded(result)
    tail = 8000 * 60 // 1000
    for side, (_index, freq) in zip((left, right), sent, strict=True):
        assert abs(dominant_frequency(side[-tail:], 8000) - freq) < 30
        assert rms_dbfs(side[-tail:]) > -30


def test_audio_before_the_hang_up_still_ends_there(tmp_path: Path) -> None:
    """A call with audio before the hang-up is cut at it, as before: only a call that
    would keep nothing runs on past its end."""
    call = CallBuilder(tmp_path, [layout(0, "left", {0: PCMU})])
    call.event("capture", 0, open=True)
    call.event("answer", 0)
    timed = rtp_stream("PCMU", 0, (0, 1000), [(440, 0, 1000)])
    call.packets(0, [(min(arrival, 935), packet) for arrival, packet in timed])
    call.event("end", 935, reason="bye")
    call.event("capture", 935, open=False)
    result = finish(call.reader())
    assert result.segments == [Segment(0, 935, 0, 935)] and result.duration_ms == 935
