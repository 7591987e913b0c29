"""The pool of local UDP ports handed to recorded RTP streams.

Ports are even (RTP, RFC 3550 section 11); the odd port above each one is
left free for RTCP. Released ports go to the back of the queue, so a port is
reused as late as possible and stray packets of an ended call rarely reach
the next call that gets its port.
"""

from __future__ import annotations

from collections import deque


class PortsExhausted(Exception):
    """Every RTP port of the range is in use (answer the offer with 503)."""


class RtpPortPool:
    """Even ports of ``[start, end]``; ``acquire`` and ``release`` are O(1)."""

    def __init__(self, start: int, end: int) -> None:
        first = start + (start & 1)
        if not 0 < first <= end <= 65535 or first + 1 > end:
            raise ValueError(f"RTP port range {start}-{end} holds no even/odd port pair")
        self.start = first
        self.end = end
        self._free: deque[int] = deque(range(first, end, 2))
        self._in_use: set[int] = set()

    def acquire(self) -> int:
        try:
            port = self._free.popleft()
        except IndexError:
            raise PortsExhausted(f"no free RTP port in {self.start}-{self.end}") from None
        self._in_use.add(port)
        return port

    def release(self, port: int) -> None:
        """Give ``port`` back; releasing a port that is not in use does nothing."""
        if port in self._in_use:
            self._in_use.remove(port)
            self._free.append(port)

    @property
    def available(self) -> int:
        return len(self._free)

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def __len__(self) -> int:
        return len(self._free) + len(self._in_use)
