"""Recorded streams are stamped with the kernel's receive time (issue 12).

Over real loopback sockets with SO_TIMESTAMPNS: packets that wait in the
kernel before they are read (the loop behind, the capture pump's longer
timer, the hang-up's drain) are stamped when they came, not when they were
read, on the native pump's path and on Python's; a stream's stamps never
decrease; an RFC 4733 key read late moves the capture gate at its own
arrival; one run serves more ready sockets than one epoll_wait's old 256.

The waits here are real socket delivery: a packet is sent, the time is
measured around the send, and the reader runs a measured interval later.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from callvault.media.capture import PumpedStream
from callvault.media.dtmf import DIGIT_EVENTS, DtmfDigit, TelephoneEvent
from callvault.media.ports import RtpPortPool, stamp_arrivals
from callvault.media.pump import capture_engine_for, engine_for
from callvault.media.receiver import RtpReceiver, RtpStreamSet
from callvault.media.rtp import RtpPacket
from callvault.policy.live import CaptureGate
from callvault.recording.spool import RECORD_HEADER, SpoolWriter

try:
    from callvault.media import _batchudp
except ImportError:
    if os.environ.get("CI") == "true":
        raise  # CI builds it
    pytest.skip("callvault.media._batchudp is not built", allow_module_level=True)

HOST = "127.0.0.1"
SLACK_MS = 3  # ms truncations of the clocks compared (kernel, loop, receiver)
LATE_S = 0.15  # how long packets wait in the kernel before they are read


def rtp(seq: int, pt: int = 0, ts: int | None = None, payload: bytes = b"\xff" * 160) -> bytes:
    return bytes(RtpPacket(pt, seq, 160 * seq if ts is None else ts, 0x3333, payload))


def key(digit: str, seq: int, duration: int, end: bool) -> bytes:
    return rtp(seq, 101, 6400, bytes(TelephoneEvent(DIGIT_EVENTS[digit], end, 10, duration)))


def records(data: bytes | bytearray) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        arrival, length = RECORD_HEADER.unpack_from(data, pos)
        pos += RECORD_HEADER.size
        out.append((arrival, bytes(data[pos : pos + length])))
        pos += length
    return out


def mono_ms() -> int:
    return int(time.monotonic() * 1000)


class Sender:
    """A source socket that notes, for each packet, the ms before and after its send."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.clock = clock
        self.sent: list[tuple[bytes, int, int]] = []

    def send(self, data: bytes, port: int) -> None:
        before = self.clock()
        self.sock.sendto(data, (HOST, port))
        self.sent.append((data, before, self.clock()))

    def paced(self, packets: list[bytes], port: int, gap_s: float = 0.02) -> None:
        for data in packets:
            self.send(data, port)
            time.sleep(gap_s)  # real delivery: one packet per 20 ms, as a phone sends

    def close(self) -> None:
        self.sock.close()


def assert_stamped_when_sent(
    got: list[tuple[int, bytes]], sent: list[tuple[bytes, int, int]]
) -> None:
    assert [data for _, data in got] == [data for data, _, _ in sent]
    for (stamp, _), (_, before, after) in zip(got, sent, strict=True):
        assert before - SLACK_MS <= stamp <= after + SLACK_MS, (stamp, before, after)
    stamps = [stamp for stamp, _ in got]
    assert stamps == sorted(stamps)


# -- the native module ---------------------------------------------------------


def stamped_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    stamp_arrivals(sock)
    return sock


def test_recv_batch_gives_each_packet_its_kernel_receive_time() -> None:
    sink, plain = stamped_socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    plain.bind((HOST, 0))
    src = Sender(mono_ms)
    try:
        src.paced([rtp(seq) for seq in range(5)], sink.getsockname()[1])
        src.sock.sendto(rtp(9), plain.getsockname())
        time.sleep(LATE_S)  # read well after the last came
        read_at = mono_ms()
        got = _batchudp.recv_batch(sink.fileno(), 64, True)
        assert_stamped_when_sent([(ms, data) for data, _, ms in got], src.sent)
        assert got[-1][2] < read_at - 100  # not the time it was read
        assert {addr for _, addr, _ in got} == {src.sock.getsockname()}
        # a socket without SO_TIMESTAMPNS: no time (-1); without stamps: pairs, as before
        [(data, _addr, ms)] = _batchudp.recv_batch(plain.fileno(), 64, True)
        assert (data, ms) == (rtp(9), -1)
        src.send(rtp(10), sink.getsockname()[1])
        assert _batchudp.recv_batch(sink.fileno()) == [(rtp(10), src.sock.getsockname())]
    finally:
        for sock in (sink, plain):
            sock.close()
        src.close()


