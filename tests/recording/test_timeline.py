"""One stream on the call timeline: placement, anchoring, resampling."""

from __future__ import annotations

import numpy as np
from tests.recording.callbuilder import EVENT, PCMU, rtp_stream

from callvault.media.analysis import tone_spans
from callvault.media.codec import Codec
from callvault.media.rtp import RtpPacket
from callvault.recording.timeline import StreamTimeline, lay_out_stream, resample


def raw(timed: list[tuple[int, RtpPacket]]) -> list[tuple[int, bytes]]:
    return [(t, bytes(p)) for t, p in timed]


def test_packets_land_at_their_timestamps() -> None:
    timed = rtp_stream("PCMU", 0, (1000, 2000), [(440, 1000, 2000)], delay_ms=30)
    audio = lay_out_stream(raw(timed), {0: PCMU})
    assert audio.rate == 8000 and audio.first_ms == 1030 and audio.last_ms == 2030
    assert len(audio.samples) == 2030 * 8
    assert not audio.samples[: 1030 * 8].any()
    assert audio.ssrcs == [0x1234] and audio.codecs == ["PCMU"]


def test_anchor_is_the_least_delayed_packet() -> None:
    timed = rtp_stream("PCMU", 0, (0, 1000), [(440, 0, 1000)], delay_ms=10)
    timed[0] = (timed[0][0] + 80, timed[0][1])  # the first packet was held up
    audio = lay_out_stream(raw(timed), {0: PCMU})
    assert audio.first_ms == 10


def test_events_comfort_noise_and_garbage_are_counted() -> None:
    timed = rtp_stream("PCMU", 0, (0, 200), [(440, 0, 200)])
    extra = [
        (50, bytes(RtpPacket(101, 3, 0, 0x1234, bytes(4)))),
        (60, bytes(RtpPacket(13, 4, 0, 0x1234, bytes(1)))),
        (70, b"\x00garbage"),
        (80, bytes(RtpPacket(77, 5, 0, 0x1234, bytes(10)))),
    ]
    audio = lay_out_stream([*raw(timed), *extra], {0: PCMU, 101: EVENT, 13: Codec("CN", 8000)})
    stats = audio.stats
    assert (stats["dtmf_packets"], stats["cn_packets"], stats["malformed"]) == (1, 1, 1)
    assert stats["unknown_payload"] == 1 and stats["decoded"] == 10


def test_overlap_later_packet_wins() -> None:
    a = rtp_stream("PCMU", 0, (0, 100), [(440, 0, 100)])
    b = rtp_stream("PCMU", 0, (0, 100), [(1000, 0, 100)], ssrc=9)
    audio = lay_out_stream(raw(a + b), {0: PCMU})
    assert tone_spans(audio.samples, 8000, 440) == []
    assert len(tone_spans(audio.samples, 8000, 1000)) == 1


def test_codec_history_follows_reinvite() -> None:
    a = rtp_stream("PCMU", 96, (0, 1000), [(440, 0, 1000)])
    b = rtp_stream("PCMA", 96, (1000, 2000), [(1000, 1000, 2000)], seq0=1050, ts0=13000)
    timeline = StreamTimeline({96: PCMU}, codec_history=[(1000, {96: Codec("PCMA", 8000)})])
    for t, p in raw(a + b):
        timeline.feed(t, p)
    audio = timeline.render()
    assert audio.codecs == ["PCMU", "PCMA"]
    assert len(tone_spans(audio.samples, 8000, 1000)) == 1


def test_resample_keeps_tone_and_timing() -> None:
    t = np.arange(8000) / 8000
    x = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    up = resample(x, 8000, 16000)
    assert len(up) == 16000
    ref = (8000 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.int16)
    assert np.abs(up[200:-200].astype(int) - ref[200:-200]).max() < 200
    down = resample(up, 48000, 16000)
    assert len(down) == -(-len(up) // 3)
    assert len(resample(x, 8000, 11025)) == 11025
