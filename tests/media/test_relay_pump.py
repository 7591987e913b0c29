"""The relay's native pump (``_batchudp.Pump`` driven by ``pump.Engine``):
every relay socket of the loop in one epoll set, legs in their common case
served in C, handed back to Python when their state changes.

Over real loopback sockets: after the first batch a configured leg's packets
never reach ``_Leg.readable`` (Python), yet they are relayed, spooled and
counted exactly as before; each kind of state change (a listener, a new
address, a prompt) takes the leg back to Python at once.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from tests.media.test_relay_tap import HOST, Phone, phones, rtp, until

from callvault.media import pump as pump_module
from callvault.media.ports import RtpPortPool
from callvault.media.receiver import RtpReceiver
from callvault.media.relay import MediaRelay, Side, _Leg
from callvault.recording.spool import StreamSpool

try:
    from callvault.media import _batchudp
except ImportError:
    if os.environ.get("CI") == "true":
        raise  # CI builds it: the pump must be tested there
    pytest.skip("callvault.media._batchudp is not built", allow_module_level=True)


@pytest.fixture(autouse=True, params=["io_uring", "sendmmsg"])
def sends(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test both ways: the pump's sends of a run in one io_uring
    submission, and with a sendmmsg per socket (what runs where io_uring_setup
    fails; ``CALLVAULT_IO_URING=0``)."""
    uring = request.param == "io_uring"
    if uring and not _batchudp.Pump().uring():
        pytest.skip("io_uring is not available here")
    monkeypatch.setattr(pump_module, "URING", uring)
    return cast(str, request.param)


