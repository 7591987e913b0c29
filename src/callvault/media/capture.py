"""A recorded SIPREC stream's socket, read by the native pump (issue 12).

``RtpStreamSet`` (``media/receiver.py``) opens one UDP socket per recorded
stream. Where the native module is built, the socket joins the loop's pump
(``media/pump.py``) instead of becoming an asyncio transport: once the
receiver has latched to its sender and is in its common case
(``RtpReceiver.fast_tap``: no SRTP, nobody listening live), the pump appends
the sender's packets to the stream's spool buffer in C, with the same
checks, counts and arrival stamps ``RtpReceiver.datagram_received`` gives;
only RFC 4733 packets and packets from anyone else reach Python. Before
that, and whenever the receiver's state changes (it calls ``fast_changed``),
this class reads the socket itself and hands each packet to the receiver.

Recorded streams have their own pump (``pump.capture_engine_for``), run every
``CAPTURE_POLL_S`` while packets come, so a socket yields a few packets per
read; each packet is stamped with the kernel's receive time (SO_TIMESTAMPNS,
``ports.stamp_arrivals``), on either path, so a packet read late (the loop
behind, the hang-up's drain) is placed when it came, not when it was read.
A stream someone listens to live (LiveCenter) is read in Python, and moves to
the relay's pump (``live``: 2 ms) while it is heard, so a listener does not
wait up to ``CAPTURE_POLL_S`` more; its stamps are the kernel's there too.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from callvault.media.ports import stamp_arrivals
from callvault.media.pump import BATCHED, Engine, drain

if BATCHED:
    from callvault.media import _batchudp
if TYPE_CHECKING:
    from callvault.media.receiver import Address, RtpReceiver


class PumpedStream:
    """One recorded stream's socket in the pump, owned by its ``RtpReceiver``."""

    def __init__(
        self,
        engine: Engine,
        sock: socket.socket,
        receiver: RtpReceiver,
        live: Callable[[], Engine] | None = None,
    ) -> None:
        self.engine: Engine | None = engine  # the pump it is in now
        self.home = engine
        # the pump while a listener hears it (made when first needed)
        self.live: Callable[[], Engine] = live if live is not None else (lambda: engine)
        self.sock = sock
        self.fd = sock.fileno()
        self.recorder: RtpReceiver | None = receiver
        stamp_arrivals(sock)
        receiver.fast_changed = self.invalidate
        engine.add(self)

    # -- what the pump calls --

    def readable(self) -> int:
        """Read one batch here (the receiver latches, decrypts, hands a packet to
        a listener), then let the pump serve the next ones if the receiver is
        in its common case. Returns the packets read."""
        receiver, engine = self.recorder, self.engine
        if receiver is None or engine is None:
            return 0
        try:
            batch = _batchudp.recv_batch(self.fd, _batchudp.MAX_BATCH, True)
        except OSError as exc:
            receiver.error_received(exc)
            return 0
        now = engine.now_ms()
        offset = receiver.clock_ms() - now  # the receiver's clock minus the loop's
        for data, addr, received_ms in batch:
            # the kernel's time on the loop's clock (-1: none; after the loop's
            # cached time: the packet came during this iteration)
            at = now if received_ms < 0 or received_ms > now else received_ms
            receiver.datagram_received(data, addr, at + offset)
        if self.engine is not None:  # the receiver's callbacks may have closed the stream
            engine = self._move(self.live() if receiver.listener is not None else self.home)
        source = receiver.remote
        tap = receiver.fast_tap(source) if source is not None else None
        # the receiver's callbacks may have closed the stream meanwhile (engine None)
        if source is not None and tap is not None and self.engine is not None:
            records, arrival_ms, te_map = tap
            offset = arrival_ms - engine.now_ms()
            # nothing is forwarded (out_fd -1): the socket only records; a source
            # that is a name, not a number (ValueError), stays read here
            with contextlib.suppress(ValueError):
                engine.pump.configure(
                    self.fd, source, -1, None, records, offset, te_map, receiver.last_arrival_ms
                )
        return len(batch)

    def _move(self, engine: Engine) -> Engine:
        """Into ``engine``'s pump (from the one it is in, counts collected)."""
        if engine is not self.engine and self.engine is not None:
            self.engine.remove(self)
            engine.add(self)
            self.engine = engine
        return engine

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if self.recorder is not None:
            self.recorder.datagram_received(data, addr)

    def absorb(self, sums: Any) -> None:
        """The pump's counts for this socket since it last said."""
        if sums is None or self.recorder is None:
            return
        counts = sums[4]
        if counts[0] + counts[2] + counts[3]:
            self.recorder.absorb(counts, [], 0)

    # -- what the receiver and the stream set call --

    def invalidate(self) -> None:
        """The receiver's state changes: its counts are collected under the old
        state and the next batch is read here."""
        if self.engine is not None and self.recorder is not None:
            self.absorb(self.engine.pump.collect(self.fd))
            # what the pump stamped last: the receiver's next stamps are not earlier
            self.recorder.spooled_until(self.engine.pump.unconfigure(self.fd))

    def drain(self, limit: int) -> int:
        """What the kernel still holds, read at hang-up, ``limit`` packets at
        most (about: whole batches; see ``RtpStreamSet.drain``)."""
        self.invalidate()
        drained = drain(self, limit)
        self.invalidate()
        return drained

    def close(self) -> None:
        receiver = self.recorder
        if self.engine is not None:
            self.engine.remove(self)  # collects what the pump counted
            self.engine = None
        self.sock.close()
        if receiver is not None:
            receiver.fast_changed = None
            receiver.connection_lost(None)  # its last RFC 4733 digit is reported
        self.recorder = None
