"""The demo/test RTP sender: packetisation, RFC 4733 digits, pause, SSRC change,
impairments, and real-time pacing."""

from __future__ import annotations

import asyncio
import random
import socket

import numpy as np
import pytest

from callvault.media.dtmf import TelephoneEvent
from callvault.media.rtp import RtpPacket
from callvault.media.sender import (
    G711Stream,
    ImpairmentFilter,
    Impairments,
    RtpSender,
    packets_for,
)
from callvault.media.tones import encode_pcma, encode_pcmu, sine


def parse_all(raw: list[bytes]) -> list[RtpPacket]:
    return [RtpPacket.parse(p) for p in raw]


def test_audio_packets() -> None:
    pcm = sine(1000, 0.1)  # 800 samples: 5 packets
    packets = parse_all(packets_for(pcm, 0, ssrc=7, sequence=65534, timestamp=0xFFFFFF00))
    assert len(packets) == 5
    assert [p.sequence for p in packets] == [65534, 65535, 0, 1, 2]
    assert [p.timestamp for p in packets] == [(0xFFFFFF00 + 160 * i) & 0xFFFFFFFF for i in range(5)]
    assert {p.ssrc for p in packets} == {7}
    assert {p.payload_type for p in packets} == {0}
    assert [p.marker for p in packets] == [True, False, False, False, False]
    assert b"".join(p.payload for p in packets) == encode_pcmu(pcm)


def test_pcma_and_padding_of_the_last_packet() -> None:
    pcm = sine(500, 0.03)  # 240 samples: the second packet is padded with silence
    packets = parse_all(packets_for(pcm, 8))
    assert [len(p.payload) for p in packets] == [160, 160]
    assert packets[1].payload == encode_pcma(pcm[160:]) + b"\xd5" * 80


def test_not_g711_is_refused() -> None:
    with pytest.raises(ValueError):
        G711Stream(np.zeros(160, dtype=np.int16), 9)


def test_random_ssrc_and_bases_are_reproducible_from_seed() -> None:
    pcm = np.zeros(320, dtype=np.int16)
    assert packets_for(pcm, seed=3) == packets_for(pcm, seed=3)
    assert packets_for(pcm, seed=3) != packets_for(pcm, seed=4)


def test_digit_packets_follow_rfc4733() -> None:
    pcm = np.zeros(8000, dtype=np.int16)
    packets = parse_all(packets_for(pcm, digits=[(200, "7")], digit_ms=100, ssrc=1, sequence=0))
    audio = [p for p in packets if p.payload_type == 0]
    events = [p for p in packets if p.payload_type == 101]
    assert len(audio) == 50  # the audio goes on during the event
    assert len(events) == 7  # 5 updates (the last one ends it) + 2 more end packets
    assert [p.sequence for p in packets] == list(range(57))  # one sequence space
    start_ts = audio[10].timestamp
    assert {p.timestamp for p in events} == {start_ts}
    assert [p.marker for p in events] == [True] + [False] * 6
    parsed = [TelephoneEvent.parse(p.payload) for p in events]
    assert {e.event for e in parsed} == {7}
    assert [e.duration for e in parsed] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in parsed] == [False] * 4 + [True] * 3


def test_queued_digits_follow_each_other() -> None:
    pcm = np.zeros(8000, dtype=np.int16)
    packets = parse_all(packets_for(pcm, digits=[(0, "1"), (0, "2")], dtmf_pt=96))
    events = [p for p in packets if p.payload_type == 96]
    assert len(events) == 14
    assert len({p.timestamp for p in events}) == 2
    assert [TelephoneEvent.parse(p.payload).event for p in events] == [1] * 7 + [2] * 7


def test_digits_after_the_audio_are_still_sent() -> None:
    packets = parse_all(packets_for(np.zeros(160, dtype=np.int16), digits=[(100, "#")]))
    assert sum(p.payload_type == 101 for p in packets) == 7


