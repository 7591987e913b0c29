"""The B2BUA's media relay over real UDP sockets on 127.0.0.1 (media/relay.py).

Each "phone" is one socket that sends and receives (symmetric RTP). Waits are
bounded (``wait_for``); nothing asserts on wall-clock time. Every test runs on
both ways of reading the sockets: batched (recvmmsg/sendmmsg, the native
extension) and asyncio (one datagram at a time).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import numpy as np
import pytest

from callvault.media import relay as relay_module
from callvault.media.codec import Codec
from callvault.media.codecs import STATIC_PAYLOAD_TYPES, encode_pcma, get_decoder
from callvault.media.dtmf import DIGIT_EVENTS, TelephoneEvent
from callvault.media.ports import PortsExhausted, RtpPortPool
from callvault.media.pump import BATCHED
from callvault.media.relay import MediaRelay, other
from callvault.media.rtp import RtpPacket

HOST = "127.0.0.1"
WAIT = 5.0
PCMU = {0: Codec("PCMU", 8000), 101: Codec("telephone-event", 8000)}
PCMA = {8: Codec("PCMA", 8000), 101: Codec("telephone-event", 8000)}


class Phone(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a datagram endpoint's (uvloop's does not subclass asyncio.DatagramTransport)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (HOST, port))

    async def recv(self) -> RtpPacket:
        data, _ = await asyncio.wait_for(self.queue.get(), WAIT)
        return RtpPacket.parse(data)

    async def recv_n(self, n: int) -> list[RtpPacket]:
        return [await self.recv() for _ in range(n)]

    async def nothing_after(self, marker_from: Phone, marker_port: int) -> list[RtpPacket]:
        """What arrives before a marker packet sent through the relay afterwards
        (so "nothing arrived" is checked without waiting for a timer)."""
        marker = RtpPacket(0, 60000, 1, 0xABCDEF, b"\xff" * 160)
        marker_from.send(bytes(marker), marker_port)
        got: list[RtpPacket] = []
        while True:
            packet = await self.recv()
            if packet.ssrc == 0xABCDEF or packet.sequence == 60000:
                return got
            got.append(packet)


async def until(condition: Callable[[], bool]) -> None:
    """Bounded wait for the relay to have handled what was sent."""
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.001)


async def phone() -> Phone:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(Phone, local_addr=(HOST, 0))
    return protocol


@pytest.fixture(
    params=[pytest.param(True, id="batched"), pytest.param(False, id="asyncio")]
    if BATCHED
    else [pytest.param(False, id="asyncio")]
)
def batched(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def connect(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Whether the batched path connects a latched leg's socket (the default;
    parametrize indirectly with False for the path where it is not connected)."""
    value = bool(getattr(request, "param", True))
    monkeypatch.setattr(relay_module, "CONNECT_LATCHED", value)
    return value


@pytest.fixture
async def call(batched: bool, connect: bool) -> AsyncIterator[tuple[MediaRelay, Phone, Phone]]:
    relay = MediaRelay(asyncio.get_running_loop(), HOST, RtpPortPool(47000, 48998), batched=batched)
    await relay.open()
    a, b = await phone(), await phone()
    relay.set_remote("a", HOST, a.port)
    relay.set_remote("b", HOST, b.port)
    relay.set_codecs("a", PCMU)
    relay.set_codecs("b", PCMU)
    yield relay, a, b
    relay.close()
    for p in (a, b):
        assert p.transport is not None
        p.transport.close()


def audio(seq: int, pt: int = 0, ssrc: int = 0x1111, payload: bytes = b"\xff" * 160) -> bytes:
    return bytes(RtpPacket(pt, seq, 160 * seq, ssrc, payload))


def key(digit: str, seq: int, ts: int, duration: int, end: bool, ssrc: int = 0x1111) -> bytes:
    event = TelephoneEvent(DIGIT_EVENTS[digit], end, 10, duration)
    return bytes(RtpPacket(101, seq, ts, ssrc, bytes(event)))


def tone(frames: int, hz: float = 400.0) -> bytes:
    t = np.arange(frames * 160) / 8000.0
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


def decode(packets: list[RtpPacket]) -> np.ndarray[Any, Any]:
    decoder = get_decoder(STATIC_PAYLOAD_TYPES[packets[0].payload_type])
    return np.concatenate([decoder.decode(p.payload) for p in packets]).astype(np.float64)


