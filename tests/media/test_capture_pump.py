"""Recorded SIPREC streams read by the native pump (``media/capture.py``).

Over real loopback sockets: once a stream has latched, its packets are
spooled in C and never reach ``PumpedStream.readable`` (Python), with the
same spool bytes, counts and digits as the receiver's own path; SRTP and a
live listener keep the stream in Python; a packet from a stranger is still
dropped and counted.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from callvault.media.capture import PumpedStream
from callvault.media.dtmf import DIGIT_EVENTS, DtmfDigit, TelephoneEvent
from callvault.media.ports import RtpPortPool
from callvault.media.receiver import RtpReceiver, RtpStreamSet
from callvault.media.rtp import RtpPacket
from callvault.recording.spool import SpoolWriter

try:
    from callvault.media import _batchudp  # noqa: F401  (the pump needs it)
except ImportError:
    if os.environ.get("CI") == "true":
        raise  # CI builds it: capture through the pump must be tested there
    pytest.skip("callvault.media._batchudp is not built", allow_module_level=True)

HOST = "127.0.0.1"


def rtp(seq: int, pt: int = 0, payload: bytes = b"\xff" * 160, ts: int | None = None) -> bytes:
    return bytes(RtpPacket(pt, seq, 160 * seq if ts is None else ts, 0x2222, payload))


def key(digit: str, seq: int, duration: int, end: bool) -> bytes:
    """A packet of one RFC 4733 event that started at timestamp 6400."""
    return rtp(seq, 101, bytes(TelephoneEvent(DIGIT_EVENTS[digit], end, 10, duration)), 6400)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.001)


@pytest.fixture
def python_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads: list[int] = []
    readable = PumpedStream.readable

    def spy(self: PumpedStream) -> int:
        got = readable(self)
        reads.append(got)
        return got

    monkeypatch.setattr(PumpedStream, "readable", spy)
    return reads


async def open_set(
    tmp_path: Path, digits: list[DtmfDigit]
) -> tuple[RtpStreamSet, RtpReceiver, SpoolWriter, int]:
    loop = asyncio.get_running_loop()
    writer = SpoolWriter(tmp_path)
    pool = RtpPortPool(41000, 42998)
    streams = RtpStreamSet(loop, HOST, pool)
    t0 = loop.time()
    receiver = RtpReceiver(
        writer.stream(0), lambda: int((loop.time() - t0) * 1000), digits.append, frozenset({101})
    )
    await streams.add(0, pool.acquire(), receiver)
    return streams, receiver, writer, streams.ports[0]


async def test_a_latched_stream_is_spooled_in_c(tmp_path: Path, python_reads: list[int]) -> None:
    digits: list[DtmfDigit] = []
    streams, receiver, writer, port = await open_set(tmp_path, digits)
    sent: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as src:
        src.bind((HOST, 0))
        for seq in range(3):  # the first latches (Python), then the pump serves
            sent.append(rtp(seq))
            src.sendto(sent[-1], (HOST, port))
            await until(lambda: len(list(receiver._spool.pending())) == len(sent))
        reads = len(python_reads)
        packets = [rtp(seq) for seq in range(3, 40)]
        packets += [key("7", 40, 160, False), key("7", 41, 320, False)]
        packets += [key("7", seq, 480, True) for seq in (42, 43, 44)] + [rtp(45)]
        for packet in packets:
            sent.append(packet)
            src.sendto(packet, (HOST, port))
            await until(lambda: len(list(receiver._spool.pending())) == len(sent))
        assert len(python_reads) == reads  # none of those batches reached Python
        await until(lambda: len(digits) == 1)  # RFC 4733 still reaches the tracker live
        assert digits[0].digit == "7"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.sendto(rtp(99), (HOST, port))  # injection: dropped and counted
            await until(lambda: receiver.foreign == 1)
    assert [packet for _, packet in receiver._spool.pending()] == sent
    streams.close()  # collects the pump's counts
    assert receiver.packets == len(sent) and receiver.bytes == sum(map(len, sent))
    writer.close()


async def test_srtp_and_a_listener_keep_the_stream_in_python(
    tmp_path: Path, python_reads: list[int]
) -> None:
    streams, receiver, writer, port = await open_set(tmp_path, [])
    heard: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as src:
        src.bind((HOST, 0))
        src.sendto(rtp(0), (HOST, port))
        await until(lambda: receiver.packets == 1)
        receiver.listener = lambda data, now: heard.append(data)  # someone listens live
        reads = len(python_reads)
        for seq in range(1, 6):
            src.sendto(rtp(seq), (HOST, port))
            await until(lambda seq=seq: len(heard) == seq)  # type: ignore[misc]
        assert len(python_reads) >= reads + 5  # each batch read in Python, for the listener
        receiver.listener = None
        receiver.set_unprotect(lambda data: data[:-1])  # a stand-in for SRTP
        src.sendto(rtp(6) + b"T", (HOST, port))
        await until(lambda: len(list(receiver._spool.pending())) == 7)
        assert list(receiver._spool.pending())[-1][1] == rtp(
            6
        )  # decrypted in Python before spooling
    streams.close()
    writer.close()


async def test_hang_up_reads_what_the_pump_had_not(tmp_path: Path) -> None:
    streams, receiver, writer, port = await open_set(tmp_path, [])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as src:
        src.bind((HOST, 0))
        src.sendto(rtp(0), (HOST, port))
        await until(lambda: receiver.packets == 1)
        for seq in range(1, 200):  # the loop does not run: all still in the socket
            src.sendto(rtp(seq), (HOST, port))
    assert streams.drain() == 199
    streams.close()
    assert receiver.packets == 200
    writer.close()
