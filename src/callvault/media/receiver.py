"""Capture of recorded RTP streams: one datagram protocol per SDP m-line.

The per-packet path checks the RTP fixed header (RFC 3550 section 5.1)
just enough to drop junk, appends the raw packet with its arrival time to the
stream's spool, and counts it. It does not parse, reorder or deduplicate: the
finisher does, off the event loop. The one exception is RFC 4733 telephone
events, which feed a ``Rfc4733Tracker`` at once so that the policy engine
hears DTMF (pause/resume codes) while the call is up.

Source latching (issue: RTP injection): a stream accepts packets from one
source only. The host is the one the offer's ``c=`` line names, when it names
one; the port, and the host when the SDP has none, are latched from the first
packet. Packets from anywhere else are dropped and counted (``foreign``); a
re-offer that moves the stream calls ``expect`` again.

The B2BUA's relay (``media/relay.py``) reads its sockets natively and, while
a stream is in its common case (latched to the relay's source, no SRTP, no
live listener), asks ``fast_tap`` for what the native code needs to spool
the packets itself with the same rules (``media/_batchudp.c``
``relay_record``), then hands back the counts and the RFC 4733 packets with
``absorb``: what a packet means stays decided here.

SRTP (RFC 3711, keys by SDES): a receiver given an ``unprotect`` function
decrypts each packet before it is spooled, so the spool and the finisher only
ever see RTP; packets failing authentication are dropped and counted.

Nothing here decides whether audio may be kept: packets go to the stream's
in-memory spool buffer, and the call's capture gate decides at flush time
what of it reaches the disk (``recording/spool.py``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import socket
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast

from callvault.errors import RemoteProtocolError
from callvault.media.capture import PumpedStream
from callvault.media.dtmf import DtmfDigit, Rfc4733Tracker
from callvault.media.ports import RtpPortPool, rtp_socket
from callvault.media.pump import BATCHED, DRAIN_PACKETS, capture_engine_for, engine_for
from callvault.media.rtp import RtpPacket
from callvault.recording.spool import StreamSpool

log = logging.getLogger(__name__)

_STREAM_FILE = re.compile(r"stream-(\d+)\.rtp$")

Address = tuple[Any, ...]

_DATAGRAM_MAX = 65536


FastTap = tuple[bytearray, int, bytes]
"""What the relay's native tap needs to spool a batch as ``datagram_received``
would: (the spool's buffer, the batch's arrival ms, the telephone-event payload
types as 128 bytes, non-zero at each). A plain tuple: it is made per batch."""


@functools.lru_cache(maxsize=64)  # a few sets of payload types serve every call
def _te_map(pts: frozenset[int]) -> bytes:
    return bytes(1 if pt in pts else 0 for pt in range(128))


class RtpReceiver(asyncio.DatagramProtocol):
    """Receives one recorded stream into its spool."""

    def __init__(
        self,
        spool: StreamSpool,
        clock_ms: Callable[[], int],
        on_dtmf: Callable[[DtmfDigit], None] | None = None,
        telephone_event_pts: frozenset[int] = frozenset(),
        *,
        stream_index: int | None = None,
        clock_rate: int = 8000,
        expected_host: str | None = None,
        unprotect: Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        if stream_index is None:
            match = _STREAM_FILE.search(spool.path.name)
            stream_index = int(match.group(1)) if match else 0
        self.stream_index = stream_index
        self._spool = spool
        self._records = spool.buffer  # the same bytearray for the spool's life
        self._clock_ms = clock_ms
        self._on_dtmf = on_dtmf
        self._te_pts = frozenset(telephone_event_pts)
        self._te_map = _te_map(self._te_pts)
        self._tracker = Rfc4733Tracker(stream_index, clock_rate)
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: Address | None = None  # the latched source
        self._expected_host = expected_host
        self._unprotect = unprotect
        self.source_changes = 0  # re-latched after a re-offer moved the stream
        self.foreign = 0  # packets from another source, dropped
        self.unauthenticated = 0  # SRTP packets failing authentication, dropped
        self.packets = 0
        self.bytes = 0
        # (decrypted RTP packet, arrival ms) for live listening; None when nobody listens
        self._listener: Callable[[bytes, int], None] | None = None
        # called before what ``fast_tap`` answers changes (the relay's native
        # pump caches it)
        self.fast_changed: Callable[[], None] | None = None
        self.dtmf_events = 0
        self.malformed = 0
        self.rtcp = 0  # RTCP multiplexed on the RTP port (RFC 5761), not spooled
        # the last arrival spooled: a stream's stamps never go back in time
        self.last_arrival_ms = 0

    # -- asyncio.DatagramProtocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address, arrival_ms: int | None = None) -> None:
        """One packet, read now; ``arrival_ms``: when it came, on this receiver's
        clock, where known (the kernel's receive time of a packet read late),
        at most now and at least the last arrival spooled."""
        if addr != self.remote and not self._latch(addr):
            self.foreign += 1
            return
        if len(data) < 12 or data[0] & 0xC0 != 0x80:
            self.malformed += 1
            return
        second = data[1]
        if 200 <= second <= 204:  # RTCP SR/RR/SDES/BYE/APP, muxed
            self.rtcp += 1
            return
        if self._unprotect is not None:
            clear = self._unprotect(data)
            if clear is None:
                self.unauthenticated += 1
                return
            data = clear
        now = self._clock_ms()
        if arrival_ms is not None and arrival_ms < now:
            now = arrival_ms
        if now < self.last_arrival_ms:  # a stream's stamps never go back
            now = self.last_arrival_ms
        self.last_arrival_ms = now
        self._spool.append(now, data)
        self.packets += 1
        self.bytes += len(data)
        if (second & 0x7F) in self._te_pts:
            self._telephone_event(data, now)
        if self._listener is not None:  # LiveCenter: someone hears this stream live
            self._listener(data, now)

    # -- the relay's native tap --

    @property
    def listener(self) -> Callable[[bytes, int], None] | None:
        return self._listener

    @listener.setter
    def listener(self, listener: Callable[[bytes, int], None] | None) -> None:
        self._changing()
        self._listener = listener

    def clock_ms(self) -> int:
        """Now on this receiver's clock (the call's timeline)."""
        return self._clock_ms()

    def spooled_until(self, arrival_ms: int) -> None:
        """The native pump spooled this stream's packets up to ``arrival_ms``: the
        next ones read here are stamped no earlier."""
        if arrival_ms > self.last_arrival_ms:
            self.last_arrival_ms = arrival_ms

    def _changing(self) -> None:
        if self.fast_changed is not None:
            self.fast_changed()

    def fast_tap(self, source: Address) -> FastTap | None:
        """What the relay's native code needs to spool packets from ``source``
        itself; None when a packet needs this class (not latched to ``source``
        yet, SRTP, a live listener): the relay then calls ``datagram_received``."""
        if source != self.remote or self._unprotect is not None or self._listener is not None:
            return None
        return self._records, self._clock_ms(), self._te_map

    def absorb(
        self,
        counts: tuple[int, int, int, int],
        events: list[bytes],
        arrival_ms: int,
        events_ms: list[int] | None = None,
    ) -> None:
        """The native tap spooled a batch: its counts (spooled packets, their
        bytes, malformed, RTCP) and its RFC 4733 packets, for the DTMF tracker,
        each arrived at ``arrival_ms`` or at its own stamp in ``events_ms``."""
        packets, nbytes, malformed, rtcp = counts
        self.packets += packets
        self.bytes += nbytes
        self.malformed += malformed
        self.rtcp += rtcp
        if events_ms is None:
            for data in events:
                self._telephone_event(data, arrival_ms)
        else:
            for data, at in zip(events, events_ms, strict=True):
                self._telephone_event(data, at)

    def error_received(self, exc: Exception) -> None:
        log.debug("stream %d: socket error %s", self.stream_index, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._report(self._tracker.finish())
        self.transport = None

    # -- control --

    def set_telephone_events(self, pts: Iterable[int]) -> None:
        """The telephone-event payload types of the current SDP (re-INVITE)."""
        self._changing()
        self._te_pts = frozenset(pts)
        self._te_map = _te_map(self._te_pts)

    def set_unprotect(self, unprotect: Callable[[bytes], bytes | None] | None) -> None:
        """A re-offer changed the SRTP key (or turned SRTP on or off)."""
        self._changing()
        self._unprotect = unprotect

    def expect(self, host: str | None) -> None:
        """The sender's host from a (re-)offer's ``c=`` line (None: unknown).

        A different host than the latched one drops the latch, so the next
        packet from that host latches again (the SRC moved the stream)."""
        if host is not None and self.remote is not None and self.remote[0] != host:
            self._changing()
            log.info("stream %d: sender moves to %s", self.stream_index, host)
            self.remote = None
            self.source_changes += 1
        if host is not None or self.remote is None:
            self._expected_host = host

    def relatch(self) -> None:
        """Someone else sends this stream now (a B2BUA transfer to a party on the
        same host): the next packet latches again."""
        if self.remote is not None:
            self._changing()
            self.remote = None
            self.source_changes += 1

    def set_stream_index(self, index: int) -> None:
        self.stream_index = self._tracker.stream_index = index

    def tick(self, now_ms: int) -> None:
        """Periodic call: report a digit whose end packets were all lost."""
        if self._tracker.pending:
            self._report(self._tracker.flush(now_ms))

    def key_pending_since(self) -> int | None:
        """When the RFC 4733 key being heard began (its end not read yet)."""
        return self._tracker.pending_since

    def stats(self) -> dict[str, int]:
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "dtmf_events": self.dtmf_events,
            "malformed": self.malformed,
            "source_changes": self.source_changes,
            "foreign": self.foreign,
            "unauthenticated": self.unauthenticated,
            "rtcp": self.rtcp,
        }

    # -- off the common path --

    def _latch(self, addr: Address) -> bool:
        """Whether a packet from ``addr`` (not the latched source) is accepted."""
        if self.remote is not None:
            if self.foreign == 0 or self.foreign & 0x3FF == 0:  # first, then 1 in 1024
                log.info(
                    "stream %d: RTP from %s dropped (latched to %s)",
                    self.stream_index,
                    _fmt(addr),
                    _fmt(self.remote),
                )
            return False
        if self._expected_host is not None and addr[0] != self._expected_host:
            if self.foreign & 0x3FF == 0:
                log.info(
                    "stream %d: RTP from %s dropped (the offer names %s)",
                    self.stream_index,
                    _fmt(addr),
                    self._expected_host,
                )
            return False
        self._changing()
        self.remote = addr
        log.info("stream %d: RTP from %s", self.stream_index, _fmt(addr))
        return True

    def _telephone_event(self, data: bytes, now: int) -> None:
        try:
            digits = self._tracker.feed(RtpPacket.parse(data), now)
        except RemoteProtocolError as exc:
            self.malformed += 1
            log.debug("stream %d: bad telephone-event packet: %s", self.stream_index, exc)
            return
        self._report(digits)

    def _report(self, digits: list[DtmfDigit]) -> None:
        for digit in digits:
            self.dtmf_events += 1
            log.info(
                "stream %d: DTMF %s at %d ms (%d ms)",
                digit.stream_index,
                digit.digit,
                digit.start_ms,
                digit.duration_ms,
            )
            if self._on_dtmf is not None:
                try:
                    self._on_dtmf(digit)
                except Exception:
                    log.exception("stream %d: DTMF handler failed", self.stream_index)


def _fmt(addr: Address | None) -> str:
    return "-" if addr is None else f"{addr[0]}:{addr[1]}"


async def open_stream(
    loop: asyncio.AbstractEventLoop, host: str, port: int, receiver: RtpReceiver
) -> asyncio.DatagramTransport:
    """Bind ``(host, port)`` for ``receiver``, with a 1 MiB receive buffer when
    the kernel allows it (``net.core.rmem_max`` caps it silently otherwise).

    Raises ``OSError`` when the port cannot be bound.
    """
    sock = rtp_socket(host, port)
    try:
        transport, _ = await loop.create_datagram_endpoint(lambda: receiver, sock=sock)
    except BaseException:
        sock.close()
        raise
    return transport


class OpenStream(Protocol):
    """A recorded stream's open socket, however it is read."""

    def drain(self, limit: int) -> int: ...
    def close(self) -> None: ...


