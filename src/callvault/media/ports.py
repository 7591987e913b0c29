"""The pool of local UDP ports handed to recorded RTP streams.

Ports are even (RTP, RFC 3550 section 11); the odd port above each one is
left free for RTCP. A port is drawn at random from the free ones, so that a
stranger cannot guess a live call's port from the last one handed out (RTP
injection); receivers also latch to their sender (``media/receiver.py``).
"""

from __future__ import annotations

import secrets


class PortsExhausted(Exception):
    """Every RTP port of the range is in use (answer the offer with 503)."""


class RtpPortPool:
    """Even ports of ``[start, end]``; ``acquire`` (random) and ``release`` are O(1)."""

    def __init__(self, start: int, end: int) -> None:
        first = start + (start & 1)
        if not 0 < first <= end <= 65535 or first + 1 > end:
            raise ValueError(f"RTP port range {start}-{end} holds no even/odd port pair")
        self.start = first
        self.end = end
        self._free: list[int] = list(range(first, end, 2))
        self._in_use: set[int] = set()

    def acquire(self) -> int:
        free = self._free
        if not free:
            raise PortsExhausted(f"no free RTP port in {self.start}-{self.end}")
        # swap a random free port to the end and take it: O(1), unpredictable
        k = secrets.randbelow(len(free))
        free[k], free[-1] = free[-1], free[k]
        port = free.pop()
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