async def test_other_side() -> None:
    assert other("a") == "b" and other("b") == "a"


async def test_relays_both_ways_and_the_tap_sees_the_original(
    call: tuple[MediaRelay, Phone, Phone],
) -> None:
    relay, a, b = call
    tapped: dict[str, list[tuple[bytes, Any]]] = {"a": [], "b": []}
    relay.set_tap("a", lambda data, addr: tapped["a"].append((data, addr)))
    relay.set_tap("b", lambda data, addr: tapped["b"].append((data, addr)))
    for n in range(3):
        a.send(audio(n), relay.local_port("a"))
    assert [p.sequence for p in await b.recv_n(3)] == [0, 1, 2]
    b.send(audio(7, ssrc=0x2222), relay.local_port("b"))
    assert (await a.recv()).ssrc == 0x2222
    assert tapped["a"] == [(audio(n), (HOST, a.port)) for n in range(3)]
    assert tapped["b"] == [(audio(7, ssrc=0x2222), (HOST, b.port))]
    stats = relay.stats()
    assert stats["relayed_a_to_b"] == 3 and stats["relayed_b_to_a"] == 1
    assert stats["foreign"] == 0


@pytest.mark.parametrize(
    "connect",
    [pytest.param(True, id="connected"), pytest.param(False, id="unconnected")],
    indirect=True,
)
async def test_packets_from_anyone_else_are_dropped_and_counted(
    call: tuple[MediaRelay, Phone, Phone], batched: bool, connect: bool
) -> None:
    relay, a, b = call
    stranger = await phone()
    try:
        a.send(audio(1), relay.local_port("a"))  # both latch
        assert (await b.recv()).sequence == 1
        b.send(audio(1, ssrc=0x2222), relay.local_port("b"))
        assert (await a.recv()).sequence == 1
        # the same host, another port: injection after the latch
        stranger.send(audio(2, ssrc=0x6666), relay.local_port("a"))
        stranger.send(audio(3, ssrc=0x6666), relay.local_port("b"))
        assert await b.nothing_after(a, relay.local_port("a")) == []
        assert await a.nothing_after(b, relay.local_port("b")) == []
        # a connected socket's strangers are dropped by the kernel, uncounted
        assert relay.stats()["foreign"] == (0 if batched and connect else 2)
    finally:
        assert stranger.transport is not None
        stranger.transport.close()


@pytest.mark.parametrize(
    "connect",
    [pytest.param(True, id="connected"), pytest.param(False, id="unconnected")],
    indirect=True,
)
async def test_a_strangers_packet_amid_a_burst_breaks_neither_order_nor_tap(
    call: tuple[MediaRelay, Phone, Phone], batched: bool, connect: bool
) -> None:
    relay, a, b = call
    stranger = await phone()
    tapped: list[tuple[bytes, Any]] = []
    relay.set_tap("a", lambda data, addr: tapped.append((data, addr)))
    try:
        a.send(audio(0), relay.local_port("a"))  # latches
        assert (await b.recv()).sequence == 0
        # queued before the relay reads: one batch when batched
        for n in range(1, 4):
            a.send(audio(n), relay.local_port("a"))
        stranger.send(audio(99, ssrc=0x6666), relay.local_port("a"))
        for n in range(4, 7):
            a.send(audio(n), relay.local_port("a"))
        assert [p.sequence for p in await b.recv_n(6)] == [1, 2, 3, 4, 5, 6]
        assert await b.nothing_after(a, relay.local_port("a")) == []
        assert tapped[:7] == [(audio(n), (HOST, a.port)) for n in range(7)]
        stats = relay.stats()
        assert stats["foreign"] == (0 if batched and connect else 1)
        assert stats["relayed_a_to_b"] == 8
    finally:
        assert stranger.transport is not None
        stranger.transport.close()


async def test_nothing_is_accepted_from_a_host_the_sdp_does_not_name(batched: bool) -> None:
    relay = MediaRelay(asyncio.get_running_loop(), HOST, RtpPortPool(47000, 48998), batched=batched)
    await relay.open()
    a, b = await phone(), await phone()
    try:
        relay.set_remote("b", HOST, b.port)
        a.send(audio(1), relay.local_port("a"))  # no SDP from a yet
        await until(lambda: relay.stats()["foreign"] == 1)
        relay.set_remote("a", "192.0.2.7", 4000)  # the SDP names another host
        a.send(audio(2), relay.local_port("a"))
        await until(lambda: relay.stats()["foreign"] == 2)
        relay.set_remote("a", HOST, a.port)  # re-INVITE: a moves to our host
        a.send(audio(3), relay.local_port("a"))
        assert (await b.recv()).sequence == 3
        assert relay.stats()["foreign"] == 2
    finally:
        relay.close()
        for p in (a, b):
            assert p.transport is not None
            p.transport.close()