def test_a_stamped_pump_spools_packets_at_their_arrival_never_going_back() -> None:
    pump = _batchudp.Pump(stamps=True)
    sink = stamped_socket()
    src = Sender(mono_ms)
    spool = bytearray()
    te_map = bytes(1 if pt == 101 else 0 for pt in range(128))
    try:
        pump.add(sink.fileno(), "leg")
        pump.configure(sink.fileno(), src.sock.getsockname(), -1, None, spool, 0, te_map)
        port = sink.getsockname()[1]
        src.paced([rtp(1), rtp(2), key("4", 3, 160, False), rtp(4)], port)
        time.sleep(LATE_S)
        now = mono_ms()
        ready, handoff = pump.run(now)
        assert ready == 1
        assert_stamped_when_sent(records(spool), src.sent)
        assert records(spool)[-1][0] < now - 100  # not the run's time
        # the RFC 4733 packet comes to Python with its own stamp
        [(leg, rest, events, _arrival, events_ms)] = handoff
        assert (leg, rest, events) == ("leg", None, [key("4", 3, 160, False)])
        assert events_ms == [records(spool)[2][0]]
        assert pump.unconfigure(sink.fileno()) == records(spool)[-1][0]
        # configured again with an offset (the recording's clock) and a floor
        # later than the next packets' arrival: stamps do not go back before it
        spool.clear()
        floor = mono_ms() + 1000 + 60_000  # ahead of any packet, however slow the host
        pump.configure(sink.fileno(), src.sock.getsockname(), -1, None, spool, 1000, te_map, floor)
        src.sent.clear()
        src.paced([rtp(5), rtp(6)], port)
        now = mono_ms()
        pump.run(now)
        assert [stamp for stamp, _ in records(spool)] == [floor, floor]
        # a run whose now_ms is before a packet's arrival (the loop's cached
        # time) stamps it now_ms at most, still not before the floor
        spool.clear()
        pump.configure(sink.fileno(), src.sock.getsockname(), -1, None, spool, 0, te_map, 0)
        src.send(rtp(7), port)
        pump.run(now - 40)
        assert [stamp for stamp, _ in records(spool)] == [now - 40]
    finally:
        pump.remove(sink.fileno())
        sink.close()
        src.close()


def test_one_run_serves_every_ready_socket_past_256() -> None:
    pump = _batchudp.Pump(stamps=True)
    sinks = [stamped_socket() for _ in range(300)]
    spools = [bytearray() for _ in sinks]
    te_map = bytes(128)
    src = Sender(mono_ms)
    try:
        for i, (sink, spool) in enumerate(zip(sinks, spools, strict=True)):
            pump.add(sink.fileno(), i)
            pump.configure(sink.fileno(), src.sock.getsockname(), -1, None, spool, 0, te_map)
            src.send(rtp(i), sink.getsockname()[1])
        wait_readable(sinks)  # every sink has its packet queued before the one run
        assert pump.run(mono_ms()) == (300, [])
        for i, spool in enumerate(spools):
            assert [data for _, data in records(spool)] == [rtp(i)]
        assert pump.run(mono_ms()) == (0, [])  # nothing served twice, nothing left
    finally:
        for sink in sinks:
            pump.remove(sink.fileno())
            sink.close()
        src.close()


# -- recorded streams, through the capture engine --------------------------------


async def open_stream(
    tmp_path: Path, on_dtmf: Callable[[DtmfDigit], None] | None = None
) -> tuple[RtpStreamSet, RtpReceiver, SpoolWriter, int, Callable[[], int]]:
    loop = asyncio.get_running_loop()
    writer = SpoolWriter(tmp_path)
    pool = RtpPortPool(43000, 44998)
    streams = RtpStreamSet(loop, HOST, pool)
    t0 = time.monotonic()

    def clock() -> int:  # the call's clock: loop.time() is time.monotonic() here
        return int((loop.time() - t0) * 1000)

    def sent_clock() -> int:  # the same clock, read live around each send
        return int((time.monotonic() - t0) * 1000)

    receiver = RtpReceiver(writer.stream(0), clock, on_dtmf, frozenset({101}))
    await streams.add(0, pool.acquire(), receiver)
    return streams, receiver, writer, streams.ports[0], sent_clock


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.001)