def test_pause_makes_the_timestamp_jump() -> None:
    stream = G711Stream(np.zeros(8000, dtype=np.int16), timestamp=1000, sequence=10)
    first = parse_all(stream.tick() + stream.tick())
    stream.pause()
    assert [stream.tick() for _ in range(25)] == [[]] * 25  # 500 ms of nothing
    stream.resume()
    after = parse_all(stream.tick())[0]
    assert [p.timestamp for p in first] == [1000, 1160]
    assert after.timestamp == 1000 + 27 * 160  # the paused time is in the timestamp
    assert after.sequence == 12  # no gap in sequence numbers
    assert after.marker


def test_change_ssrc_takes_new_bases() -> None:
    stream = G711Stream(np.zeros(8000, dtype=np.int16), rng=random.Random(1))
    before = parse_all(stream.tick() + stream.tick())
    stream.change_ssrc()
    after = parse_all(stream.tick() + stream.tick())
    assert after[0].ssrc != before[0].ssrc
    assert after[0].ssrc == after[1].ssrc
    assert after[0].marker and not after[1].marker
    assert after[1].sequence == (after[0].sequence + 1) & 0xFFFF
    assert after[1].timestamp == (after[0].timestamp + 160) & 0xFFFFFFFF
    assert after[0].sequence != (before[1].sequence + 1) & 0xFFFF


def test_periodic_impairments() -> None:
    items = [bytes([i]) for i in range(12)]
    filt = ImpairmentFilter(Impairments(drop_every=5))
    assert [b for p in items for b in filt.push(p)] == [items[i] for i in range(12) if i % 5 != 4]
    filt = ImpairmentFilter(Impairments(duplicate_every=4))
    expected = [n for i in range(12) for n in ([i, i] if i % 4 == 3 else [i])]
    assert [b[0] for p in items for b in filt.push(p)] == expected
    filt = ImpairmentFilter(Impairments(reorder_every=3))
    out = [b[0] for p in items for b in filt.push(p)] + [b[0] for b in filt.flush()]
    assert out == [0, 1, 3, 2, 4, 6, 5, 7, 9, 8, 10, 11]
    assert filt.reordered == 4
    filt = ImpairmentFilter(Impairments(reorder_every=12))
    out = [b[0] for p in items for b in filt.push(p)] + [b[0] for b in filt.flush()]
    assert out == list(range(12))  # the held last packet comes out on flush


def test_random_impairments_are_reproducible() -> None:
    pcm = np.zeros(8000, dtype=np.int16)
    imp = Impairments(reorder_every=5, duplicate_every=5, drop_every=5, seed=42)
    one = packets_for(pcm, impairments=imp, seed=1)
    assert one == packets_for(pcm, impairments=imp, seed=1)
    clean = packets_for(pcm, seed=1)
    assert one != clean
    assert set(one) < set(clean)


async def test_sender_paces_in_real_time_without_drift() -> None:
    loop = asyncio.get_running_loop()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    arrivals: list[float] = []

    def readable() -> None:
        sink.recv(2048)
        arrivals.append(loop.time())

    loop.add_reader(sink.fileno(), readable)
    try:
        sender = RtpSender(np.zeros(8000, dtype=np.int16), *sink.getsockname(), seed=5)
        started = loop.time()
        await sender.run()
        elapsed = loop.time() - started
        await asyncio.sleep(0.05)
    finally:
        loop.remove_reader(sink.fileno())
        sink.close()
    assert sender.packets_sent == 50
    assert len(arrivals) == 50
    # Packet n leaves at start + n * 20 ms: the last at 980 ms, whatever the
    # sleep overshoots were along the way.
    assert 0.97 <= elapsed < 1.1
    offsets = np.array(arrivals) - arrivals[0] - np.arange(50) * 0.02
    assert np.abs(offsets).max() < 0.03


async def test_sender_stop_and_keep_sending_silence() -> None:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    try:
        host, port = sink.getsockname()
        sender = RtpSender(np.zeros(160, dtype=np.int16), host, port, payload_type=8)
        task = asyncio.create_task(sender.run(until_done=False))
        await asyncio.sleep(0.2)
        sender.stop()
        await asyncio.wait_for(task, 1)
        assert sender.packets_sent >= 5  # silence after the one packet of audio
        assert sender.local_address is None  # closed
    finally:
        sink.close()
