"""The native pump: every media socket of an event loop in one epoll set.

Issue 10 (the B2BUA's relay) and issue 12 (capture per packet): Python's
socket module reads one datagram per system call and the event loop calls
Python once per readable socket; at thousands of packets a second that per
wake-up cost is most of the CPU. ``_batchudp.Pump`` (``media/_batchudp.c``)
holds the sockets of relay legs (``media/relay.py``) and of recorded SIPREC
streams (``media/capture.py``) in one epoll set and serves, in C, each socket
that is *configured*: packets from its latched source are forwarded to the
other leg (relay) and appended to the recording's spool buffer (both), with
no Python per packet. Python keeps what needs it: a socket that is not
configured (its owner reads it: ``readable``), packets from another source,
RFC 4733 packets for the DTMF tracker, and the counters (collected).

What is registered is a ``Pumped`` object; the owner configures its socket
after reading a batch itself and unconfigures it (``invalidate``) before its
state changes, so the pump never acts on stale state.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any, Protocol

try:
    from callvault.media import _batchudp

    BATCHED = True
    """Whether media sockets are read with recvmmsg/sendmmsg (the native path)."""
except ImportError:  # built with optional=True: no compiler, not Linux
    BATCHED = False


class Pumped(Protocol):
    """A socket's owner as the pump sees it."""

    fd: int
    recorder: Any  # an RtpReceiver (or None): RFC 4733 packets go to its absorb

    def readable(self) -> int: ...
    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None: ...
    def absorb(self, sums: Any) -> None: ...


POLL_S = 0.002
"""While packets keep coming, the pump is run on a timer this often instead of
on each socket's readiness: one wake-up serves every socket that has packets.
A packet waits up to this long more. Measured (bench/relay.py, 200 pairs,
quiet VM): 1 ms cost 11.6-12.6 us per relayed packet at 20k pps, 2 ms 8.6,
4 ms 9.4-9.5 (the per-tick work spread over more packets); 2 ms keeps the
added latency at p50 1.4-2.4 ms."""
CAPTURE_POLL_S = int(os.environ.get("CALLVAULT_CAPTURE_POLL_MS", "50")) / 1000
"""The same for recorded streams' sockets (``capture_engine_for``): nothing is
relayed, and each packet is stamped with the kernel's receive time
(SO_TIMESTAMPNS), not the time it is read, so reading later costs no timing
accuracy. A 20 ms stream then yields 2-3 packets per recvmmsg instead of one
(one system call and one spool append per socket for those). What it delays:
RFC 4733 keys reach the live policy up to this much later; their stamps stay
exact, so the gate still moves at the key's arrival. A stream LiveCenter
listens to is read on the relay's engine (``POLL_S``) meanwhile
(``capture.PumpedStream``). ``CALLVAULT_CAPTURE_POLL_MS`` overrides it
(benches)."""
DRAIN_PACKETS = 4096
"""At most about this many queued packets are read per socket at hang-up (whole
batches; about 80 s of one 20 ms stream: more than any socket buffer holds)."""


def drain(owner: Pumped, limit: int = DRAIN_PACKETS) -> int:
    """Read ``owner``'s socket here until it is empty (or ``limit`` packets):
    at hang-up, packets sent before the BYE that the loop had not read yet,
    because it was behind, belong in the recording. The owner must have
    invalidated its socket first, so nothing is left to the pump. A read that
    returns 0 ends it: the owner reads past the socket errors that may come
    before queued packets (``_Leg.readable``), so 0 is an empty socket."""
    drained = 0
    while drained < limit:
        got = owner.readable()
        if not got:
            break
        drained += got
    return drained


URING = os.environ.get("CALLVAULT_IO_URING", "1") != "0"
"""Whether a pump sends a run's packets (through connected legs) in one
io_uring submission rather than with one sendmmsg per socket: at ~1 packet
per socket per run that is one system call per run instead of one per packet
(bench/relay_connect.py --compare uring: 0.90-0.93x the pump's CPU per packet).
Where io_uring_setup fails (ENOSYS, EPERM, kernel.io_uring_disabled) the pump
uses sendmmsg anyway; ``CALLVAULT_IO_URING=0`` asks for sendmmsg."""

COLLECT_S = 0.25
"""How often the pump's per-socket sums reach the legs' and receivers' counters."""


