"""The relay's native recording tap (``_batchudp.relay_record`` through
``RtpReceiver.fast_tap``/``absorb``) against the receiver's own per-packet path.

A relay over real loopback sockets taps each side into a real ``RtpReceiver``
and ``StreamSpool``; a reference receiver is fed the same packets through
``datagram_received``. The spools must hold the same bytes and the counters
and DTMF digits must be equal. The clock is fixed: one arrival time for all.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from callvault.media.codec import Codec
from callvault.media.dtmf import DIGIT_EVENTS, DtmfDigit, TelephoneEvent
from callvault.media.ports import RtpPortPool
from callvault.media.receiver import RtpReceiver
from callvault.media.relay import MediaRelay
from callvault.media.rtp import RtpPacket
from callvault.recording.spool import StreamSpool

try:
    from callvault.media import _batchudp  # the module the relay calls
except ImportError:
    if os.environ.get("CI") == "true":
        raise  # CI builds it: the native tap must be tested there
    pytest.skip("callvault.media._batchudp is not built", allow_module_level=True)

HOST = "127.0.0.1"
WAIT = 5.0
NOW = 2**32 + 77  # the spool keeps the low 32 bits, in C as in Python
PCMU = {0: Codec("PCMU", 8000), 101: Codec("telephone-event", 8000)}


class Phone(asyncio.DatagramProtocol):
    """A phone that keeps what it receives raw (junk is relayed too)."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append(data)

    @property
    def addr(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (HOST, port))


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.001)


def rtp(pt: int, seq: int, payload: bytes = b"\xff" * 160, ts: int | None = None) -> bytes:
    return bytes(RtpPacket(pt, seq, 160 * seq if ts is None else ts, 0x1111, payload))


def key(digit: str, seq: int, ts: int, duration: int, end: bool) -> bytes:
    return rtp(101, seq, bytes(TelephoneEvent(DIGIT_EVENTS[digit], end, 10, duration)), ts)


def burst() -> list[bytes]:
    """Audio, muxed RTCP, junk, a digit with its three end packets, a bad event."""
    return [
        rtp(0, 1),
        rtp(0, 2, b"\xd5" * 80),
        bytes([0x80, 200]) + bytes(26),  # RTCP SR: relayed, not spooled
        bytes([0x81, 201]) + bytes(30),  # RTCP RR
        b"short",  # malformed: relayed, not spooled
        b"\x40" + bytes(20),  # version 1: malformed
        key("5", 3, 480, 160, False),
        key("5", 4, 480, 320, False),
        key("5", 5, 480, 480, True),
        key("5", 6, 480, 480, True),
        key("5", 7, 480, 480, True),
        rtp(101, 8, b"\x01"),  # a telephone event too short to parse: malformed
        rtp(0, 9),
        rtp(8, 10, b"\x55" * 160),
    ]


@pytest.fixture
async def relay() -> AsyncIterator[MediaRelay]:
    relay = MediaRelay(asyncio.get_running_loop(), HOST, RtpPortPool(47000, 48998), batched=True)
    await relay.open()
    yield relay
    relay.close()


async def phones(relay: MediaRelay) -> tuple[Phone, Phone]:
    loop = asyncio.get_running_loop()
    made = [await loop.create_datagram_endpoint(Phone, local_addr=(HOST, 0)) for _ in range(2)]
    a, b = (protocol for _, protocol in made)
    relay.set_remote("a", HOST, a.addr[1])
    relay.set_remote("b", HOST, b.addr[1])
    relay.set_codecs("a", PCMU)
    relay.set_codecs("b", PCMU)
    return a, b


def receiver(spool: StreamSpool, digits: list[DtmfDigit]) -> RtpReceiver:
    return RtpReceiver(spool, lambda: NOW, digits.append, frozenset({101}), stream_index=0)


async def test_the_native_tap_spools_what_the_python_tap_would(
    relay: MediaRelay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    native_calls: list[int] = []
    relay_record = _batchudp.relay_record

    def spy(*args: Any) -> Any:
        result = relay_record(*args)
        native_calls.append(result[0])
        return result

    monkeypatch.setattr(_batchudp, "relay_record", spy)
    a, b = await phones(relay)
    live: list[DtmfDigit] = []
    spool = StreamSpool(tmp_path / "stream-0.rtp")
    tapped = receiver(spool, live)
    relay.set_tap("a", tapped.datagram_received)
    first = rtp(0, 0)
    a.send(first, relay.local_port("a"))  # latches relay and receiver: the Python tap
    await until(lambda: len(b.got) == 1)
    assert native_calls == []
    packets = burst()
    for packet in packets:  # queued before the relay reads: one batch
        a.send(packet, relay.local_port("a"))
    await until(lambda: len(b.got) == 1 + len(packets))
    assert b.got == [first, *packets]  # junk and RTCP are relayed all the same
    assert sum(native_calls) == len(packets)

    expected: list[DtmfDigit] = []
    reference_spool = StreamSpool(tmp_path / "stream-1.rtp")
    reference = receiver(reference_spool, expected)
    for packet in [first, *packets]:
        reference.datagram_received(packet, a.addr)
    assert spool.buffer == reference_spool.buffer
    assert tapped.stats() == reference.stats()
    assert (tapped.packets, tapped.malformed, tapped.rtcp) == (11, 3, 2)
    assert [d.digit for d in live] == ["5"] and live == expected  # reported live
    assert relay.stats()["relayed_a_to_b"] == 1 + len(packets)


async def test_a_listener_or_srtp_keeps_the_python_tap(
    relay: MediaRelay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    native_calls: list[int] = []
    relay_record = _batchudp.relay_record

    def spy(*args: Any) -> Any:
        native_calls.append(1)
        return relay_record(*args)

    monkeypatch.setattr(_batchudp, "relay_record", spy)
    a, b = await phones(relay)
    tapped = receiver(StreamSpool(tmp_path / "stream-0.rtp"), [])
    heard: list[bytes] = []
    tapped.listener = lambda data, now: heard.append(data)
    relay.set_tap("a", tapped.datagram_received)
    for n in range(3):
        a.send(rtp(0, n), relay.local_port("a"))
        await until(lambda n=n: len(b.got) == n + 1)  # type: ignore[misc]
    assert heard == [rtp(0, n) for n in range(3)] and native_calls == []
    tapped.listener = None
    tapped.set_unprotect(lambda data: data[:-1])  # a stand-in for SRTP: the tag goes
    a.send(rtp(0, 3) + b"T", relay.local_port("a"))
    await until(lambda: len(b.got) == 4)
    assert native_calls == []
    assert tapped.packets == 4 and tapped.bytes == 4 * 172
    tapped.set_unprotect(None)
    a.send(rtp(0, 4), relay.local_port("a"))
    await until(lambda: len(b.got) == 5)
    assert native_calls == [1] and tapped.packets == 5


async def test_a_filtered_tap_is_not_the_receivers_own(relay: MediaRelay, tmp_path: Path) -> None:
    a, b = await phones(relay)
    spool = StreamSpool(tmp_path / "stream-0.rtp")
    tapped = receiver(spool, [])
    relay.set_tap("a", tapped.datagram_received)
    relay.set_tap_filter("a", lambda data: data[:12] + b"\x00" * (len(data) - 12))
    for n in range(3):
        a.send(rtp(0, n), relay.local_port("a"))
        await until(lambda n=n: len(b.got) == n + 1)  # type: ignore[misc]
    assert b.got == [rtp(0, n) for n in range(3)]
    spooled = [packet for _, packet in spool.pending()]
    assert spooled == [rtp(0, n, b"\x00" * 160) for n in range(3)]
