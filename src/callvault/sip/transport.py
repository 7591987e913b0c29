"""Thin asyncio transports for SIP (RFC 3261 section 18, RFC 5630 for TLS): UDP, TCP, TLS.

They move bytes only: each complete message goes to a ``Receiver`` with the
``Flow`` it arrived on, and the flow is how an answer goes back. UDP passes
whole datagrams; TCP cuts the stream with ``StreamFramer`` and closes a
connection whose stream cannot be framed, whose message stays incomplete past
the header timeout, or that stays idle (``StreamDeadline``, a pure class the
connection feeds with loop times), and refuses connections over the
per-address and total caps (``StreamLimits``). Passing an ``ssl.SSLContext``
to ``TcpTransport`` turns it into TLS; the flow then carries the SHA-256
fingerprint of the peer's certificate (``tls_fingerprint``), for the source
registry to decide on. The Via rules for receiving a request and addressing
its responses (18.2.1, 18.2.2, RFC 3581) live in ``via.py`` (re-exported here).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl as ssl_module
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from callvault.errors import RemoteProtocolError
from callvault.sip.message import StreamFramer
from callvault.sip.via import HostPort, response_address, stamp_via

if TYPE_CHECKING:
    from callvault.settings import Settings

__all__ = [
    "Flow",
    "HostPort",
    "Receiver",
    "StreamDeadline",
    "StreamLimits",
    "TcpConnection",
    "TcpTransport",
    "UdpFlow",
    "UdpSocket",
    "make_server_ssl_context",
    "response_address",
    "server_ssl_context",
    "stamp_via",
    "stream_limits",
    "tls_fingerprint",
]

logger = logging.getLogger(__name__)

class Flow:
    """Where a message came from, and how to send back along the same path."""

    transport: str
    remote: HostPort
    local: HostPort
    tls_fingerprint: str | None = None  # SHA-256 of the peer's TLS certificate, if any

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"

    def send(self, data: bytes) -> None:
        raise NotImplementedError


Receiver = Callable[[bytes, Flow], None]


class UdpSocket(asyncio.DatagramProtocol):
    """One bound UDP socket shared by every UDP flow."""

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._transport: asyncio.DatagramTransport | None = None
        self.local: HostPort = ("0.0.0.0", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        sockname = transport.get_extra_info("sockname")
        self.local = (sockname[0], sockname[1])

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            self._receiver(data, UdpFlow(self, (addr[0], addr[1])))
        except Exception:  # one bad datagram must not stop the socket
            logger.exception("error handling datagram from %s", addr)

    def error_received(self, exc: Exception) -> None:
        logger.warning("UDP socket error: %s", exc)

    def send_to(self, data: bytes, remote: HostPort) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError("UDP socket is closed")
        self._transport.sendto(data, remote)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class UdpFlow(Flow):
    transport = "udp"

    def __init__(self, sock: UdpSocket, remote: HostPort) -> None:
        self.sock = sock
        self.remote = remote
        self.local = sock.local

    def send(self, data: bytes) -> None:
        self.sock.send_to(data, self.remote)


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """Bounds on stream (TCP/TLS) connections, against slow or idle peers.

    ``header_timeout``: a message must be complete within this many seconds of
    its first byte (also the TLS handshake limit). 10 s is far above what a
    64 KB message needs on any link that carries audio, even after a few TCP
    retransmissions (1 + 2 + 4 s back-off), and short enough that a peer
    trickling a partial header or a false Content-Length is dropped quickly.

    ``idle_timeout``: a connection with no traffic for this long is closed.
    SBCs keep one persistent connection for many recordings and probe it with
    OPTIONS or CRLF keep-alives (typically every 30-120 s), which count as
    traffic, so 600 s only reaps connections whose peer went away; a peer that
    still wants to talk simply connects again (RFC 3261 18 allows either side
    to close).

    ``max_per_source`` / ``max_total``: accepted connections per source IP
    address and in all. An SBC needs a handful; the caps stop one address
    (or many) from exhausting file descriptors that RTP sockets also need.
    """

    header_timeout: float = 10.0
    idle_timeout: float = 600.0
    max_per_source: int = 100
    max_total: int = 1000


class StreamDeadline:
    """When one stream connection must be closed (sans-IO: times are passed in).

    Feed it every read (``on_receive``) and write (``on_send``); ``due`` is the
    next moment to look, ``expired(now)`` names the limit that ran out.
    """

    def __init__(self, limits: StreamLimits, now: float) -> None:
        self._limits = limits
        self._last_traffic = now
        self._message_started: float | None = None

    def on_receive(self, now: float, *, completed: int, in_message: bool) -> None:
        """Bytes arrived: ``completed`` messages were framed, ``in_message`` if one is partial."""
        self._last_traffic = now
        if not in_message:
            self._message_started = None
        elif completed or self._message_started is None:
            # The partial message began in this read.
            self._message_started = now

    def on_send(self, now: float) -> None:
        self._last_traffic = now

    @property
    def due(self) -> float:
        if self._message_started is not None:
            return self._message_started + self._limits.header_timeout
        return self._last_traffic + self._limits.idle_timeout

    def expired(self, now: float) -> str | None:
        if now < self.due:
            return None
        if self._message_started is not None:
            return f"message incomplete after {self._limits.header_timeout:g}s"
        return f"idle for {self._limits.idle_timeout:g}s"


def tls_fingerprint(transport: asyncio.BaseTransport) -> str | None:
    """SHA-256 of the peer's certificate (DER), lower-case hex; None without one."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest() if der else None


