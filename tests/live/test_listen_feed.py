"""ListenFeed: decoding, ordering, channels per setting, slow listeners, detaching.

Driven by hand with an explicit clock: packets carry their arrival ms, ``tick``
is given the time, so no timer runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from callvault.live.listen import (
    FRAME_HEADER,
    FRAME_SAMPLES,
    PLAYOUT_MS,
    ListenFeed,
    Listening,
    Subscriber,
)
from callvault.media.codec import Codec
from callvault.media.codecs import encode_pcma, encode_pcmu
from callvault.media.rtp import RtpPacket
from callvault.media.tones import sine
from callvault.recording.journal import StreamLayout

PCMU = {0: Codec("PCMU", 8000), 101: Codec("telephone-event", 8000)}
USER_HZ, OTHER_HZ = 440.0, 1000.0


class FakeReceiver:
    def __init__(self) -> None:
        self.listener: Any = None

    def hear(self, data: bytes, at: int) -> None:
        """What RtpReceiver.datagram_received does last."""
        if self.listener is not None:
            self.listener(data, at)


@dataclass
class FakeStream:
    layout: StreamLayout
    receiver: FakeReceiver = field(default_factory=FakeReceiver)


@dataclass
class FakeCall:
    streams: dict[int, FakeStream]
    uuid: str = "call-1"
    ended: bool = False
    clock: int = 0

    def now_ms(self) -> int:
        return self.clock


def layout(index: int, channel: str, participant: str | None, codecs: Any = None) -> StreamLayout:
    return StreamLayout(index, None, codecs or PCMU, channel, participant)  # type: ignore[arg-type]


def two_party_call() -> FakeCall:
    return FakeCall(
        {0: FakeStream(layout(0, "left", "alice")), 1: FakeStream(layout(1, "right", "cust"))}
    )


def packets(
    hz: float, seconds: float, *, ssrc: int = 1, seq0: int = 100, ts0: int = 5000, pt: int = 0
) -> list[bytes]:
    pcm = sine(hz, seconds)
    encode = encode_pcmu if pt == 0 else encode_pcma
    return [
        bytes(
            RtpPacket(
                pt,
                (seq0 + k) & 0xFFFF,
                (ts0 + k * 160) & 0xFFFFFFFF,
                ssrc,
                encode(pcm[k * 160 : (k + 1) * 160]),
            )
        )
        for k in range(len(pcm) // 160)
    ]


def frames(sub: Subscriber) -> list[bytes]:
    out = []
    while not sub.queue.empty():
        item = sub.queue.get_nowait()
        assert item is not None
        out.append(item)
    return out


def pcm_of(messages: list[bytes]) -> tuple[npt.NDArray[np.int16], int]:
    channels = {FRAME_HEADER.unpack_from(m)[1] for m in messages}
    assert len(channels) == 1
    (ch,) = channels
    data = b"".join(m[FRAME_HEADER.size :] for m in messages)
    return np.frombuffer(data, dtype="<i2").reshape(-1, ch).T.copy(), ch


def level(pcm: npt.NDArray[np.int16], hz: float) -> float:
    """Relative strength of ``hz`` in the signal (Goertzel-ish by FFT)."""
    if pcm.size == 0:
        return 0.0
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    freqs = np.fft.rfftfreq(pcm.size, 1 / 8000)
    band = (freqs > hz - 20) & (freqs < hz + 20)
    return float(spectrum[band].max() / (pcm.size / 2) if band.any() else 0.0)


def play(
    call: FakeCall, feed: ListenFeed, per_stream: dict[int, list[bytes]], order: Any = None
) -> None:
    """Each stream's packets arrive at 20 ms intervals; ticks every 20 ms."""
    count = max(len(p) for p in per_stream.values())
    for k in range(count):
        t = 1000 + 20 * k
        for index, plist in per_stream.items():
            if k < len(plist):
                call.streams[index].receiver.hear(plist[k], t)
        feed.tick(t)
    feed.tick(1000 + 20 * count + PLAYOUT_MS + 40)