async def test_symmetric_rtp_sends_to_the_latched_address(
    call: tuple[MediaRelay, Phone, Phone],
) -> None:
    relay, a, b = call
    b_moved = await phone()  # b sends from another port than its SDP names
    try:
        a.send(audio(1), relay.local_port("a"))
        assert (await b.recv()).sequence == 1  # before b latched: the SDP's address
        b_moved.send(audio(9, ssrc=0x2222), relay.local_port("b"))
        assert (await a.recv()).sequence == 9
        a.send(audio(2), relay.local_port("a"))
        assert (await b_moved.recv()).sequence == 2  # now the latched one
        assert b.queue.empty()
    finally:
        assert b_moved.transport is not None
        b_moved.transport.close()


async def test_hold_sends_nothing_and_resume_sends_again(
    call: tuple[MediaRelay, Phone, Phone],
) -> None:
    relay, a, b = call
    relay.set_remote("b", "0.0.0.0", b.port)  # b holds (RFC 3264 section 8.4)
    a.send(audio(1), relay.local_port("a"))
    b.send(audio(50, ssrc=0x2222), relay.local_port("b"))  # b still may send
    assert (await a.recv()).sequence == 50
    relay.set_remote("b", HOST, b.port)
    a.send(audio(2), relay.local_port("a"))
    assert (await b.recv()).sequence == 2  # packet 1 was never sent
    assert relay.stats()["on_hold"] == 1
    relay.set_remote("a", HOST, 0)  # port 0: a stream a does not want
    seen = asyncio.Event()
    relay.set_tap("b", lambda data, addr: seen.set())
    b.send(audio(51, ssrc=0x2222), relay.local_port("b"))
    await asyncio.wait_for(seen.wait(), WAIT)  # handled: the tap runs before forwarding
    assert relay.stats()["on_hold"] == 2
    assert a.queue.empty()


async def test_a_prompt_to_a_silent_call_is_paced_and_numbered_as_one_stream(
    call: tuple[MediaRelay, Phone, Phone],
) -> None:
    relay, a, b = call
    done = asyncio.Event()
    prompt = tone(12)
    relay.play("b", prompt, on_done=done.set)  # nobody sent anything yet
    frames = await b.recv_n(12)
    await asyncio.wait_for(done.wait(), WAIT)
    assert {p.payload_type for p in frames} == {0}  # the first G.711 of b's SDP
    assert len({p.ssrc for p in frames}) == 1
    assert [(p.sequence - frames[0].sequence) & 0xFFFF for p in frames] == list(range(12))
    assert [(p.timestamp - frames[0].timestamp) & 0xFFFFFFFF for p in frames] == [
        160 * n for n in range(12)
    ]
    assert frames[0].marker and not any(p.marker for p in frames[1:])
    sent = np.frombuffer(prompt, dtype="<i2").astype(np.float64)
    assert np.corrcoef(decode(frames), sent)[0, 1] > 0.95
    # then a's audio again, in the same stream
    a.send(audio(5000), relay.local_port("a"))
    after = await b.recv()
    assert after.ssrc == frames[0].ssrc
    assert after.sequence == (frames[-1].sequence + 1) & 0xFFFF
    assert (after.timestamp - frames[-1].timestamp) & 0xFFFFFFFF >= 160
    assert relay.stats()["played_frames"] == 12