class TcpConnection(asyncio.Protocol, Flow):
    """One TCP (or TLS) connection, framed by Content-Length and bounded in time."""

    def __init__(self, owner: TcpTransport, *, inbound: bool) -> None:
        self._owner = owner
        self.transport = owner.name
        self.inbound = inbound
        self._framer = StreamFramer()
        self._stream: asyncio.Transport | None = None
        self._deadline: StreamDeadline | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.admitted = False
        self.remote = ("", 0)
        self.local = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._stream = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        sockname = transport.get_extra_info("sockname")
        self.remote = (peer[0], peer[1])
        self.local = (sockname[0], sockname[1])
        self.tls_fingerprint = tls_fingerprint(transport)
        if not self._owner.admit(self):
            self._stream.abort()  # over a connection cap: no goodbye owed
            return
        self._loop = asyncio.get_running_loop()
        self._deadline = StreamDeadline(self._owner.limits, self._loop.time())
        self._arm()

    def _arm(self) -> None:
        # One timer, re-armed only when it fires early: reads never touch it.
        if self._loop is not None and self._deadline is not None and self._stream is not None:
            self._timer = self._loop.call_at(self._deadline.due, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        if self._loop is None or self._deadline is None:
            return
        reason = self._deadline.expired(self._loop.time())
        if reason is None:
            self._arm()
            return
        logger.info("closing %s connection from %s: %s", self.transport, self.remote, reason)
        if self._stream is not None:
            self._stream.abort()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._framer.feed(data)
        except RemoteProtocolError as exc:
            logger.warning("closing %s connection from %s: %s", self.transport, self.remote, exc)
            self.close()
            return
        if self._deadline is not None and self._loop is not None:
            self._deadline.on_receive(
                self._loop.time(), completed=len(frames), in_message=self._framer.in_message
            )
        for frame in frames:
            try:
                self._owner.receiver(frame, self)
            except Exception:  # keep the connection serving its other messages
                logger.exception("error handling message from %s", self.remote)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stream = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._owner.forget(self)

    @property
    def closed(self) -> bool:
        return self._stream is None or self._stream.is_closing()

    def send(self, data: bytes) -> None:
        if self._stream is None or self._stream.is_closing():
            raise ConnectionError(f"{self.transport} connection to {self.remote} is closed")
        self._stream.write(data)
        if self._deadline is not None and self._loop is not None:
            self._deadline.on_send(self._loop.time())

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


class TcpTransport:
    """TCP or TLS listener plus outgoing connections, one connection per peer address.

    ``ssl`` (a server context) makes the listener TLS; ``client_ssl`` is used
    for connections we open. Accepted connections are counted per source
    address and in all against ``limits``; ours are not.
    """

    def __init__(
        self,
        receiver: Receiver,
        *,
        ssl: ssl_module.SSLContext | None = None,
        client_ssl: ssl_module.SSLContext | None = None,
        limits: StreamLimits | None = None,
        name: str | None = None,
    ) -> None:
        self.receiver = receiver
        self._ssl = ssl
        self.client_ssl = client_ssl
        self.limits = limits or StreamLimits()
        self.name = name or ("tls" if ssl is not None or client_ssl is not None else "tcp")
        self._server: asyncio.Server | None = None
        self._connections: dict[HostPort, TcpConnection] = {}
        self._per_source: Counter[str] = Counter()
        self._inbound = 0

    def admit(self, conn: TcpConnection) -> bool:
        """Count a new connection; False when an accepted one is over a cap."""
        if conn.inbound:
            host = conn.remote[0]
            if self._inbound >= self.limits.max_total:
                logger.warning("refusing %s connection from %s: %d connections open",
                               self.name, conn.remote, self._inbound)
                return False
            if self._per_source[host] >= self.limits.max_per_source:
                logger.warning("refusing %s connection from %s: %d open from that address",
                               self.name, conn.remote, self._per_source[host])
                return False
            self._per_source[host] += 1
            self._inbound += 1
            self._connections.setdefault(conn.remote, conn)
        conn.admitted = True
        return True

    def forget(self, conn: TcpConnection) -> None:
        if not conn.admitted:
            return
        conn.admitted = False
        if conn.inbound:
            host = conn.remote[0]
            self._inbound -= 1
            self._per_source[host] -= 1
            if self._per_source[host] <= 0:
                del self._per_source[host]
        if self._connections.get(conn.remote) is conn:
            del self._connections[conn.remote]

    @property
    def open_connections(self) -> int:
        """Accepted connections currently counted against the caps."""
        return self._inbound

    async def listen(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: TcpConnection(self, inbound=True), host, port, ssl=self._ssl,
            ssl_handshake_timeout=self.limits.header_timeout if self._ssl is not None else None,
        )
        return int(self._server.sockets[0].getsockname()[1])

    def connection_to(self, remote: HostPort) -> TcpConnection | None:
        conn = self._connections.get(remote)
        return conn if conn is not None and not conn.closed else None

    async def connect(self, remote: HostPort) -> TcpConnection:
        conn = self.connection_to(remote)
        if conn is not None:
            return conn
        if self.name == "tls" and self.client_ssl is None:
            raise ConnectionError("no TLS client context to connect with")
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: TcpConnection(self, inbound=False), remote[0], remote[1],
            ssl=self.client_ssl,
            server_hostname=remote[0] if self.client_ssl is not None else None,
        )
        self._connections[remote] = protocol
        return protocol

    async def close(self) -> None:
        for conn in list(self._connections.values()):
            conn.close()
        self._connections.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