def test_each_channel_setting_hears_its_side() -> None:
    for channels, want, unwanted in (("user", USER_HZ, OTHER_HZ), ("other", OTHER_HZ, USER_HZ)):
        call = two_party_call()
        feed = ListenFeed(call, clock_ms=lambda: 1000)  # type: ignore[arg-type]
        sub = feed.subscribe(Listening(channels), capacity=500)  # type: ignore[arg-type]
        play(call, feed, {0: packets(USER_HZ, 0.4), 1: packets(OTHER_HZ, 0.4, ssrc=2)})
        pcm, ch = pcm_of(frames(sub))
        assert ch == 1
        assert level(pcm[0], want) > 1000
        assert level(pcm[0], unwanted) < 50, channels
    call = two_party_call()
    feed = ListenFeed(call, clock_ms=lambda: 1000)  # type: ignore[arg-type]
    sub = feed.subscribe(Listening("both"), capacity=500)
    play(call, feed, {0: packets(USER_HZ, 0.4), 1: packets(OTHER_HZ, 0.4, ssrc=2)})
    pcm, ch = pcm_of(frames(sub))
    assert ch == 2
    assert level(pcm[0], USER_HZ) > 1000 and level(pcm[0], OTHER_HZ) < 50
    assert level(pcm[1], OTHER_HZ) > 1000 and level(pcm[1], USER_HZ) < 50


def test_the_tenants_own_user_decides_the_sides() -> None:
    """In a call between two tenants, the other tenant's user is this tenant's 'other'."""
    call = two_party_call()
    feed = ListenFeed(call, clock_ms=lambda: 1000)  # type: ignore[arg-type]
    sub = feed.subscribe(Listening("user", user_participant="cust"), capacity=500)
    play(call, feed, {0: packets(USER_HZ, 0.3), 1: packets(OTHER_HZ, 0.3, ssrc=2)})
    pcm, _ = pcm_of(frames(sub))
    assert level(pcm[0], OTHER_HZ) > 1000 and level(pcm[0], USER_HZ) < 50


def test_a_mixed_stream_is_in_every_choice_and_alaw_decodes() -> None:
    call = FakeCall({0: FakeStream(layout(0, "mix", None, {8: Codec("PCMA", 8000)}))})
    feed = ListenFeed(call, clock_ms=lambda: 1000)  # type: ignore[arg-type]
    user = feed.subscribe(Listening("user"), capacity=500)
    other = feed.subscribe(Listening("other"), capacity=500)
    play(call, feed, {0: packets(USER_HZ, 0.3, pt=8)})
    assert level(pcm_of(frames(user))[0][0], USER_HZ) > 1000
    assert level(pcm_of(frames(other))[0][0], USER_HZ) > 1000


def test_reordered_and_duplicated_packets_come_out_in_place() -> None:
    """A continuous tone survives reordering: out-of-order packets land where they belong."""
    plist = packets(USER_HZ, 0.6)
    shuffled = list(plist)
    for k in range(2, len(shuffled) - 1, 5):
        shuffled[k], shuffled[k + 1] = shuffled[k + 1], shuffled[k]
    shuffled.insert(10, shuffled[9])  # a duplicate
    reference_call = FakeCall({0: FakeStream(layout(0, "left", "alice"))})
    ref_feed = ListenFeed(reference_call, clock_ms=lambda: 1000)  # type: ignore[arg-type]
    ref = ref_feed.subscribe(Listening("user"), capacity=500)
    play(reference_call, ref_feed, {0: plist})
    call = FakeCall({0: FakeStream(layout(0, "left", "alice"))})
    feed = ListenFeed(call, clock_ms=lambda: 1000)  # type: ignore[arg-type]
    sub = feed.subscribe(Listening("user"), capacity=500)
    play(call, feed, {0: shuffled})
    expected, _ = pcm_of(frames(ref))
    got, _ = pcm_of(frames(sub))
    # the duplicate made the run one packet time longer: only trailing silence differs
    assert np.array_equal(got[:, : expected.shape[1]], expected)
    assert not got[:, expected.shape[1] :].any()
    assert feed.streams[0].reorder.reordered > 0