async def test_a_prompt_replaces_the_relayed_audio_but_not_the_keys(
    call: tuple[MediaRelay, Phone, Phone],
) -> None:
    relay, a, b = call
    relay.set_codecs("b", PCMA)
    tapped: list[bytes] = []
    relay.set_tap("a", lambda data, addr: tapped.append(data))
    silence = encode_pcma(np.zeros(160, dtype=np.int16))
    for n in range(3):
        a.send(audio(100 + n, pt=8, payload=silence), relay.local_port("a"))
    before = await b.recv_n(3)
    done = asyncio.Event()
    first, second = tone(10, 400.0), tone(5, 700.0)
    relay.play("b", first)
    relay.play("b", second, on_done=done.set)  # queued after the first
    a.send(audio(103, pt=8, payload=silence), relay.local_port("a"))  # not heard
    a.send(key("5", 104, 160 * 103, 400, end=True), relay.local_port("a"))  # heard
    got = await b.recv_n(16)
    await asyncio.wait_for(done.wait(), WAIT)
    for n in range(2):
        a.send(audio(105 + n, pt=8, payload=silence), relay.local_port("a"))
    got += await b.recv_n(2)
    stream = before + got
    assert {p.ssrc for p in stream} == {0x1111}
    assert [(p.sequence - 100) & 0xFFFF for p in stream] == list(range(21))
    events = [p for p in got if p.payload_type == 101]
    assert len(events) == 1 and TelephoneEvent.parse(events[0].payload).digit == "5"
    prompt = [p for p in got[:16] if p.payload_type == 8]
    assert len(prompt) == 15
    sent = np.frombuffer(first + second, dtype="<i2").astype(np.float64)
    assert np.corrcoef(decode(prompt), sent)[0, 1] > 0.95
    audio_ts = [p.timestamp for p in stream if p.payload_type == 8]
    steps = [(t2 - t1) & 0xFFFFFFFF for t1, t2 in itertools.pairwise(audio_ts)]
    assert all(0 < step < 1 << 31 for step in steps)  # never back
    assert relay.stats()["muted"] == 1
    assert len(tapped) == 7  # the recording heard everything a sent


async def test_a_prompt_on_a_codec_that_is_not_g711_is_skipped(
    call: tuple[MediaRelay, Phone, Phone],
) -> None:
    relay, a, b = call
    relay.set_codecs("b", {9: Codec("G722", 8000)})
    a.send(audio(1, pt=9), relay.local_port("a"))
    await b.recv()
    done = asyncio.Event()
    relay.play("b", tone(5), on_done=done.set)
    await asyncio.wait_for(done.wait(), WAIT)
    assert relay.stats()["skipped_prompts"] == 1
    a.send(audio(2, pt=9), relay.local_port("a"))
    assert (await b.recv()).sequence == 2  # relayed as before, untouched


async def test_the_short_code_is_kept_from_the_other_party(
    call: tuple[MediaRelay, Phone, Phone],
) -> None:
    relay, a, b = call
    relay.hide_code("a", "*1")
    tapped: list[bytes] = []
    relay.set_tap("a", lambda data, addr: tapped.append(data))
    port = relay.local_port("a")
    code = [key("*", 1, 8000, 400, False), key("*", 2, 8000, 800, True)]
    code += [key("1", 3, 16000, 400, False), key("1", 4, 16000, 800, True)]
    code += [key("1", 5, 16000, 800, True)]  # a redundant end packet
    for packet in code:
        a.send(packet, port)
    assert await b.nothing_after(a, port) == []
    other_keys = [key("*", 6, 24000, 400, True), key("5", 7, 32000, 400, True)]
    for packet in other_keys:
        a.send(packet, port)
    got = await b.recv_n(2)
    assert [TelephoneEvent.parse(p.payload).digit for p in got] == ["*", "5"]
    stats = relay.stats()
    assert stats["hidden_digits"] == 2
    assert len(tapped) == 5 + 1 + 2  # the recording hears every key (the finisher cuts them)
    relay.hide_code("a", None)
    a.send(key("*", 8, 40000, 400, True), port)
    assert (await b.recv()).sequence == 8


async def test_open_skips_busy_ports_and_close_gives_them_back(batched: bool) -> None:
    pool = RtpPortPool(47000, 47004)  # ports 47000 and 47002
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        busy.bind((HOST, 47000))
    except OSError:
        pytest.skip("port 47000 is in use on this host")
    try:
        relay = MediaRelay(asyncio.get_running_loop(), HOST, pool, batched=batched)
        with pytest.raises(PortsExhausted):
            await relay.open()  # one side gets 47002, the other finds nothing
        await until(lambda: pool.available == 1)  # 47002 back once its socket closed
        assert pool.in_use == 1  # 47000 stays out while someone else holds it
        busy.close()
        pool.release(47000)
        relay = MediaRelay(asyncio.get_running_loop(), HOST, pool, batched=batched)
        await relay.open()
        assert {relay.local_port("a"), relay.local_port("b")} == {47000, 47002}
        relay.close()
        await until(lambda: pool.available == 2)
    finally:
        busy.close()
