"""The pool of local UDP ports handed to recorded RTP streams.

Ports are even (RTP, RFC 3550 section 11); the odd port above each one is
left free for RTCP. A port is drawn at random from the free ones, so that a
stranger cannot guess a live call's port from the last one handed out (RTP
injection); receivers also latch to their sender (``media/receiver.py``).
"""

from __future__ import annotations

import logging
import secrets
import socket

log = logging.getLogger(__name__)

RECEIVE_BUFFER = 1 << 20
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux asm-generic; Python lacks it
BIND_ATTEMPTS = 64  # pool ports tried before giving up (another process may hold some)


def rtp_socket(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``(host, port)``, with a 1 MiB receive
    buffer where the kernel allows it (``net.core.rmem_max`` caps it silently).

    Raises ``OSError`` when the port cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        except OSError as exc:
            log.debug("SO_RCVBUF not raised: %s", exc)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def stamp_arrivals(sock: socket.socket) -> None:
    """Have the kernel stamp each datagram ``sock`` receives (SO_TIMESTAMPNS):
    the native reads (``media/_batchudp.c``) then place a packet read late at
    its arrival. Where the kernel refuses, packets are stamped when read."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError as exc:
        log.debug("SO_TIMESTAMPNS not set: %s", exc)


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


def bind_from_pool(pool: RtpPortPool, host: str) -> tuple[int, socket.socket]:
    """A socket on a port drawn from ``pool``. A port that cannot be bound is
    skipped and not given back: it stays out of the pool while someone else
    holds it. ``PortsExhausted`` after ``BIND_ATTEMPTS`` tries."""
    for _attempt in range(BIND_ATTEMPTS):
        port = pool.acquire()  # raises PortsExhausted
        try:
            return port, rtp_socket(host, port)
        except OSError as exc:
            log.warning("RTP port %s cannot be bound (%s); skipped", port, exc)
    raise PortsExhausted(f"no bindable RTP port after {BIND_ATTEMPTS} attempts")