class Engine:
    """One native pump per event loop: every pumped socket in one epoll set
    (``_batchudp.Pump``), served in C while its owner is in its common case.

    The loop watches the pump's epoll descriptor. On its first readiness the
    pump is run and, while sockets keep being ready, run again every
    ``POLL_S`` on a timer without watching the descriptor (interrupt
    coalescing, as NAPI does): under load one wake-up serves many sockets, and
    a packet waits at most about ``POLL_S`` for it. When a run finds nothing
    ready the descriptor is watched again. Python has a part only in a socket
    that is not configured (its owner reads it, ``Pumped.readable``), in
    packets from another source and in RFC 4733 packets (the receiver's DTMF
    tracker); the counters are collected every ``COLLECT_S`` and before
    anything that reads or changes an owner's state.

    ``stamps``: the recorded streams' engine (``capture_engine_for``): each
    spooled packet is stamped with the kernel's receive time (sockets with
    SO_TIMESTAMPNS), on the loop's clock, and RFC 4733 packets come with their
    own stamps; it sends nothing (no io_uring)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, poll_s: float = POLL_S, *, stamps: bool = False
    ) -> None:
        self.loop = loop
        self.poll_s = poll_s
        self.pump = _batchudp.Pump(uring=URING and not stamps, stamps=stamps)
        self.fd = self.pump.fileno()
        self.legs = 0
        self.polling: asyncio.TimerHandle | None = None
        self.collecting: asyncio.TimerHandle | None = None

    def add(self, leg: Pumped) -> None:
        self.pump.add(leg.fd, leg)
        self.legs += 1
        if self.legs == 1:
            self.loop.add_reader(self.fd, self._ready)
            self.collecting = self.loop.call_later(COLLECT_S, self._collect)

    def remove(self, leg: Pumped) -> None:
        leg.absorb(self.pump.remove(leg.fd))
        self.legs -= 1
        if self.legs == 0:
            for timer in (self.polling, self.collecting):
                if timer is not None:
                    timer.cancel()
            self.polling = self.collecting = None
            self.loop.remove_reader(self.fd)

    def _ready(self) -> None:
        if self._run() and self.legs:
            self.loop.remove_reader(self.fd)
            self.polling = self.loop.call_later(self.poll_s, self._tick)

    def _tick(self) -> None:
        ready = self._run()
        if not self.legs:  # the last socket left during the run
            self.polling = None
        elif ready:
            self.polling = self.loop.call_later(self.poll_s, self._tick)
        else:
            self.polling = None
            self.loop.add_reader(self.fd, self._ready)

    def now_ms(self) -> int:
        """The clock the pump stamps with: a receiver's clock is this plus an offset."""
        return int(self.loop.time() * 1000)

    def serve_now(self) -> None:
        """Run the pump out of its schedule (it stays on its timer or watch)."""
        self._run()

    def _run(self) -> int:
        ready, handoff = self.pump.run(self.now_ms())
        for leg, rest, events, arrival_ms, events_ms in handoff:
            if rest is None and events is None:
                leg.readable()
                continue
            if events is not None and leg.recorder is not None:
                leg.recorder.absorb((0, 0, 0, 0), events, arrival_ms, events_ms)
            for data, addr in rest or ():
                leg.datagram_received(data, addr)
        return ready

    def _collect(self) -> None:
        for leg, sums in self.pump.collect_all():
            leg.absorb(sums)
        self.collecting = self.loop.call_later(COLLECT_S, self._collect)


_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Engine] = weakref.WeakKeyDictionary()
_capture_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Engine] = (
    weakref.WeakKeyDictionary()
)


def engine_for(loop: asyncio.AbstractEventLoop) -> Engine:
    """The loop's pump for relay legs (made on first use)."""
    engine = _engines.get(loop)
    if engine is None:
        engine = _engines[loop] = Engine(loop)
    return engine


def read_captured(loop: asyncio.AbstractEventLoop) -> None:
    """Serve the loop's capture pump now, before the spools are flushed: every
    packet that came before is read and its key applied to the gate first, so
    no flush writes audio that a key read a timer tick later forbids."""
    engine = _capture_engines.get(loop)
    if engine is not None and engine.legs:
        engine.serve_now()


def capture_engine_for(loop: asyncio.AbstractEventLoop) -> Engine:
    """The loop's pump for recorded streams (made on first use): run every
    ``CAPTURE_POLL_S`` while packets come, stamped by the kernel."""
    engine = _capture_engines.get(loop)
    if engine is None:
        engine = _capture_engines[loop] = Engine(loop, CAPTURE_POLL_S, stamps=True)
    return engine
