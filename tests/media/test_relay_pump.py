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
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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
