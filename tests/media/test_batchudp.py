"""The native batched UDP module (media/_batchudp.c) over real loopback sockets.

Where the extension was not built these tests are skipped, and the relay uses
its asyncio path; with CI=true the native path is required.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callvault.media import pump
from callvault.recording.spool import StreamSpool

try:
    from callvault.media import _batchudp
except ImportError:
    if os.environ.get("CI") == "true":
        raise  # CI builds it: a missing extension is a failure there
    pytest.skip(
        "callvault.media._batchudp is not built: the relay uses its asyncio path",
        allow_module_level=True,
    )


def test_the_relay_uses_the_batched_path() -> None:
    assert pump.BATCHED  # the relay and its pump take this path where it is true


@pytest.fixture
def v4() -> Iterator[list[socket.socket]]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
    yield socks
    for s in socks:
        s.close()


def drain(sock: socket.socket) -> list[tuple[bytes, Any]]:
    got = []
    while True:
        try:
            got.append(sock.recvfrom(65536))
        except BlockingIOError:
            return got


def test_recv_batch_reads_what_is_queued_without_blocking(v4: list[socket.socket]) -> None:
    sock, sender, _ = v4
    assert _batchudp.recv_batch(sock.fileno()) == []
    packets = [bytes([n]) * (n + 1) for n in range(5)]
    for p in packets:
        sender.sendto(p, sock.getsockname())
    first = _batchudp.recv_batch(sock.fileno(), 2)
    rest = _batchudp.recv_batch(sock.fileno())
    assert [d for d, _ in first + rest] == packets
    assert {a for _, a in first + rest} == {sender.getsockname()}
    with pytest.raises(ValueError):
        _batchudp.recv_batch(sock.fileno(), 0)


def test_a_datagram_of_any_size_is_received_whole(v4: list[socket.socket]) -> None:
    sock, sender, _ = v4
    big = os.urandom(65000)
    sender.sendto(big, sock.getsockname())
    assert _batchudp.recv_batch(sock.fileno()) == [(big, sender.getsockname())]


def test_send_batch_sends_more_than_one_batch(v4: list[socket.socket]) -> None:
    sock, sender, _ = v4
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    packets: list[tuple[bytes | bytearray, Any]] = [
        (n.to_bytes(2, "big"), sock.getsockname()) for n in range(150)
    ]
    packets[3] = (bytearray(b"\x00\x03"), sock.getsockname())  # any buffer
    assert _batchudp.send_batch(sender.fileno(), packets) == 150
    got = drain(sock)
    assert [int.from_bytes(d, "big") for d, _ in got] == list(range(150))
    with pytest.raises(ValueError, match="numeric"):
        _batchudp.send_batch(sender.fileno(), [(b"x", ("localhost", 9))])
    not_pairs: list[Any] = [b"x"]  # a buffer where a (buffer, address) pair belongs
    with pytest.raises(TypeError):
        _batchudp.send_batch(sender.fileno(), not_pairs)


def test_relay_forwards_the_latched_prefix_and_returns_the_rest(
    v4: list[socket.socket],
) -> None:
    leg, phone, stranger = v4
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.bind(("127.0.0.1", 0))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    try:
        for p in (b"one", b"two", b"three"):
            phone.sendto(p, leg.getsockname())
        stranger.sendto(b"injected", leg.getsockname())
        phone.sendto(b"four", leg.getsockname())
        latched = phone.getsockname()
        fast, sent, errors, packets, rest = _batchudp.relay(
            leg.fileno(), latched, out.fileno(), sink.getsockname(), True
        )
        assert (fast, sent, errors) == (3, 3, 0)
        assert packets == [b"one", b"two", b"three"]
        # from the first packet from elsewhere on: untouched, in order, not sent
        assert rest == [(b"injected", stranger.getsockname()), (b"four", latched)]
        assert [(d, a) for d, a in drain(sink)] == [
            (p, out.getsockname()) for p in (b"one", b"two", b"three")
        ]
        # no copies but the last (no tap); on hold (dest None): received, not sent
        for p in (b"five", b"six"):
            phone.sendto(p, leg.getsockname())
        assert _batchudp.relay(leg.fileno(), latched, out.fileno(), None, False) == (
            2,
            0,
            0,
            [b"six"],
            [],
        )
        assert drain(sink) == []
        assert _batchudp.relay(leg.fileno(), latched, -1, None, False) == (0, 0, 0, [], [])
    finally:
        out.close()
        sink.close()


def test_relay_refuses_a_name_before_receiving(v4: list[socket.socket]) -> None:
    leg, phone, _ = v4
    phone.sendto(b"kept", leg.getsockname())
    with pytest.raises(ValueError):
        _batchudp.relay(leg.fileno(), phone.getsockname(), phone.fileno(), ("a.example", 4), True)
    with pytest.raises(ValueError):
        _batchudp.relay(leg.fileno(), ("localhost", 1), -1, None, True)
    assert _batchudp.recv_batch(leg.fileno()) == [(b"kept", phone.getsockname())]


def test_relay_counts_what_the_kernel_refuses(v4: list[socket.socket]) -> None:
    leg, phone, _ = v4
    phone.sendto(b"x", leg.getsockname())
    v6_dest = ("::1", 9, 0, 0)  # an IPv4 socket cannot send to an IPv6 address
    fast, sent, errors, packets, _ = _batchudp.relay(
        leg.fileno(), phone.getsockname(), leg.fileno(), v6_dest, True
    )
    assert (fast, sent, errors, packets) == (1, 0, 1, [b"x"])


def test_relay_record_frames_records_as_the_spool_does(
    v4: list[socket.socket], tmp_path: Path
) -> None:
    leg, phone, stranger = v4
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    audio = bytes([0x80, 0]) + bytes(10) + b"\xff" * 160
    event = bytes([0x80, 101]) + bytes(10) + b"\x05\x0a\x00\xa0"
    marked_event = bytes([0x80, 0x80 | 101]) + bytes(14)
    rtcp = bytes([0x80, 200]) + bytes(26)
    burst = [audio, b"short", rtcp, event, b"\x40" + bytes(20), marked_event, audio[:12]]
    te_map = bytes(1 if pt == 101 else 0 for pt in range(128))
    try:
        for p in burst:
            phone.sendto(p, leg.getsockname())
        stranger.sendto(b"injected", leg.getsockname())
        spool = bytearray(b"before")
        latched = phone.getsockname()
        fast, sent, errors, last, events, counts, rest = _batchudp.relay_record(
            leg.fileno(), latched, leg.fileno(), sink.getsockname(), spool, 2**32 + 9, te_map
        )
        assert (fast, sent, errors, last) == (len(burst), len(burst), 0, audio[:12])
        assert [d for d, _ in drain(sink)] == burst  # junk and RTCP are relayed
        assert rest == [(b"injected", stranger.getsockname())]
        reference = StreamSpool(tmp_path / "stream-0.rtp")
        for p in (audio, event, marked_event, audio[:12]):
            reference.append(2**32 + 9, p)
        assert spool == b"before" + reference.buffer
        assert events == [event, marked_event]
        assert counts == (4, 172 + 16 + 16 + 12, 2, 1)
        # nothing queued: nothing spooled, no last packet
        assert _batchudp.relay_record(
            leg.fileno(), latched, -1, None, spool, 0, te_map
        ) == (0, 0, 0, None, [], (0, 0, 0, 0), [])
        assert spool == b"before" + reference.buffer
        with pytest.raises(TypeError):
            _batchudp.relay_record(leg.fileno(), latched, -1, None, spool, 0, b"short map")
        with pytest.raises(TypeError):
            _batchudp.relay_record(leg.fileno(), latched, -1, None, b"bytes", 0, te_map)  # type: ignore[arg-type]
    finally:
        sink.close()


def test_a_closed_descriptor_is_an_os_error() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fd = sock.fileno()
    sock.close()
    with pytest.raises(OSError):
        _batchudp.recv_batch(fd)


def test_ipv6_addresses_are_the_socket_modules() -> None:
    socks = []
    try:
        for _ in range(3):
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            socks.append(s)
            s.bind(("::1", 0))
            s.setblocking(False)
    except OSError:
        for s in socks:
            s.close()
        pytest.skip("no IPv6 loopback on this host")
    leg, phone, sink = socks
    try:
        phone.sendto(b"six", leg.getsockname())
        [(data, addr)] = _batchudp.recv_batch(leg.fileno())
        assert (data, addr) == (b"six", phone.getsockname())  # (host, port, flow, scope)
        phone.sendto(b"relayed", leg.getsockname())
        assert _batchudp.relay(leg.fileno(), addr, leg.fileno(), sink.getsockname(), False) == (
            1,
            1,
            0,
            [b"relayed"],
            [],
        )
        assert drain(sink) == [(b"relayed", leg.getsockname())]
        assert _batchudp.send_batch(phone.fileno(), [(b"v6", leg.getsockname())]) == 1
        assert _batchudp.recv_batch(leg.fileno()) == [(b"v6", phone.getsockname())]
    finally:
        for s in socks:
            s.close()


URING = _batchudp.Pump().uring()
"""Whether io_uring works here (a Pump falls back to sendmmsg where it does not)."""


@pytest.fixture(params=["io_uring", "sendmmsg"])
def uring(request: pytest.FixtureRequest) -> bool:
    if request.param == "io_uring" and not URING:
        pytest.skip("io_uring is not available here")
    return bool(request.param == "io_uring")


def bound(rcvbuf: int = 1 << 20) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


class Relayed:
    """``legs`` pumped sockets, each with its phone (the latched source) and,
    for its sends, a socket connected to its sink (the other party)."""

    def __init__(self, pump: _batchudp.Pump, legs: int) -> None:
        self.pump = pump
        self.phone = [bound() for _ in range(legs)]
        self.leg = [bound() for _ in range(legs)]
        self.out = [bound() for _ in range(legs)]
        self.sink = [bound() for _ in range(legs)]
        self.spool = [bytearray() for _ in range(legs)]
        for phone, leg, out, sink, spool in zip(
            self.phone, self.leg, self.out, self.sink, self.spool, strict=True
        ):
            out.connect(sink.getsockname())  # a latched leg's sends go with no address
            pump.add(leg.fileno(), leg)
            pump.configure(
                leg.fileno(),
                phone.getsockname(),
                out.fileno(),
                sink.getsockname(),
                spool,
                0,
                bytes(128),
            )

    def close(self) -> None:
        for leg in self.leg:
            self.pump.remove(leg.fileno())
        for socks in (self.phone, self.leg, self.out, self.sink):
            for sock in socks:
                sock.close()


def packet(leg: int, seq: int, size: int = 172) -> bytes:
    head = bytes([0x80, 0]) + seq.to_bytes(2, "big") + bytes(4) + leg.to_bytes(4, "big")
    return head + bytes((leg + seq + i) % 256 for i in range(size - len(head)))


def test_the_pump_can_be_asked_for_sendmmsg() -> None:
    assert _batchudp.Pump(uring=False).uring() is False


def test_a_run_relays_spools_and_counts_every_socket_s_packets(uring: bool) -> None:
    # 251 sockets with one packet each and one with 6 of 60000 bytes: more
    # than one submission's queue (256) and arena (4 x 64 KiB) in one run
    pump = _batchudp.Pump(uring=uring)
    assert pump.uring() is uring
    relayed = Relayed(pump, 252)
    try:
        sent: dict[int, list[bytes]] = {}
        for i, (phone, leg) in enumerate(zip(relayed.phone, relayed.leg, strict=True)):
            sent[i] = [packet(i, seq, 60000) for seq in range(6)] if i == 251 else [packet(i, 0)]
            for data in sent[i]:
                phone.sendto(data, leg.getsockname())
        ready, handoff = pump.run(1000)
        assert (ready, handoff) == (252, [])
        for i, sink in enumerate(relayed.sink):
            got = drain(sink)
            assert [data for data, _ in got] == sent[i]
            assert {addr for _, addr in got} == {relayed.out[i].getsockname()}
            sums = pump.collect(relayed.leg[i].fileno())
            assert sums is not None
            fast, n_sent, errors, held, counts, last = sums
            assert (fast, n_sent, errors, held) == (len(sent[i]), len(sent[i]), 0, 0)
            assert counts == (len(sent[i]), sum(map(len, sent[i])), 0, 0)
            assert last == sent[i][-1]
            records = bytes(relayed.spool[i])
            for data in sent[i]:  # <u32 arrival_ms><u16 length><packet>
                head = (1000).to_bytes(4, "little") + len(data).to_bytes(2, "little")
                assert records[: 6 + len(data)] == head + data
                records = records[6 + len(data) :]
            assert records == b""
    finally:
        relayed.close()


def sums(pump: _batchudp.Pump, leg: socket.socket) -> tuple[int, int, int, int]:
    """(fast, sent, errors, held) since the last collect."""
    collected = pump.collect(leg.fileno())
    assert collected is not None
    return collected[:4]


def test_a_refused_send_is_counted_and_the_others_go(uring: bool) -> None:
    pump = _batchudp.Pump(uring=uring)
    relayed = Relayed(pump, 3)
    try:
        relayed.sink[1].close()  # its port closed: the kernel refuses the second send
        for round_ in range(2):
            for i, (phone, leg) in enumerate(zip(relayed.phone, relayed.leg, strict=True)):
                phone.sendto(packet(i, round_), leg.getsockname())
            assert pump.run(0) == (3, [])
        for i in (0, 2):
            assert [data for data, _ in drain(relayed.sink[i])] == [packet(i, 0), packet(i, 1)]
            assert sums(pump, relayed.leg[i]) == (2, 2, 0, 0)
        # the first went (ICMP port unreachable came back), the second was refused
        assert sums(pump, relayed.leg[1]) == (2, 1, 1, 0)
        assert len(relayed.spool[1]) == 2 * (6 + 172)  # recorded all the same
    finally:
        relayed.sink[1] = bound()  # closed above: close() closes a fresh one
        relayed.close()
