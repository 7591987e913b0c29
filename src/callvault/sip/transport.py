"""Thin asyncio transports for SIP (RFC 3261 section 18): UDP and TCP (TLS-ready).

They move bytes only: each complete message goes to a ``Receiver`` with the
``Flow`` it arrived on, and the flow is how an answer goes back. UDP passes
whole datagrams; TCP cuts the stream with ``StreamFramer`` and closes a
connection whose stream cannot be framed. Passing an ``ssl.SSLContext`` to
``TcpTransport`` turns it into TLS. Also here: the Via rules for receiving a
request and addressing its responses (18.2.1, 18.2.2, RFC 3581).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl as ssl_module
from collections.abc import Callable
from typing import Any, cast

from sipmessage import Request

from callvault.errors import RemoteProtocolError
from callvault.sip.message import StreamFramer, top_via

__all__ = [
    "Flow",
    "HostPort",
    "Receiver",
    "TcpConnection",
    "TcpTransport",
    "UdpFlow",
    "UdpSocket",
    "response_address",
    "stamp_via",
]

logger = logging.getLogger(__name__)

HostPort = tuple[str, int]


class Flow:
    """Where a message came from, and how to send back along the same path."""

    transport: str
    remote: HostPort
    local: HostPort

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


class TcpConnection(asyncio.Protocol, Flow):
    """One TCP (or TLS) connection, framed by Content-Length."""

    def __init__(
        self, receiver: Receiver, on_closed: Callable[[TcpConnection], None], transport: str
    ) -> None:
        self._receiver = receiver
        self._on_closed = on_closed
        self.transport = transport
        self._framer = StreamFramer()
        self._stream: asyncio.Transport | None = None
        self.remote = ("", 0)
        self.local = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._stream = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        sockname = transport.get_extra_info("sockname")
        self.remote = (peer[0], peer[1])
        self.local = (sockname[0], sockname[1])

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._framer.feed(data)
        except RemoteProtocolError as exc:
            logger.warning("closing %s connection from %s: %s", self.transport, self.remote, exc)
            self.close()
            return
        for frame in frames:
            try:
                self._receiver(frame, self)
            except Exception:  # keep the connection serving its other messages
                logger.exception("error handling message from %s", self.remote)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stream = None
        self._on_closed(self)

    @property
    def closed(self) -> bool:
        return self._stream is None or self._stream.is_closing()

    def send(self, data: bytes) -> None:
        if self._stream is None or self._stream.is_closing():
            raise ConnectionError(f"{self.transport} connection to {self.remote} is closed")
        self._stream.write(data)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


class TcpTransport:
    """TCP listener plus outgoing connections, one connection per peer address."""

    def __init__(self, receiver: Receiver, *, ssl: ssl_module.SSLContext | None = None) -> None:
        self._receiver = receiver
        self._ssl = ssl
        self.name = "tls" if ssl is not None else "tcp"
        self._server: asyncio.Server | None = None
        self._connections: dict[HostPort, TcpConnection] = {}

    def _protocol(self) -> TcpConnection:
        return TcpConnection(self._receiver, self._forget, self.name)

    def _forget(self, conn: TcpConnection) -> None:
        if self._connections.get(conn.remote) is conn:
            del self._connections[conn.remote]

    async def listen(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()

        def accept() -> TcpConnection:
            conn = self._protocol()
            # Registered once connection_made has filled in the peer address.
            loop.call_soon(self._register, conn)
            return conn

        self._server = await loop.create_server(accept, host, port, ssl=self._ssl)
        return int(self._server.sockets[0].getsockname()[1])

    def _register(self, conn: TcpConnection) -> None:
        if not conn.closed:
            self._connections.setdefault(conn.remote, conn)

    def connection_to(self, remote: HostPort) -> TcpConnection | None:
        conn = self._connections.get(remote)
        return conn if conn is not None and not conn.closed else None

    async def connect(self, remote: HostPort) -> TcpConnection:
        conn = self.connection_to(remote)
        if conn is not None:
            return conn
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            self._protocol, remote[0], remote[1], ssl=self._ssl
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


_RPORT_EMPTY = re.compile(r";\s*rport\s*(?=;|$)", re.IGNORECASE)


def stamp_via(request: Request, source: HostPort) -> None:
    """Add ``received`` / fill ``rport`` in the top Via (18.2.1, RFC 3581 section 4)."""
    vias = request.headers.getlist("Via")
    via = top_via(request)
    raw = vias[0]
    wants_rport = "rport" in via.parameters and not via.parameters.get("rport")
    if wants_rport:
        raw = _RPORT_EMPTY.sub(f";rport={source[1]}", raw, count=1)
    needs_received = wants_rport or via.host.strip("[]") != source[0]
    if needs_received and "received" not in via.parameters:
        raw += f";received={source[0]}"
    if raw != vias[0]:
        request.headers.setlist("Via", [raw, *vias[1:]])


def response_address(request: Request) -> HostPort:
    """Where UDP responses to a (stamped) request go (18.2.2, RFC 3581 section 4)."""
    via = top_via(request)
    host = via.parameters.get("received") or via.host.strip("[]")
    rport = via.parameters.get("rport")
    port = int(rport) if rport and rport.isdigit() else (via.port or 5060)
    return (host, port)