@pytest.mark.parametrize("reader", ["pump", "python"])
async def test_a_key_read_late_moves_the_gate_at_its_arrival(tmp_path: Path, reader: str) -> None:
    """Audio before the key is kept, after it dropped, though the loop reads them
    all in one go well after the key (the gate closes at the key's arrival)."""
    gate = CaptureGate()
    gate.set(0, True)
    digits: list[DtmfDigit] = []

    def on_dtmf(digit: DtmfDigit) -> None:
        digits.append(digit)
        gate.set(digit.start_ms, False)  # the key pauses the recording

    streams, receiver, writer, port, sent_clock = await open_stream(tmp_path, on_dtmf)
    src = Sender(sent_clock)
    try:
        src.send(rtp(0), port)  # latches (read in Python), then the pump serves
        await until(lambda: receiver.packets == 1)
        if reader == "python":  # a live listener keeps the stream read in Python
            receiver.listener = lambda data, now: None
        src.sent.clear()
        # the loop does not run while these are sent (blocked here)
        before = [rtp(seq) for seq in range(1, 6)]
        press = [key("1", 6, 160, False), key("1", 7, 320, True)]
        after = [rtp(seq) for seq in range(8, 13)]
        src.paced(before + press + after, port)
        time.sleep(LATE_S)
        read_from = sent_clock()
        await until(lambda: len(digits) == 1)
        key_sent = src.sent[len(before)]
        assert digits[0].digit == "1"
        assert key_sent[1] - SLACK_MS <= digits[0].start_ms <= key_sent[2] + SLACK_MS
        assert digits[0].start_ms < read_from - 100
        spool = writer.stream(0)
        got = list(spool.pending())
        assert_stamped_when_sent(got[1:], src.sent)
        spool.flush(gate, receiver.clock_ms())
        kept = records(spool.path.read_bytes())
        assert [data for _, data in kept] == [rtp(0), *before]
        assert spool.dropped == len(press) + len(after)
        # heard live, the stream is read from the relay's 2 ms pump; back after
        stream = streams._transports[0]
        assert isinstance(stream, PumpedStream)
        loop = asyncio.get_running_loop()
        wanted = engine_for(loop) if reader == "python" else capture_engine_for(loop)
        assert stream.engine is wanted
        receiver.listener = None
        src.send(rtp(13), port)
        await until(lambda: receiver.packets == 1 + len(src.sent))
        assert stream.engine is capture_engine_for(loop)
    finally:
        src.close()
        streams.close()
        writer.close()


async def test_the_hang_up_drain_places_600_ms_of_unread_audio_when_it_came(
    tmp_path: Path,
) -> None:
    streams, receiver, writer, port, sent_clock = await open_stream(tmp_path)
    src = Sender(sent_clock)
    try:
        src.send(rtp(0), port)
        await until(lambda: receiver.packets == 1)
        src.sent.clear()
        src.paced([rtp(seq) for seq in range(1, 31)], port)  # 600 ms; the loop never reads
        time.sleep(LATE_S)
        assert streams.drain() == 30
        got = list(writer.stream(0).pending())[1:]
        assert_stamped_when_sent(got, src.sent)
        assert got[-1][0] - got[0][0] >= 550  # spread as sent, not all at the hang-up
    finally:
        src.close()
        streams.close()
        writer.close()


def wait_readable(socks: list[socket.socket], deadline_s: float = 10.0) -> None:
    """Until every socket has a datagram queued (loopback delivery is not instant
    on a loaded host)."""
    poller = select.poll()
    for sock in socks:
        poller.register(sock, select.POLLIN)
    pending = {sock.fileno() for sock in socks}
    end = time.monotonic() + deadline_s
    while pending and time.monotonic() < end:
        for fd, _ in poller.poll(100):
            pending.discard(fd)
            poller.unregister(fd)
    assert not pending, f"{len(pending)} sockets got nothing"