def test_a_lost_packet_is_silence_in_its_place_and_timing_holds() -> None:
    plist = packets(USER_HZ, 0.4)
    lost = plist[:8] + plist[9:]
    call = FakeCall({0: FakeStream(layout(0, "left", "alice"))})
    feed = ListenFeed(call, clock_ms=lambda: 1000)  # type: ignore[arg-type]
    sub = feed.subscribe(Listening("user"), capacity=500)
    for k, packet in enumerate(plist):
        if packet in lost:
            call.streams[0].receiver.hear(packet, 1000 + 20 * k)
        feed.tick(1000 + 20 * k)
    feed.tick(1000 + 20 * len(plist) + PLAYOUT_MS + 40)
    pcm, _ = pcm_of(frames(sub))
    blocks = pcm[0][: (pcm.shape[1] // FRAME_SAMPLES) * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    loud = [bool(np.abs(b).max() > 500) for b in blocks]
    first = loud.index(True)
    assert loud[first : first + 8] == [True] * 8
    assert loud[first + 8] is False  # the lost packet's 20 ms
    assert all(loud[first + 9 : first + len(plist)])


def test_frames_follow_the_clock_with_the_playout_delay() -> None:
    call = FakeCall({0: FakeStream(layout(0, "left", "alice"))})
    feed = ListenFeed(call, clock_ms=lambda: 1000, wall_ms=lambda: 1_700_000_000_123)  # type: ignore[arg-type]
    sub = feed.subscribe(Listening("user"), capacity=500)
    call.streams[0].receiver.hear(packets(USER_HZ, 0.02)[0], 1000)
    feed.tick(1000 + PLAYOUT_MS)  # not yet: the packet's frame is not PLAYOUT_MS old
    assert all(np.abs(pcm_of([m])[0]).max() == 0 for m in frames(sub))
    feed.tick(1000 + PLAYOUT_MS + 20)
    got = frames(sub)
    assert len(got) == 1
    version, channels, samples, _sequence, wall = FRAME_HEADER.unpack_from(got[0])
    assert (version, channels, samples, wall) == (1, 1, FRAME_SAMPLES, 1_700_000_000_123)
    assert np.abs(pcm_of(got)[0]).max() > 1000
    assert len(got[0]) == FRAME_HEADER.size + 2 * FRAME_SAMPLES


def test_a_late_packet_moves_the_anchor_so_the_next_ones_fit() -> None:
    plist = packets(USER_HZ, 0.4)
    call = FakeCall({0: FakeStream(layout(0, "left", "alice"))})
    feed = ListenFeed(call, clock_ms=lambda: 1000)  # type: ignore[arg-type]
    feed.subscribe(Listening("user"), capacity=500)
    for k, packet in enumerate(plist):
        delay = 150 if k >= 5 else 0  # the network slows down by 150 ms
        call.streams[0].receiver.hear(packet, 1000 + 20 * k + delay)
        feed.tick(1000 + 20 * k + delay)
    stats = feed.streams[0].stats
    assert stats.late == 1  # only the first slow packet; the buffer grew


def test_a_slow_listener_loses_its_oldest_frames_and_nobody_waits() -> None:
    call = two_party_call()
    feed = ListenFeed(call, clock_ms=lambda: 1000)  # type: ignore[arg-type]
    slow = feed.subscribe(Listening("both"), capacity=5)
    fast = feed.subscribe(Listening("both"), capacity=500)
    for t in range(1000, 1400, 20):
        feed.tick(t)
        frames(fast)  # this one keeps up
    assert slow.queue.qsize() == 5
    assert slow.dropped > 0 and fast.dropped == 0
    sequences = [FRAME_HEADER.unpack_from(m)[3] for m in frames(slow)]
    assert sequences == list(range(sequences[0], sequences[0] + 5))
    assert sequences[-1] == feed.sequence - 1  # the newest frames were kept


def test_the_last_listener_detaches_and_a_new_stream_is_followed() -> None:
    call = two_party_call()
    feed = ListenFeed(call, clock_ms=lambda: 1000)  # type: ignore[arg-type]
    a = feed.subscribe(Listening("both"), capacity=500)
    b = feed.subscribe(Listening("user"), capacity=500)
    assert all(s.receiver.listener is not None for s in call.streams.values())
    call.streams[2] = FakeStream(layout(2, "right", "cust"))  # a re-INVITE adds a stream
    feed.tick(1020)
    assert call.streams[2].receiver.listener is not None
    removed = call.streams.pop(1)
    feed.tick(1040)
    assert removed.receiver.listener is None
    feed.unsubscribe(a)
    assert call.streams[0].receiver.listener is not None
    feed.unsubscribe(b)
    assert all(s.receiver.listener is None for s in call.streams.values())


def test_a_call_that_ends_tells_its_listeners() -> None:
    call = two_party_call()
    feed = ListenFeed(call, clock_ms=lambda: 1000)  # type: ignore[arg-type]
    sub = feed.subscribe(Listening("both"), capacity=500)
    call.ended = True
    feed.tick(1020)
    assert sub.queue.get_nowait() is None
    assert all(s.receiver.listener is None for s in call.streams.values())


def test_rtp_timestamps_wrap_without_a_jump() -> None:
    plist = packets(USER_HZ, 0.4, ts0=(1 << 32) - 160 * 5, seq0=65530)
    call = FakeCall({0: FakeStream(layout(0, "left", "alice"))})
    feed = ListenFeed(call, clock_ms=lambda: 1000)  # type: ignore[arg-type]
    sub = feed.subscribe(Listening("user"), capacity=500)
    play(call, feed, {0: plist})
    assert feed.streams[0].stats.late == 0 and feed.streams[0].stats.reanchors == 0
    pcm, _ = pcm_of(frames(sub))
    loud = np.abs(pcm[0]) > 500
    assert loud.sum() > 0.9 * len(plist) * FRAME_SAMPLES * 0.6
