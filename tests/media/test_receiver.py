"""RTP capture: the receiver's per-packet path, source latching, RFC 4733
on the fly, and a loopback from the demo sender into the spool."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from callvault.media.dtmf import DtmfDigit, TelephoneEvent
from callvault.media.ports import RtpPortPool
from callvault.media.receiver import RtpReceiver, RtpStreamSet, open_stream
from callvault.media.rtp import RtpPacket
from callvault.media.sender import Impairments, RtpSender, packets_for
from callvault.recording.spool import SpoolReader, SpoolWriter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def rtp(pt: int, seq: int, ts: int, payload: bytes, ssrc: int = 1) -> bytes:
    return bytes(RtpPacket(pt, seq, ts, ssrc, payload))


def te(event: int, ts: int, duration: int, end: bool, seq: int) -> bytes:
    return rtp(101, seq, ts, bytes(TelephoneEvent(event, end, 10, duration)))


def test_packets_go_to_the_spool_with_arrival_time(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path)
    clock = FakeClock()
    receiver = RtpReceiver(writer.stream(3), clock, None, frozenset())
    assert receiver.stream_index == 3  # from the spool file name
    sent = [rtp(0, n, 160 * n, b"\xff" * 160) for n in range(5)]
    for n, packet in enumerate(sent):
        clock.now = 100 + 20 * n
        receiver.datagram_received(packet, ("192.0.2.1", 4000))
    writer.close()
    assert list(SpoolReader(tmp_path).packets(3)) == [(100 + 20 * n, p) for n, p in enumerate(sent)]
    assert receiver.packets == 5
    assert receiver.bytes == 5 * 172
    assert receiver.malformed == 0


def test_junk_is_counted_not_spooled(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path)
    receiver = RtpReceiver(writer.stream(0), FakeClock(), None, frozenset({101}))
    addr = ("192.0.2.1", 4000)
    receiver.datagram_received(b"short", addr)
    receiver.datagram_received(b"\x40" + bytes(20), addr)  # version 1
    receiver.datagram_received(bytes([0x80, 200]) + bytes(26), addr)  # muxed RTCP SR
    receiver.datagram_received(rtp(101, 1, 0, b"\x01\x02"), addr)  # short event payload
    writer.close()
    assert receiver.malformed == 3
    assert receiver.rtcp == 1
    assert receiver.packets == 1  # the bad event packet is still spooled as it came
    assert len(list(SpoolReader(tmp_path).packets(0))) == 1


def test_dtmf_only_on_telephone_event_payload_types(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path)
    clock = FakeClock()
    digits: list[DtmfDigit] = []
    receiver = RtpReceiver(writer.stream(1), clock, digits.append, frozenset())
    addr = ("192.0.2.1", 4000)
    packets = [te(5, 8000, 160 * (i + 1), i >= 4, i) for i in range(7)]
    for packet in packets:
        receiver.datagram_received(packet, addr)
    assert digits == []  # 101 not negotiated yet
    receiver.set_telephone_events({101})  # re-INVITE
    for n in range(len(packets)):
        clock.now = 1000 + 20 * n
        receiver.datagram_received(te(5, 16000, 160 * (n + 1), n >= 4, 10 + n), addr)
    writer.close()
    assert digits == [DtmfDigit("5", 1, 1000, 100)]
    assert receiver.dtmf_events == 1
    assert receiver.packets == 14


def test_lost_end_reported_by_tick_and_on_close(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path)
    clock = FakeClock()
    digits: list[DtmfDigit] = []
    receiver = RtpReceiver(writer.stream(0), clock, digits.append, frozenset({101}))
    addr = ("192.0.2.1", 4000)
    receiver.datagram_received(te(1, 0, 160, False, 0), addr)
    receiver.tick(500)
    assert digits == []
    receiver.tick(1000)
    assert [d.digit for d in digits] == ["1"]
    receiver.datagram_received(te(2, 8000, 160, False, 1), addr)
    receiver.connection_lost(None)
    writer.close()
    assert [d.digit for d in digits] == ["1", "2"]


def test_a_failing_dtmf_handler_does_not_break_capture(tmp_path: Path) -> None:
    def boom(_: DtmfDigit) -> None:
        raise RuntimeError("handler bug")

    writer = SpoolWriter(tmp_path)
    receiver = RtpReceiver(writer.stream(0), FakeClock(), boom, frozenset({101}))
    receiver.datagram_received(te(1, 0, 800, True, 0), ("192.0.2.1", 4000))
    receiver.datagram_received(rtp(0, 1, 160, b"\xff"), ("192.0.2.1", 4000))
    writer.close()
    assert receiver.packets == 2 and receiver.dtmf_events == 1


# -- ports --


def test_the_fast_tap_applies_only_in_the_common_case(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path)
    clock = FakeClock()
    receiver = RtpReceiver(writer.stream(0), clock, None, frozenset({101}))
    phone = ("192.0.2.1", 4000)
    assert receiver.fast_tap(phone) is None  # not latched yet: the packet latches
    receiver.datagram_received(rtp(0, 1, 160, b"\xff" * 160), phone)
    clock.now = 40
    tap = receiver.fast_tap(phone)
    assert tap is not None
    records, arrival_ms, te_map = tap
    assert records is writer.stream(0).buffer
    assert arrival_ms == 40 and [pt for pt in range(128) if te_map[pt]] == [101]
    assert receiver.fast_tap(("192.0.2.1", 4002)) is None  # another source
    receiver.set_telephone_events({96, 101})
    tap = receiver.fast_tap(phone)
    assert tap is not None and [pt for pt in range(128) if tap[2][pt]] == [96, 101]
    receiver.listener = lambda data, now: None  # live listening: every packet here
    assert receiver.fast_tap(phone) is None
    receiver.listener = None
    receiver.set_unprotect(lambda data: data)  # SRTP: decrypted here
    assert receiver.fast_tap(phone) is None


def test_absorb_takes_the_counts_and_tracks_the_events(tmp_path: Path) -> None:
    digits: list[DtmfDigit] = []
    receiver = RtpReceiver(SpoolWriter(tmp_path).stream(0), FakeClock(), digits.append)
    receiver.absorb((3, 500, 1, 2), [te(5, 800, 160, False, 1), te(5, 800, 400, True, 2)], 60)
    assert (receiver.packets, receiver.bytes, receiver.malformed, receiver.rtcp) == (3, 500, 1, 2)
    assert [(d.digit, d.start_ms, d.duration_ms) for d in digits] == [("5", 60, 50)]
    receiver.absorb((1, 16, 0, 0), [rtp(101, 3, 900, b"\x01")], 80)  # unparsable event
    assert (receiver.packets, receiver.malformed, receiver.dtmf_events) == (4, 2, 1)


def test_port_pool_hands_out_even_ports_until_exhausted() -> None:
    pool = RtpPortPool(10001, 10009)
    assert len(pool) == 4
    ports = [pool.acquire() for _ in range(4)]
    assert sorted(ports) == [10002, 10004, 10006, 10008]
    with pytest.raises(Exception, match="no free RTP port") as info:
        pool.acquire()
    assert type(info.value).__name__ == "PortsExhausted"
    pool.release(10004)
    pool.release(10004)  # twice: no effect
    pool.release(12345)  # not ours: no effect
    assert pool.available == 1 and pool.in_use == 3
    assert pool.acquire() == 10004


def test_port_pool_draws_ports_at_random() -> None:
    """Ports handed out in order are easy to guess (RTP injection): draw at random."""
    firsts = {RtpPortPool(20000, 30000).acquire() for _ in range(20)}
    assert len(firsts) > 10
    pool = RtpPortPool(20000, 30000)
    drawn = [pool.acquire() for _ in range(50)]
    assert drawn != sorted(drawn)
    assert all(p % 2 == 0 and 20000 <= p < 30000 for p in drawn)


# -- latching --


def test_receiver_latches_to_the_offered_host_and_drops_strangers(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path)
    receiver = RtpReceiver(
        writer.stream(0), FakeClock(), None, frozenset(), expected_host="192.0.2.1"
    )
    receiver.datagram_received(rtp(0, 1, 0, b"\x01" * 160), ("198.51.100.9", 4000))  # attacker
    receiver.datagram_received(rtp(0, 2, 160, b"\x02" * 160), ("192.0.2.1", 4000))  # latches
    receiver.datagram_received(rtp(0, 3, 320, b"\x03" * 160), ("192.0.2.1", 4002))  # other port
    receiver.datagram_received(rtp(0, 4, 480, b"\x04" * 160), ("192.0.2.1", 4000))
    writer.close()
    payloads = [RtpPacket.parse(p).payload[:1] for _, p in SpoolReader(tmp_path).packets(0)]
    assert payloads == [b"\x02", b"\x04"]
    assert receiver.foreign == 2 and receiver.packets == 2
    assert receiver.remote == ("192.0.2.1", 4000)


def test_receiver_without_an_offered_host_latches_to_the_first_source(tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path)
    receiver = RtpReceiver(writer.stream(0), FakeClock(), None, frozenset())
    receiver.datagram_received(rtp(0, 1, 0, b"\x01" * 160), ("192.0.2.1", 4000))
    receiver.datagram_received(rtp(0, 2, 160, b"\x02" * 160), ("198.51.100.9", 5000))
    assert receiver.packets == 1 and receiver.foreign == 1
    receiver.expect("198.51.100.9")  # a re-offer moved the stream
    receiver.datagram_received(rtp(0, 3, 320, b"\x03" * 160), ("192.0.2.1", 4000))
    receiver.datagram_received(rtp(0, 4, 480, b"\x04" * 160), ("198.51.100.9", 5000))
    assert receiver.packets == 2 and receiver.foreign == 2 and receiver.source_changes == 1
    writer.close()


@pytest.mark.parametrize(("start", "end"), [(10000, 10000), (10001, 10001), (0, 100)])
def test_port_pool_rejects_empty_ranges(start: int, end: int) -> None:
    with pytest.raises(ValueError):
        RtpPortPool(start, end)


# -- sockets --


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_open_stream_raises_the_receive_buffer(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    writer = SpoolWriter(tmp_path)
    receiver = RtpReceiver(writer.stream(0), FakeClock(), None, frozenset())
    transport = await open_stream(loop, "127.0.0.1", 0, receiver)
    try:
        sock = transport.get_extra_info("socket")
        default = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= min(
                1 << 20, default.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            )
        finally:
            default.close()
        assert receiver.transport is transport
    finally:
        transport.close()
        writer.close()


async def test_stream_set_opens_and_closes_and_releases_ports(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    writer = SpoolWriter(tmp_path)
    base = free_udp_port() & ~1
    pool = RtpPortPool(base, base + 20)
    streams = RtpStreamSet(loop, "127.0.0.1", pool)
    clock = FakeClock()
    for index in (0, 1):
        receiver = RtpReceiver(writer.stream(index), clock, None, frozenset())
        await streams.add(index, pool.acquire(), receiver)
    assert len(streams) == 2 and pool.in_use == 2
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.sendto(rtp(0, 1, 0, b"\xff" * 160), ("127.0.0.1", streams.ports[1]))
        for _ in range(100):
            if streams.receivers[1].packets:
                break
            await asyncio.sleep(0.01)
    assert streams.receivers[1].packets == 1
    assert streams.receivers[0].packets == 0
    streams.set_telephone_events({96})
    streams.tick(0)
    streams.close()
    await asyncio.sleep(0)
    assert len(streams) == 0 and pool.in_use == 0
    writer.close()
    assert len(list(SpoolReader(tmp_path).packets(1))) == 1


# -- loopback: sender with impairments and digits -> receiver -> spool --


async def test_loopback_sender_to_spool(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    writer = SpoolWriter(tmp_path)
    started = loop.time()

    def clock_ms() -> int:
        return int((loop.time() - started) * 1000)

    digits: list[DtmfDigit] = []
    receiver = RtpReceiver(writer.stream(2), clock_ms, digits.append, frozenset({101}))
    transport = await open_stream(loop, "127.0.0.1", 0, receiver)
    port = transport.get_extra_info("sockname")[1]
    impairments = Impairments(reorder_every=5, duplicate_every=6, drop_every=7)
    pcm = np.zeros(8000, dtype=np.int16)  # one second
    sender = RtpSender(pcm, "127.0.0.1", port, 0, impairments=impairments, seed=11)
    sender.send_digit("5", 100)
    sender.send_digit("#", 100)
    try:
        await sender.run()
        for _ in range(50):
            if receiver.packets >= sender.packets_sent:
                break
            await asyncio.sleep(0.01)
    finally:
        transport.close()
    await asyncio.sleep(0)
    writer.close()

    expected = packets_for(pcm, 0, digits=[(0, "5"), (0, "#")], impairments=impairments, seed=11)
    spooled = list(SpoolReader(tmp_path).packets(2))
    assert sender.packets_sent == len(expected)
    assert receiver.packets == len(expected)
    # Everything that was sent is in the spool, duplicates included.
    assert Counter(p for _, p in spooled) == Counter(expected)
    assert sender.impairments.duplicated and sender.impairments.reordered
    assert sender.impairments.dropped
    arrivals = [t for t, _ in spooled]
    assert arrivals == sorted(arrivals)
    assert 900 <= arrivals[-1] < 1300

    assert [(d.digit, d.stream_index, d.duration_ms) for d in digits] == [
        ("5", 2, 100),
        ("#", 2, 100),
    ]
    assert receiver.dtmf_events == 2
    assert 0 <= digits[0].start_ms < 60
    assert 120 <= digits[1].start_ms < 200  # 7 packet times later
    assert receiver.malformed == 0
    assert receiver.remote is not None and receiver.source_changes == 0


async def test_what_the_loop_had_not_read_at_hang_up_is_drained(tmp_path: Path) -> None:
    """Packets sent before the BYE but still in the socket (capture behind)
    are read at hang-up, not dropped with the socket."""
    loop = asyncio.get_running_loop()
    writer = SpoolWriter(tmp_path)
    base = free_udp_port() & ~1
    pool = RtpPortPool(base, base + 20)
    streams = RtpStreamSet(loop, "127.0.0.1", pool)
    receiver = RtpReceiver(writer.stream(0), FakeClock(), None, frozenset())
    await streams.add(0, pool.acquire(), receiver)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        for seq in range(30):  # the loop does not run in between: none is read yet
            peer.sendto(rtp(0, seq, 0, b"\xff" * 160), ("127.0.0.1", streams.ports[0]))
        assert receiver.packets == 0
        assert streams.drain() == 30
        assert streams.drain() == 0  # nothing twice
    assert receiver.packets == 30
    streams.close()
    writer.close()
    assert len(list(SpoolReader(tmp_path).packets(0))) == 30