class _TransportStream:
    """A stream read by an asyncio transport (where the native pump is not built)."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self.transport = transport

    def drain(self, limit: int) -> int:
        receiver = cast(RtpReceiver, self.transport.get_protocol())
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return 0
        try:  # a socket object of our own: the transport's does not read
            own = socket.socket(fileno=os.dup(sock.fileno()))
        except OSError:
            return 0
        drained = 0
        with own:
            for _ in range(limit):
                try:
                    data, addr = own.recvfrom(_DATAGRAM_MAX, socket.MSG_DONTWAIT)
                except OSError:  # BlockingIOError: nothing left
                    break
                receiver.datagram_received(data, addr)
                drained += 1
        return drained

    def close(self) -> None:
        self.transport.close()  # the receiver's connection_lost comes with the loop


class RtpStreamSet:
    """The receivers and sockets of one call's recorded streams."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        pool: RtpPortPool | None = None,
    ) -> None:
        self._loop = loop
        self.host = host
        self._pool = pool  # ports given back to it on close
        self.receivers: dict[int, RtpReceiver] = {}
        self.ports: dict[int, int] = {}
        self._transports: dict[int, OpenStream] = {}

    async def add(self, index: int, port: int, receiver: RtpReceiver) -> None:
        """Open ``port`` for stream ``index`` (an index already open is replaced):
        read by the loop's native pump where it is built, else by asyncio."""
        receiver.set_stream_index(index)
        if index in self._transports:
            self._close_one(index)
        if BATCHED:
            sock = rtp_socket(self.host, port)  # raises OSError: the port is taken
            stream: OpenStream = PumpedStream(
                capture_engine_for(self._loop),
                sock,
                receiver,
                functools.partial(engine_for, self._loop),
            )
        else:
            stream = _TransportStream(await open_stream(self._loop, self.host, port, receiver))
        self._transports[index] = stream
        self.receivers[index] = receiver
        self.ports[index] = port

    def attach(self, index: int, receiver: RtpReceiver) -> None:
        """Take stream ``index`` from a socket someone else owns (the B2BUA's relay
        feeds ``receiver.datagram_received`` with what it relays): no port, no socket."""
        receiver.set_stream_index(index)
        self.detach(index)
        self.receivers[index] = receiver

    def detach(self, index: int) -> None:
        """Stop an attached stream; its last RFC 4733 digit is reported."""
        if index not in self._transports:
            receiver = self.receivers.pop(index, None)
            if receiver is not None:
                receiver.connection_lost(None)

    def set_telephone_events(self, pts: Iterable[int]) -> None:
        for receiver in self.receivers.values():
            receiver.set_telephone_events(pts)

    def tick(self, now_ms: int) -> None:
        for receiver in self.receivers.values():
            receiver.tick(now_ms)

    def key_pending_since(self) -> int | None:
        """The earliest start of a key still being heard on any stream: audio from
        then on waits in memory until the key is known (the gate may close there)."""
        starts = [t for r in self.receivers.values() if (t := r.key_pending_since()) is not None]
        return min(starts) if starts else None

    def drain(self, limit: int = DRAIN_PACKETS) -> int:
        """Read what the kernel still holds for each open stream (at most
        ``limit`` packets each): packets sent before the BYE that capture had not
        read yet, because the loop was behind, belong in the recording. Returns
        how many were read."""
        return sum(stream.drain(limit) for stream in list(self._transports.values()))

    def close(self) -> None:
        for index in list(self._transports):
            self._close_one(index)
        for index in list(self.receivers):
            self.detach(index)

    def remove(self, index: int) -> None:
        """Close stream ``index`` (an m-line removed by a re-INVITE)."""
        if index in self._transports:
            self._close_one(index)

    def _close_one(self, index: int) -> None:
        transport = self._transports.pop(index)
        transport.close()
        port = self.ports.pop(index)
        self.receivers.pop(index, None)
        if self._pool is not None:
            self._pool.release(port)

    def __len__(self) -> int:
        return len(self._transports)
