"""DTMF carried as RFC 4733 telephone events, and the per-stream digit tracker.

RFC 4733 section 2.3 defines the payload (event, E bit, volume, duration);
section 2.5 the sender's rules the tracker relies on: every packet of one
event carries the same RTP timestamp (the event's start), the duration grows
with each update, and the final (E bit) packet is sent three times. So the
tracker keys an event on ``(ssrc, timestamp)``, reports it once when the first
end packet arrives, and drops the redundant end packets and retransmissions.
An event whose end packets were all lost is reported when the next event
starts or, via ``flush(now_ms)``, after ``timeout_ms`` without updates.

The tracker is sans-IO: fed parsed packets and arrival times, it returns the
digits it completed. ``RtpReceiver`` is its asyncio shell.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from dataclasses import dataclass
from typing import Literal

from callvault.errors import RemoteProtocolError
from callvault.media.rtp import RtpPacket

log = logging.getLogger(__name__)

EVENT_DIGITS: dict[int, str] = {
    **{n: str(n) for n in range(10)},
    10: "*",
    11: "#",
    12: "A",
    13: "B",
    14: "C",
    15: "D",
    16: "!",  # flash (hook flash), RFC 4733 section 3.2
}
"""RFC 4733 section 3.2 event codes of the DTMF named events."""

DIGIT_EVENTS: dict[str, int] = {digit: event for event, digit in EVENT_DIGITS.items()}

_EVENT = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The RFC 4733 section 2.3 payload of one telephone-event packet."""

    event: int
    end: bool
    volume: int  # 0 to 63, in -dBm0
    duration: int  # in RTP timestamp units, since the event's timestamp

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < 4:
            raise RemoteProtocolError(f"telephone-event payload too short ({len(payload)} bytes)")
        event, flags, duration = _EVENT.unpack_from(payload, 0)
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)

    def __bytes__(self) -> bytes:
        flags = (0x80 if self.end else 0) | (self.volume & 0x3F)
        return _EVENT.pack(self.event & 0xFF, flags, self.duration & 0xFFFF)

    @property
    def digit(self) -> str | None:
        """The DTMF digit, or None for another kind of event (tones, line events)."""
        return EVENT_DIGITS.get(self.event)


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """One key press heard on a recorded stream."""

    digit: str
    stream_index: int
    start_ms: int  # arrival of the event's first packet, on the journal clock
    duration_ms: int
    source: Literal["rfc4733", "inband"] = "rfc4733"


@dataclass(slots=True)
class _Pending:
    key: tuple[int, int]  # (ssrc, rtp timestamp)
    event: int
    start_ms: int
    last_ms: int
    duration: int


class Rfc4733Tracker:
    """Turns one stream's telephone-event packets into ``DtmfDigit`` reports."""

    def __init__(
        self, stream_index: int = 0, clock_rate: int = 8000, timeout_ms: int = 1000
    ) -> None:
        self.stream_index = stream_index
        self.clock_rate = clock_rate
        self.timeout_ms = timeout_ms
        self._pending: _Pending | None = None
        # Events already reported: late redundant end packets and
        # retransmissions of these are dropped.
        self._done: deque[tuple[int, int]] = deque(maxlen=16)

    @property
    def pending(self) -> bool:
        return self._pending is not None

    @property
    def pending_since(self) -> int | None:
        """The arrival of the event being heard (its end not yet seen); None: none."""
        return None if self._pending is None else self._pending.start_ms

    def feed(self, packet: RtpPacket, arrival_ms: int) -> list[DtmfDigit]:
        """Take one telephone-event packet; return the digits it completed.

        Raises ``RemoteProtocolError`` for a payload shorter than 4 bytes.
        """
        event = TelephoneEvent.parse(packet.payload)
        key = (packet.ssrc, packet.timestamp)
        if key in self._done:
            return []
        out: list[DtmfDigit] = []
        pending = self._pending
        if pending is not None and pending.key != key:
            if pending.key[0] == key[0] and _older(key[1], pending.key[1]):
                return []  # a stray packet of an earlier event, seen after a later one
            # A new event started and the previous one never saw its end.
            out.extend(self._complete(pending))
            pending = None
        if pending is None:
            pending = self._pending = _Pending(
                key=key,
                event=event.event,
                start_ms=arrival_ms,
                last_ms=arrival_ms,
                duration=event.duration,
            )
        else:
            pending.last_ms = arrival_ms
            pending.duration = max(pending.duration, event.duration)
        if event.end:
            out.extend(self._complete(pending))
        return out

    def flush(self, now_ms: int) -> list[DtmfDigit]:
        """Report an event that got no packet for ``timeout_ms`` (its end was lost)."""
        pending = self._pending
        if pending is None or now_ms - pending.last_ms < self.timeout_ms:
            return []
        return self._complete(pending)

    def finish(self) -> list[DtmfDigit]:
        """Report whatever event is still open (the stream is closing)."""
        pending = self._pending
        return [] if pending is None else self._complete(pending)

    def _complete(self, pending: _Pending) -> list[DtmfDigit]:
        self._pending = None
        self._done.append(pending.key)
        digit = EVENT_DIGITS.get(pending.event)
        if digit is None:
            log.debug("ignoring telephone event %d on stream %d", pending.event, self.stream_index)
            return []
        return [
            DtmfDigit(
                digit=digit,
                stream_index=self.stream_index,
                start_ms=pending.start_ms,
                duration_ms=pending.duration * 1000 // self.clock_rate,
            )
        ]


def _older(timestamp: int, than: int) -> bool:
    """RTP timestamp comparison modulo 2**32 (RFC 3550 section 5.1)."""
    return timestamp != than and (than - timestamp) & 0xFFFFFFFF < 0x80000000