def server_ssl_context(settings: Settings) -> ssl_module.SSLContext | None:
    """The TLS listener's context from settings; None when no certificate is configured.

    Client certificates are requested but optional (CERT_OPTIONAL): a
    presented one must chain to ``sip_tls_ca`` (or, without it, to the
    system's CAs), since OpenSSL fails the handshake on any certificate it
    cannot verify. A self-signed SBC certificate therefore goes into
    ``sip_tls_ca`` itself. Who may record is decided elsewhere, from the
    fingerprint each flow reports.
    """
    if settings.sip_tls_cert is None or settings.sip_tls_key is None:
        return None
    return make_server_ssl_context(settings.sip_tls_cert, settings.sip_tls_key, settings.sip_tls_ca)


def make_server_ssl_context(
    cert: Path, key: Path, ca: Path | None = None
) -> ssl_module.SSLContext:
    context = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl_module.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl_module.CERT_OPTIONAL
    if ca is not None:
        context.load_verify_locations(cafile=ca)
    else:
        context.load_default_certs(ssl_module.Purpose.CLIENT_AUTH)
    return context


def stream_limits(settings: Settings) -> StreamLimits:
    """The TCP/TLS connection limits from settings."""
    return StreamLimits(
        header_timeout=settings.sip_tcp_header_timeout_s,
        idle_timeout=settings.sip_tcp_idle_timeout_s,
        max_per_source=settings.sip_tcp_max_connections_per_source,
        max_total=settings.sip_tcp_max_connections,
    )
