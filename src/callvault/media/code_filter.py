"""Keeping the short code's RFC 4733 digits from the other party's ear.

Issue 10 (SPEC section 3, tenant option ``hide_code_from_other``): a user
presses the short code (e.g. ``*1``) to start or stop the recording; the
party on the other leg should not hear those key presses. The relay sends
this filter every telephone-event packet (RFC 4733 section 2.3) the user's
side sends and forwards only what it returns:

* while the digits so far are a prefix of the code, their packets are held;
* when they complete the code, the held packets are dropped, and so are the
  later packets of those events (updates, the three end packets, RFC 4733
  section 2.5.1.4);
* when the next digit diverges, or ``hold_ms`` pass without a packet of the
  held events, the held packets are released (late, unchanged) and the
  digits count as ordinary key presses.

Events are told apart by (SSRC, RTP timestamp), as in ``media/dtmf.py``.
Sans-IO: fed ``(packet, now_ms)``; ``due(now_ms)`` releases on time-out and
``deadline_ms`` says when to call it.
"""

from __future__ import annotations

import logging
from collections import deque

from callvault.errors import RemoteProtocolError
from callvault.media.dtmf import TelephoneEvent
from callvault.media.rtp import RtpPacket

log = logging.getLogger(__name__)

HOLD_MS = 1500

EventKey = tuple[int, int]  # (ssrc, rtp timestamp)


class CodeFilter:
    """Holds, drops or releases one sender's telephone-event packets."""

    def __init__(self, code: str, hold_ms: int = HOLD_MS) -> None:
        if not code:
            raise ValueError("an empty short code hides nothing")
        self.code = code
        self.hold_ms = hold_ms
        self._digits = ""  # the held digits: a proper prefix of the code
        self._group: list[EventKey] = []  # their events, in order
        self._held: list[bytes] = []
        self._last_ms = 0  # the last packet of the held events
        # Events decided already: their late packets follow the decision.
        self._dropped: deque[EventKey] = deque(maxlen=16)
        self._released: deque[EventKey] = deque(maxlen=16)
        self.hidden_digits = 0  # digits of completed codes
        self.hidden_packets = 0
        self.released_packets = 0

    @property
    def deadline_ms(self) -> int | None:
        """When ``due`` would release the held packets (None: nothing held)."""
        return self._last_ms + self.hold_ms if self._held else None

    def feed(self, packet: bytes, now_ms: int) -> list[bytes]:
        """One telephone-event packet from the user's side; returns the packets
        to forward now, in order (possibly none, possibly earlier held ones)."""
        try:
            parsed = RtpPacket.parse(packet)
            event = TelephoneEvent.parse(parsed.payload)
        except RemoteProtocolError:
            return [packet]  # not ours to judge: the other side's stack may cope
        key = (parsed.ssrc, parsed.timestamp)
        if key in self._dropped:
            self.hidden_packets += 1
            return []
        if key in self._released:
            return [packet]
        if key in self._group:  # a later packet of a held digit
            return self._hold(packet, now_ms)
        digit = event.digit
        if digit is None:  # not a key (a tone, a line event): not the code's
            return [packet]
        out: list[bytes] = []
        if not self.code.startswith(self._digits + digit):
            out = self._release()  # diverged: the held digits were ordinary keys
        self._digits += digit
        self._group.append(key)
        if not self.code.startswith(self._digits):
            # this digit cannot start the code either: it goes with the others
            out.extend(self._release())
            out.append(packet)
            return out
        out.extend(self._hold(packet, now_ms))
        if self._digits == self.code:
            self._drop()
        return out

    def due(self, now_ms: int) -> list[bytes]:
        """Release the held packets if ``hold_ms`` passed without a new one."""
        deadline = self.deadline_ms
        if deadline is None or now_ms < deadline:
            return []
        return self._release()

    def _hold(self, packet: bytes, now_ms: int) -> list[bytes]:
        self._held.append(packet)
        self._last_ms = now_ms
        return []

    def _drop(self) -> None:
        self.hidden_digits += len(self._digits)
        self.hidden_packets += len(self._held)
        log.info("short code's %d digit(s) kept from the other party", len(self._digits))
        self._dropped.extend(self._group)
        self._reset()

    def _release(self) -> list[bytes]:
        held = self._held
        self.released_packets += len(held)
        self._released.extend(self._group)
        self._reset()
        return held

    def _reset(self) -> None:
        self._digits = ""
        self._group = []
        self._held = []
