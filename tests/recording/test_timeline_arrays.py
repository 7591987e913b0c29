"""A whole stream file laid out over arrays (``StreamTimeline.from_spool``, issue 12)
gives exactly what feeding its packets one by one gives: samples, span, counters."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.recording.callbuilder import EVENT, PCMA, PCMU, rtp_stream

from callvault.media.analysis import tone_spans
from callvault.media.codec import Codec
from callvault.media.rtp import RtpPacket
from callvault.recording.packet_arrays import parse_records, record_offsets
from callvault.recording.spool import RECORD_HEADER
from callvault.recording.timeline import StreamAudio, StreamTimeline

CN = Codec("CN", 8000)
CODECS = {0: PCMU, 8: PCMA, 101: EVENT, 13: CN}


def records(timed: list[tuple[int, bytes]]) -> bytes:
    return b"".join(RECORD_HEADER.pack(t & 0xFFFFFFFF, len(raw)) + raw for t, raw in timed)


def by_packet(
    timed: list[tuple[int, bytes]], codecs: dict[int, Codec], **kw: object
) -> StreamAudio:
    timeline = StreamTimeline(codecs, **kw)  # type: ignore[arg-type]
    for t, raw in timed:
        timeline.feed(t, raw)
    return timeline.render()


def same(a: StreamAudio, b: StreamAudio) -> None:
    assert (a.rate, a.first_ms, a.last_ms) == (b.rate, b.first_ms, b.last_ms)
    assert a.stats == b.stats
    assert (a.ssrcs, a.codecs) == (b.ssrcs, b.codecs)
    assert np.array_equal(a.samples, b.samples)


def odd_packet(rng: random.Random, seq: int, ts: int, ssrc: int, payload: bytes) -> bytes:
    """RTP with CSRCs, a header extension or padding (RFC 3550 5.1, 5.3.1), or broken."""
    kind = rng.randrange(6)
    if kind == 0:  # CSRCs
        return bytes(RtpPacket(0, seq, ts, ssrc, payload, csrc=(1, 2)))
    header = struct.pack("!BBHII", 0x80, 0, seq, ts, ssrc)
    if kind == 1:  # extension of two words
        return bytes([0x90]) + header[1:] + struct.pack("!HH", 0xBEDE, 2) + bytes(8) + payload
    if kind == 2:  # padding of 4
        return bytes([0xA0]) + header[1:] + payload + bytes([0, 0, 0, 4])
    if kind == 3:  # version 1
        return bytes([0x40]) + header[1:] + payload
    if kind == 4:  # too short
        return header[: rng.randrange(12)]
    return bytes([0x90]) + header[1:] + b"\x00"  # extension header runs past the packet


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    count = draw(st.integers(1, 400))
    loss, reorder, dup, late, odd, other_pt = (
        draw(st.sampled_from([0.0, 0.02, 0.2])) for _ in range(6)
    )
    seq, ts = rng.choice([0, 65500, rng.randrange(65536)]), rng.choice([0, 2**32 - 4000])
    ssrcs = [0x1234, 0x99]
    ssrc = ssrcs[0]
    out: list[tuple[int, bytes]] = []
    held = 0  # the network held the stream up: near the re-anchoring limit (500 ms)
    for k in range(count):
        if rng.random() < 0.01:  # an SBC jumps its timestamps (a hold) or changes SSRC
            ts += rng.choice([160 * 400, -160 * 400, 7])
        if rng.random() < 0.01:
            held = rng.choice([0, *range(495, 506)])
        if rng.random() < 0.01:
            ssrc = rng.choice(ssrcs)
        seq, ts = (seq + 1) & 0xFFFF, (ts + 160) & 0xFFFFFFFF
        if rng.random() < loss:
            continue
        pt = 0
        if rng.random() < other_pt:
            pt = rng.choice([8, 101, 13, 77])
        size = rng.choice([160, 160, 160, 80, 0])
        payload = bytes(rng.randrange(256) for _ in range(size))
        raw = bytes(RtpPacket(pt, seq, ts, ssrc, payload))
        if rng.random() < odd:
            raw = odd_packet(rng, seq, ts, ssrc, payload)
        arrival = 1000 + 20 * k + held + rng.randrange(40)
        out.append((arrival, raw))
        if rng.random() < dup:
            out.append((arrival + rng.randrange(5), raw))
    for i in range(len(out) - 1):
        if rng.random() < reorder:
            out[i], out[i + 1] = out[i + 1], out[i]
    if late and len(out) > 10:
        for _ in range(int(late * 10)):
            i = rng.randrange(len(out) - 1)
            j = min(len(out), i + rng.randrange(1, 150))
            out.insert(j, out.pop(i))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.sampled_from([4, 64, 150]))
def test_arrays_lay_out_what_packets_do(timed: list[tuple[int, bytes]], window: int) -> None:
    spooled = StreamTimeline.from_spool(records(timed), CODECS, window=window).render()
    same(spooled, by_packet(timed, CODECS, window=window))


@settings(max_examples=100, deadline=None)
@given(streams())
def test_reinvite_codec_history_alike(timed: list[tuple[int, bytes]]) -> None:
    history = [(1000 + 20 * 100, {0: PCMA, 101: EVENT})]
    fast = StreamTimeline.from_spool(records(timed), CODECS, codec_history=history).render()
    same(fast, by_packet(timed, CODECS, codec_history=history))


def test_a_lossy_jittery_stream_takes_the_array_path() -> None:
    """The differential tests mean something only if the usual stream is vectorised."""
    rng = random.Random(5)
    timed = [(t + rng.randrange(40), bytes(p)) for t, p in rtp_stream("PCMU", 0, (0, 20_000), [])]
    del timed[100:103]  # lost
    timed[200], timed[201] = timed[201], timed[200]  # reordered
    timed.insert(300, timed[299])  # duplicated
    timed.insert(500, timed[400])  # too late: its gap was given up
    timeline = StreamTimeline.from_spool(records(timed), {0: PCMU})
    assert timeline.vectorised
    stats = timeline.render().stats
    assert (stats["lost"], stats["reordered"], stats["duplicates"]) == (3, 1, 2)
    same(timeline.render(), by_packet(timed, {0: PCMU}))


def test_tones_land_where_packets_put_them() -> None:
    timed = rtp_stream("PCMA", 8, (1000, 3000), [(440, 1000, 2000), (1000, 2000, 3000)])
    timeline = StreamTimeline.from_spool(records([(t, bytes(p)) for t, p in timed]), {8: PCMA})
    audio = timeline.render()
    assert timeline.vectorised and audio.first_ms == 1000 and audio.last_ms == 3000
    assert [s for s, _ in tone_spans(audio.samples, 8000, 440)] == pytest.approx([1.0], abs=0.02)
    assert [s for s, _ in tone_spans(audio.samples, 8000, 1000)] == pytest.approx([2.0], abs=0.02)


def test_other_codecs_and_restarts_go_packet_by_packet() -> None:
    g722 = rtp_stream("G722", 9, (0, 400), [(440, 0, 400)])
    timeline = StreamTimeline.from_spool(records([(t, bytes(p)) for t, p in g722]), {})
    assert not timeline.vectorised and timeline.render().codecs == ["G722"]
    restart = [
        (20 * k, bytes(RtpPacket(0, seq, 160 * k, 1, bytes(160))))
        for k, seq in enumerate([*range(10), *range(9000, 9010)])
    ]
    timeline = StreamTimeline.from_spool(records(restart), {0: PCMU})
    assert not timeline.vectorised
    same(timeline.render(), by_packet(restart, {0: PCMU}))


def test_records_torn_and_of_mixed_lengths() -> None:
    timed = [(k, bytes([0x80, 0, 0, k]) + bytes(8 + (k % 3) * 50)) for k in range(100)]
    data = records(timed)
    assert len(record_offsets(np.frombuffer(data, np.uint8))) == 100
    torn = parse_records(data[:-5])
    assert torn.records == 99 and torn.malformed == 0
    assert parse_records(b"").records == 0