def test_the_pump_sends_as_asked(sends: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        assert pump_module.engine_for(loop).pump.uring() is (sends == "io_uring")
    finally:
        loop.close()


@pytest.fixture
async def relay() -> AsyncIterator[MediaRelay]:
    relay = MediaRelay(asyncio.get_running_loop(), HOST, RtpPortPool(45000, 46998), batched=True)
    await relay.open()
    yield relay
    relay.close()


@pytest.fixture
def python_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sides whose socket Python read, one entry per batch."""
    reads: list[str] = []
    readable = _Leg.readable

    def spy(self: _Leg) -> None:
        reads.append(self.side)
        readable(self)

    monkeypatch.setattr(_Leg, "readable", spy)
    return reads


def recorder(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> RtpReceiver:
    t0 = loop.time()  # the recording's clock runs with the loop's, as a call's does
    spool = StreamSpool(tmp_path / "stream-0.rtp")
    return RtpReceiver(spool, lambda: int((loop.time() - t0) * 1000), None, frozenset({101}))


async def send_one_by_one(phone: Phone, port: int, peer: Phone, seqs: range) -> None:
    for seq in seqs:
        phone.send(rtp(0, seq), port)
        await until(lambda seq=seq: rtp(0, seq) in peer.got)  # type: ignore[misc]


async def test_a_configured_leg_is_served_in_c(
    relay: MediaRelay, tmp_path: Path, python_reads: list[str]
) -> None:
    a, b = await phones(relay)
    tapped = recorder(tmp_path, asyncio.get_running_loop())
    relay.set_tap("a", tapped.datagram_received)
    port = relay.local_port("a")
    await send_one_by_one(a, port, b, range(0, 3))  # latching, then the first native batch
    before = len(python_reads)
    await send_one_by_one(a, port, b, range(3, 53))  # 50 batches
    assert python_reads.count("a") == before  # none of them reached Python
    assert b.got == [rtp(0, seq) for seq in range(53)]
    relay.collect()
    assert tapped.packets == 53 and tapped.bytes == 53 * 172
    assert [packet for _, packet in tapped._spool.pending()] == b.got
    assert relay.stats()["relayed_a_to_b"] == 53


async def test_arrival_times_follow_the_recordings_clock(relay: MediaRelay, tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    a, b = await phones(relay)
    tapped = recorder(tmp_path, loop)
    relay.set_tap("a", tapped.datagram_received)
    port = relay.local_port("a")
    await send_one_by_one(a, port, b, range(0, 3))
    await asyncio.sleep(0.2)  # the clock advances while the pump serves the leg
    await send_one_by_one(a, port, b, range(3, 5))
    stamps = [arrival for arrival, _ in tapped._spool.pending()]
    assert stamps == sorted(stamps)
    assert stamps[-1] - stamps[2] >= 190  # stamped when served, on the call's clock


async def test_a_listener_takes_the_leg_back_to_python(
    relay: MediaRelay, tmp_path: Path, python_reads: list[str]
) -> None:
    a, b = await phones(relay)
    tapped = recorder(tmp_path, asyncio.get_running_loop())
    relay.set_tap("a", tapped.datagram_received)
    port = relay.local_port("a")
    await send_one_by_one(a, port, b, range(0, 5))
    heard: list[bytes] = []
    tapped.listener = lambda data, now: heard.append(data)  # LiveCenter starts listening
    await send_one_by_one(a, port, b, range(5, 10))
    assert heard == [rtp(0, seq) for seq in range(5, 10)]
    tapped.listener = None
    reads = python_reads.count("a")
    await send_one_by_one(a, port, b, range(10, 20))
    assert python_reads.count("a") == reads + 1  # one batch to configure again
    relay.collect()
    assert tapped.packets == 20


async def test_a_moved_party_latches_again(relay: MediaRelay, tmp_path: Path) -> None:
    a, b = await phones(relay)
    port = relay.local_port("a")
    await send_one_by_one(a, port, b, range(0, 5))
    loop = asyncio.get_running_loop()
    _, moved = await loop.create_datagram_endpoint(Phone, local_addr=(HOST, 0))
    relay.set_remote("a", HOST, moved.addr[1])  # a transfer: another phone, same host
    await send_one_by_one(moved, port, b, range(5, 10))
    a.send(rtp(0, 99), port)  # the old phone is a stranger now
    moved.send(rtp(0, 10), port)
    await until(lambda: rtp(0, 10) in b.got)
    assert rtp(0, 99) not in b.got
    assert relay.stats()["foreign"] == 0  # dropped by the kernel: the socket is connected
    relay.set_remote("b", HOST, b.addr[1])
    b.send(rtp(0, 1), relay.local_port("b"))
    await until(lambda: rtp(0, 1) in moved.got)  # answered where it now comes from


def kernel_peer(relay: MediaRelay, side: Side) -> Any:
    """Where the kernel says the leg's socket is connected (None: it is not)."""
    sock = relay._legs[side].sock
    assert sock is not None
    try:
        return sock.getpeername()
    except OSError:  # ENOTCONN
        return None


async def test_a_latched_leg_is_connected_and_a_new_address_is_followed(
    relay: MediaRelay, tmp_path: Path
) -> None:
    loop = asyncio.get_running_loop()
    a, b = await phones(relay)
    tapped = recorder(tmp_path, loop)
    relay.set_tap("a", tapped.datagram_received)
    port = relay.local_port("a")
    assert kernel_peer(relay, "a") is None  # nothing latched yet: any source may come
    await send_one_by_one(a, port, b, range(0, 3))
    assert kernel_peer(relay, "a") == a.addr  # latched: the kernel enforces it
    _, stranger = await loop.create_datagram_endpoint(Phone, local_addr=(HOST, 0))
    for seq in range(100, 110):  # injection on the connected path
        stranger.send(rtp(0, seq), port)
    await send_one_by_one(a, port, b, range(3, 6))
    relay.collect()
    assert b.got == [rtp(0, seq) for seq in range(6)]  # never relayed ...
    assert [packet for _, packet in tapped._spool.pending()] == b.got  # ... nor recorded
    # a re-INVITE: a's media now comes from another address
    _, moved = await loop.create_datagram_endpoint(Phone, local_addr=(HOST, 0))
    relay.set_remote("a", HOST, moved.addr[1])
    tapped.relatch()  # as the B2BUA's call does on a re-INVITE
    assert kernel_peer(relay, "a") is None  # the latch is dropped, and the connection
    await send_one_by_one(moved, port, b, range(6, 9))
    assert kernel_peer(relay, "a") == moved.addr
    a.send(rtp(0, 99), port)  # the old phone is a stranger now
    await send_one_by_one(moved, port, b, range(9, 12))
    relay.collect()
    assert b.got == [rtp(0, seq) for seq in range(12)]
    assert [packet for _, packet in tapped._spool.pending()] == b.got
    b.send(rtp(0, 1), relay.local_port("b"))
    await until(lambda: rtp(0, 1) in moved.got)  # sent on a's connected socket
    assert a.got == [] and stranger.got == []
    for phone in (stranger, moved):
        assert phone.transport is not None
        phone.transport.close()


def failing_set_peer(monkeypatch: pytest.MonkeyPatch, *, connect_too: bool) -> None:
    """``_batchudp.set_peer`` fails to disconnect (and to connect, ``connect_too``)."""
    set_peer = _batchudp.set_peer

    def refuse(fd: int, address: Any) -> None:
        if address is None or connect_too:
            raise OSError(errno.EINVAL, "refused by the test")
        set_peer(fd, address)

    monkeypatch.setattr(_batchudp, "set_peer", refuse)


async def test_a_socket_that_cannot_be_disconnected_is_connected_to_the_new_sdp_address(
    relay: MediaRelay,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    a, b = await phones(relay)
    tapped = recorder(tmp_path, loop)
    relay.set_tap("a", tapped.datagram_received)
    port = relay.local_port("a")
    await send_one_by_one(a, port, b, range(0, 3))
    assert kernel_peer(relay, "a") == a.addr
    failing_set_peer(monkeypatch, connect_too=False)
    # a re-INVITE: a's media now comes from another address
    _, moved = await loop.create_datagram_endpoint(Phone, local_addr=(HOST, 0))
    relay.set_remote("a", HOST, moved.addr[1])
    tapped.relatch()
    assert relay._legs["a"].connected == kernel_peer(relay, "a") == moved.addr
    assert any(
        record.levelname == "ERROR" and "not disconnected" in record.getMessage()
        for record in caplog.records
    )
    await send_one_by_one(moved, port, b, range(3, 9))  # heard ...
    relay.collect()
    assert b.got == [rtp(0, seq) for seq in range(9)]
    assert [packet for _, packet in tapped._spool.pending()] == b.got  # ... and recorded
    assert relay._legs["a"].latched == moved.addr
    b.send(rtp(0, 1), relay.local_port("b"))
    await until(lambda: rtp(0, 1) in moved.got)  # and hears b
    assert moved.transport is not None
    moved.transport.close()


async def test_a_socket_that_stays_connected_says_so(
    relay: MediaRelay,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    a, b = await phones(relay)
    await send_one_by_one(a, relay.local_port("a"), b, range(0, 3))
    failing_set_peer(monkeypatch, connect_too=True)
    _, moved = await loop.create_datagram_endpoint(Phone, local_addr=(HOST, 0))
    relay.set_remote("a", HOST, moved.addr[1])
    leg = relay._legs["a"]
    # the leg's state is the kernel's: still connected to the old latch, said at error
    assert leg.connected == kernel_peer(relay, "a") == a.addr
    assert leg.latched is None
    assert any(
        record.levelname == "ERROR" and "still connected" in record.getMessage()
        for record in caplog.records
    )
    monkeypatch.undo()  # disconnecting works again: the next move of a's address does it
    _, again = await loop.create_datagram_endpoint(Phone, local_addr=(HOST, 0))
    relay.set_remote("a", HOST, again.addr[1])
    assert leg.connected is None and kernel_peer(relay, "a") is None
    await send_one_by_one(again, relay.local_port("a"), b, range(3, 6))
    assert kernel_peer(relay, "a") == again.addr
    for phone in (moved, again):
        assert phone.transport is not None
        phone.transport.close()


async def test_a_prompt_is_heard_instead_of_the_other_side(
    relay: MediaRelay, tmp_path: Path
) -> None:
    a, b = await phones(relay)
    port = relay.local_port("a")
    await send_one_by_one(a, port, b, range(0, 5))  # served in C from here
    done = asyncio.Event()
    relay.play("b", bytes(8000 * 2 // 10), on_done=done.set)  # 100 ms of silence
    a.send(rtp(0, 5), port)
    await asyncio.wait_for(done.wait(), 5)
    assert relay.stats()["muted"] >= 1  # the relayed packet gave way to the prompt
    assert relay.stats()["played_frames"] == 5
    heard = len(b.got)
    for seq in range(6, 8):  # relayed again, renumbered (so compared by payload)
        a.send(rtp(0, seq, b"\x01" * 160), port)
    await until(lambda: len(b.got) == heard + 2)
    assert all(packet[12:] == b"\x01" * 160 for packet in b.got[-2:])


async def test_on_hold_is_counted_and_nothing_is_sent(relay: MediaRelay, tmp_path: Path) -> None:
    a, b = await phones(relay)
    port = relay.local_port("a")
    await send_one_by_one(a, port, b, range(0, 3))
    relay.set_remote("b", "0.0.0.0", 0)  # b puts the call on hold
    for seq in range(3, 13):
        a.send(rtp(0, seq), port)
    await until(lambda: relay.stats()["on_hold"] == 10)
    assert len(b.got) == 3


async def test_many_sockets_are_served_by_one_run(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    pool = RtpPortPool(43000, 44998)
    relays = [MediaRelay(loop, HOST, pool, batched=True) for _ in range(20)]
    for each in relays:
        await each.open()
    try:
        pairs = [await phones(each) for each in relays]
        for each, (a, b) in zip(relays, pairs, strict=True):
            await send_one_by_one(a, each.local_port("a"), b, range(0, 2))
        engine = pump_module._engines[loop]
        runs: list[int] = []
        run = engine._run

        def counting() -> int:
            ready = run()
            runs.append(ready)
            return ready

        engine._run = counting  # type: ignore[method-assign]
        for each, (a, _) in zip(relays, pairs, strict=True):  # all queued before a run
            a.send(rtp(0, 2), each.local_port("a"))
        await until(lambda: all(rtp(0, 2) in b.got for _, b in pairs))
        assert max(runs) > 1  # one wake-up served several sockets
    finally:
        for each in relays:
            each.close()


def test_the_pump_refuses_what_it_cannot_serve() -> None:
    pump = _batchudp.Pump()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert pump.run(0) == (0, [])
        with pytest.raises(KeyError):
            pump.collect(sock.fileno())
        pump.add(sock.fileno(), "leg")
        with pytest.raises(ValueError):
            pump.add(sock.fileno(), "leg")
        with pytest.raises(ValueError):
            pump.configure(sock.fileno(), ("localhost", 5), -1, None, None, 0, None)
        with pytest.raises(TypeError):
            pump.configure(sock.fileno(), (HOST, 5), -1, None, b"no", 0, bytes(128))  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            pump.configure(sock.fileno(), (HOST, 5), -1, None, bytearray(), 0, b"short")
        assert pump.remove(sock.fileno()) is None  # nothing was served
        with pytest.raises(KeyError):
            pump.unconfigure(sock.fileno())
    finally:
        sock.close()


async def test_what_the_loop_had_not_read_at_hang_up_is_relayed_and_recorded(
    relay: MediaRelay, tmp_path: Path
) -> None:
    a, b = await phones(relay)
    tapped = recorder(tmp_path, asyncio.get_running_loop())
    relay.set_tap("a", tapped.datagram_received)
    port = relay.local_port("a")
    await send_one_by_one(a, port, b, range(0, 3))  # configured in the pump
    assert a.transport is not None
    for seq in range(3, 40):  # sent before the BYE, not read: the loop does not run
        a.transport.sendto(rtp(0, seq), (HOST, port))
    relay.drain()
    assert tapped.packets == 40
    assert relay.stats()["relayed_a_to_b"] == 40


def taps(relay: MediaRelay, tmp_path: Path) -> dict[Side, RtpReceiver]:
    """A recording receiver on each side, on the loop's clock."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    made: dict[Side, RtpReceiver] = {}
    sides: tuple[Side, Side] = ("a", "b")
    for index, side in enumerate(sides):
        spool = StreamSpool(tmp_path / f"stream-{index}.rtp")
        made[side] = RtpReceiver(
            spool, lambda: int((loop.time() - t0) * 1000), None, frozenset({101})
        )
        relay.set_tap(side, made[side].datagram_received)
    return made


def recorded(relay: MediaRelay, tap: RtpReceiver) -> list[bytes]:
    relay.collect()
    return [packet for _, packet in tap._spool.pending()]


@pytest.fixture
async def loop_errors() -> list[dict[str, Any]]:
    """What the loop's callbacks raised (the loop logs it and goes on)."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
    return errors


async def close(phone: Phone) -> tuple[str, int]:
    """The phone closes its RTP socket (restarting its media); returns its address."""
    addr = phone.addr
    assert phone.transport is not None
    phone.transport.close()
    await asyncio.sleep(0)  # closed on the loop's next turn
    return addr


async def reopen(addr: tuple[str, int]) -> Phone:
    """The phone opens its RTP socket on the same port again."""
    loop = asyncio.get_running_loop()
    _, phone = await loop.create_datagram_endpoint(Phone, local_addr=addr)
    return phone


async def a_phone_away_and_back(
    relay: MediaRelay,
    tapped: dict[Side, RtpReceiver],
    a: Phone,
    b: Phone,
    python_reads: list[str] | None = None,
) -> tuple[Phone, int]:
    """b closes its port while a talks on (so the relay's sends to b are answered
    with ICMP port unreachable), then opens it again and talks: the call goes on
    both ways, everything is recorded. Returns b's new socket and the next
    sequence number of a."""
    a_port, b_port = relay.local_port("a"), relay.local_port("b")
    await send_one_by_one(a, a_port, b, range(0, 3))
    await send_one_by_one(b, b_port, a, range(0, 3))  # both latched (and connected)
    addr = await close(b)
    seq = 3
    while True:  # each one recorded (and sent or refused) before the next is sent
        relayed = relay.stats()["relayed_a_to_b"]
        a.send(rtp(0, seq), a_port)
        await until(lambda seq=seq: rtp(0, seq) in recorded(relay, tapped["a"]))  # type: ignore[misc]
        seq += 1
        if seq >= 23 and relay.stats()["relayed_a_to_b"] > relayed:
            break  # it went out to the closed port: its ICMP error waits on b's
            # leg socket for the next read there (the ICMP error of one refused
            # send is reported to the next send)
    b = await reopen(addr)
    reads = python_reads.count("b") if python_reads is not None else 0
    await send_one_by_one(b, b_port, a, range(3, 4))
    if python_reads is not None:  # ECONNREFUSED: the pump handed b's leg to Python
        assert python_reads.count("b") > reads
    await send_one_by_one(b, b_port, a, range(4, 13))  # b is heard again ...
    await send_one_by_one(a, a_port, b, range(seq, seq + 10))  # ... and hears a
    assert a.got == [rtp(0, n) for n in range(13)]
    assert b.got == [rtp(0, n) for n in range(seq, seq + 10)]
    assert recorded(relay, tapped["a"]) == [rtp(0, n) for n in range(seq + 10)]
    assert recorded(relay, tapped["b"]) == [rtp(0, n) for n in range(13)]
    stats = relay.stats()
    assert stats["relayed_b_to_a"] == 13
    # each of a's packets went out (into b's closed port, while b was away) or
    # was refused (the ICMP error of an earlier one reported to its send)
    assert stats["relayed_a_to_b"] + stats["send_errors"] == seq + 10
    assert stats["foreign"] == stats["on_hold"] == stats["muted"] == 0
    return b, seq + 10


async def test_a_phone_that_closes_its_port_for_a_while_is_heard_again(
    relay: MediaRelay, tmp_path: Path, python_reads: list[str], loop_errors: list[Any]
) -> None:
    a, b = await phones(relay)
    tapped = taps(relay, tmp_path)
    b, seq = await a_phone_away_and_back(relay, tapped, a, b, python_reads)
    assert relay.stats()["send_errors"] >= 1  # the ICMP errors came back
    assert kernel_peer(relay, "b") == b.addr  # still latched, still connected
    reads = python_reads.count("a"), python_reads.count("b")
    await send_one_by_one(b, relay.local_port("b"), a, range(13, 23))
    await send_one_by_one(a, relay.local_port("a"), b, range(seq, seq + 10))
    assert (python_reads.count("a"), python_reads.count("b")) == reads  # both in C again
    assert recorded(relay, tapped["a"]) == [rtp(0, n) for n in range(seq + 10)]
    assert recorded(relay, tapped["b"]) == [rtp(0, seq) for seq in range(23)]
    assert loop_errors == []


async def test_a_phone_away_and_back_while_python_reads_its_leg(
    relay: MediaRelay, tmp_path: Path, python_reads: list[str], loop_errors: list[Any]
) -> None:
    a, b = await phones(relay)
    tapped = taps(relay, tmp_path)
    relay.hide_code("b", "*9")  # b's packets are filtered in Python: its leg is not pumped
    before = python_reads.count("b")
    b, _ = await a_phone_away_and_back(relay, tapped, a, b, python_reads)
    assert python_reads.count("b") >= before + 13  # read by Python all along
    assert relay.stats()["send_errors"] >= 1  # the ICMP errors came back
    relay.hide_code("b", None)
    await send_one_by_one(b, relay.local_port("b"), a, range(13, 15))
    reads = python_reads.count("b")
    await send_one_by_one(b, relay.local_port("b"), a, range(15, 25))
    assert python_reads.count("b") == reads  # in C again
    assert recorded(relay, tapped["b"]) == [rtp(0, seq) for seq in range(25)]
    assert loop_errors == []


async def test_a_phone_away_and_back_on_the_asyncio_path(
    tmp_path: Path, loop_errors: list[Any]
) -> None:
    loop = asyncio.get_running_loop()
    relay = MediaRelay(loop, HOST, RtpPortPool(45000, 46998), batched=False)
    await relay.open()
    try:
        a, b = await phones(relay)
        await a_phone_away_and_back(relay, taps(relay, tmp_path), a, b)
    finally:
        relay.close()
    assert loop_errors == []


async def b_leaves_packets_unread_and_is_gone(
    relay: MediaRelay, tmp_path: Path
) -> tuple[Phone, dict[Side, RtpReceiver], int]:
    """Both phones latched, connected and pumped; then b's last packets (seq 3-7)
    wait unread on its leg socket and b closes its port. The loop does not run
    from here. Returns phone a, the taps and a's leg port."""
    a, b = await phones(relay)
    tapped = taps(relay, tmp_path)
    a_port, b_port = relay.local_port("a"), relay.local_port("b")
    await send_one_by_one(a, a_port, b, range(0, 3))
    await send_one_by_one(b, b_port, a, range(0, 3))
    addr = await close(b)
    last = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    last.bind(addr)
    for seq in range(3, 8):
        last.sendto(rtp(0, seq), (HOST, b_port))
    last.close()
    assert a.transport is not None
    return a, tapped, a_port


async def test_packets_queued_behind_an_icmp_error_are_drained_at_hang_up(
    relay: MediaRelay, tmp_path: Path
) -> None:
    a, tapped, a_port = await b_leaves_packets_unread_and_is_gone(relay, tmp_path)
    assert a.transport is not None
    a.transport.sendto(rtp(0, 3), (HOST, a_port))  # ... while a still talks
    relay.drain()  # the BYE: a's packet is relayed to b's closed port first
    assert relay.stats()["relayed_a_to_b"] == 4  # so b's leg now has an ICMP error
    assert recorded(relay, tapped["a"]) == [rtp(0, seq) for seq in range(4)]
    assert recorded(relay, tapped["b"]) == [rtp(0, seq) for seq in range(8)]
    assert a.got == [rtp(0, seq) for seq in range(3)]  # not heard: the loop did not run


async def test_packets_queued_behind_icmp_errors_in_a_row_are_drained_at_hang_up(
    relay: MediaRelay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, tapped, a_port = await b_leaves_packets_unread_and_is_gone(relay, tmp_path)
    # A socket holds one pending error, reported to one read. Over a network
    # the ICMP replies to what was relayed to b's closed port come late: one
    # arrives after each of b's reads that reported the one before. Here each
    # such read sends one more packet to the closed port (a real ICMP error
    # for the next read), three times: three errors in a row.
    leg = relay._legs["b"]
    assert leg.sock is not None
    refused: list[int | None] = []
    receive = _Leg._receive

    def late_icmp(self: _Leg) -> Any:
        try:
            return receive(self)
        except OSError as exc:
            refused.append(exc.errno)
            if self is leg and len(refused) < 3:
                cast(socket.socket, leg.sock).send(rtp(0, 99))
            raise

    monkeypatch.setattr(_Leg, "_receive", late_icmp)
    assert a.transport is not None
    a.transport.sendto(rtp(0, 3), (HOST, a_port))  # relayed to b's closed port at the drain
    relay.drain()
    assert refused == [errno.ECONNREFUSED] * 3
    assert recorded(relay, tapped["b"]) == [rtp(0, seq) for seq in range(8)]
    assert recorded(relay, tapped["a"]) == [rtp(0, seq) for seq in range(4)]
    assert relay.stats()["relayed_b_to_a"] == 8


async def test_a_prompt_to_a_phone_whose_port_is_closed(
    relay: MediaRelay, tmp_path: Path, loop_errors: list[Any]
) -> None:
    a, b = await phones(relay)
    tapped = taps(relay, tmp_path)
    a_port, b_port = relay.local_port("a"), relay.local_port("b")
    await send_one_by_one(a, a_port, b, range(0, 3))
    await send_one_by_one(b, b_port, a, range(0, 3))
    addr = await close(b)
    done = asyncio.Event()
    relay.play("b", bytes(8000 * 2 // 10), on_done=done.set)  # sent by Python to a closed port
    await asyncio.wait_for(done.wait(), 5)
    assert relay.stats()["played_frames"] == 5
    b = await reopen(addr)
    await send_one_by_one(b, b_port, a, range(3, 8))
    # a's packets now go to b renumbered after the prompt (Python sends them):
    # told apart by payload
    for seq in range(3, 8):
        a.send(rtp(0, seq, bytes([seq]) * 160), a_port)
        await until(lambda seq=seq: any(p[12:] == bytes([seq]) * 160 for p in b.got))  # type: ignore[misc]
    assert [packet[12:] for packet in b.got] == [bytes([seq]) * 160 for seq in range(3, 8)]
    assert a.got == [rtp(0, seq) for seq in range(8)]
    assert recorded(relay, tapped["b"]) == [rtp(0, seq) for seq in range(8)]
    assert recorded(relay, tapped["a"])[3:] == [rtp(0, n, bytes([n]) * 160) for n in range(3, 8)]
    stats = relay.stats()
    assert stats["relayed_a_to_b"] == 8
    assert stats["send_errors"] <= 5  # prompt frames refused, if any (ICMP reported to a send)
    assert loop_errors == []
