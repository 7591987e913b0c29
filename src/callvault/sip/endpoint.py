"""The SIP endpoint: the asyncio shell around the sans-IO core (RFC 3261 section 18).

``SipCore`` (``core.py``) does the transaction-user work: matching, 100
Trying, OPTIONS, CANCEL, malformed requests, the 2xx/ACK exchange and every
timer. This shell owns the transports (UDP, TCP and TLS, the stream ones
bounded by ``StreamLimits``), feeds the core what arrives with the loop's
time, keeps one timer handle at the core's ``next_timer()``, and performs the
actions it returns: bytes go out, new requests go to the application through
a neutral method router (``route``; the constructor's handler takes every
method without a route of its own), responses to requests we sent resolve
``request()``'s future.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import cast

from sipmessage import Request, Response

from callvault.errors import LocalProtocolError
from callvault.sip.core import (
    AckTimeout,
    ClientHandle,
    ClientTimeout,
    ClientTransportError,
    CoreAction,
    Destination,
    InviteCancelled,
    NewRequest,
    ResponseReceived,
    ServerHandle,
    SipCore,
    Transmit,
)
from callvault.sip.dialog import Dialog
from callvault.sip.timers import Timers
from callvault.sip.transport import (
    Flow,
    StreamLimits,
    TcpTransport,
    UdpSocket,
)

__all__ = ["ACCEPT", "ALLOW", "IncomingRequest", "RequestHandler", "SipEndpoint"]

logger = logging.getLogger(__name__)

# What the recording server speaks: the defaults of ``SipEndpoint(allow=, accept=)``.
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"
ACCEPT = "application/sdp, application/rs-metadata+xml, multipart/mixed"

RequestHandler = Callable[["IncomingRequest"], None]


class IncomingRequest:
    """A new request handed to the application, with the means to answer it."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        message: Request,
        flow: Flow,
        server: ServerHandle[Flow] | None,
    ) -> None:
        self.message = message
        self.transport = flow.transport
        self.remote = flow.remote
        self.local = flow.local
        # SHA-256 (hex) of the TLS client certificate; None over UDP/TCP or without one.
        self.tls_fingerprint = flow.tls_fingerprint
        self.on_cancel: Callable[[], None] | None = None
        self.on_ack_timeout: Callable[[], None] | None = None
        self._endpoint = endpoint
        self._server = server
        self._to_tag = secrets.token_hex(6)  # an ACK has no transaction to hold one
        if server is not None:
            server.owner = self

    @property
    def to_tag(self) -> str:
        """Our tag in the responses (the core's, so its own 487 carries it too)."""
        return self._to_tag if self._server is None else self._server.to_tag

    @to_tag.setter
    def to_tag(self, value: str) -> None:
        if self._server is None:
            self._to_tag = value
        else:
            self._server.to_tag = value

    @property
    def answered(self) -> bool:
        """True once a final response went out (always True for ACK)."""
        return self._server is None or self._server.answered

    def respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
        to_tag: str | None = None,
    ) -> Response:
        """Answer through the server transaction; a 2xx to INVITE is resent until ACK."""
        if self._server is None:
            raise LocalProtocolError(f"cannot respond to {self.message.method}")
        if to_tag is not None:
            self.to_tag = to_tag
        endpoint = self._endpoint
        response = endpoint._core.make_response(
            self._server, status, reason, headers=headers, body=body, content_type=content_type,
        )
        endpoint._perform(endpoint._core.respond(self._server, response, endpoint._now()))
        return response


class _Waiter:
    """A request we sent, as ``request()`` awaits it."""

    def __init__(
        self, future: asyncio.Future[Response], on_provisional: Callable[[Response], None] | None
    ) -> None:
        self.future = future
        self.on_provisional = on_provisional


class SipEndpoint:
    """A SIP user agent (UAS for recording sessions and the B2BUA, UAC for them and tests)."""

    def __init__(
        self,
        handler: RequestHandler,
        *,
        user_agent: str = "callvault",
        timers: Timers | None = None,
        stream_limits: StreamLimits | None = None,
        tls_client_context: ssl.SSLContext | None = None,
        allow: str = ALLOW,
        accept: str = ACCEPT,
        supported: str = "timer",
        screen: Callable[[Request, Flow], bool] | None = None,
    ) -> None:
        self._handler = handler
        self._routes: dict[str, RequestHandler] = {}
        self.user_agent = user_agent
        self.timers = timers or Timers()
        self._core: SipCore[Flow] = SipCore(
            user_agent=user_agent, timers=self.timers, allow=allow, accept=accept,
            supported=supported,
        )
        self._core.screen = screen  # who may talk to us at all (see ``screen``)
        self.udp_port: int | None = None
        self.tcp_port: int | None = None
        self.tls_port: int | None = None
        self.advertised_host = "127.0.0.1"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: UdpSocket | None = None
        self._stream_limits = stream_limits or StreamLimits()
        self._tcp = TcpTransport(self._on_message, limits=self._stream_limits, name="tcp")
        self._tls = TcpTransport(
            self._on_message, client_ssl=tls_client_context, limits=self._stream_limits,
            name="tls",
        )
        self._waiters: dict[ClientHandle, _Waiter] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False

    @property
    def screen(self) -> Callable[[Request, Flow], bool] | None:
        """Who may talk to us at all (the registered sources): a request it refuses
        gets one stateless 403 and no transaction (the core does that)."""
        return self._core.screen

    @screen.setter
    def screen(self, screen: Callable[[Request, Flow], bool] | None) -> None:
        self._core.screen = screen

    def route(self, method: str, handler: RequestHandler) -> None:
        """Send new requests of ``method`` (ACK included) to ``handler`` instead of the default."""
        self._routes[method.upper()] = handler

    # -- lifecycle -----------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _now(self) -> float:
        return self.loop.time()

    async def listen(
        self,
        host: str,
        udp_port: int | None,
        tcp_port: int | None,
        *,
        tls_port: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Bind UDP, TCP and/or TLS; port 0 picks a free port (see ``*_port``).

        TLS listens on ``tls_port`` with ``ssl_context`` (a server context, e.g.
        from ``transport.server_ssl_context``); both or neither.
        """
        if (tls_port is None) != (ssl_context is None):
            raise LocalProtocolError("tls_port and ssl_context go together")
        if host in ("0.0.0.0", "::", ""):
            self.advertised_host = socket.gethostbyname(socket.gethostname())
        else:
            self.advertised_host = host
        same_port = udp_port == 0 and tcp_port == 0  # one free number for both, as SBCs expect
        for attempt in range(20):
            if udp_port is not None:
                transport, proto = await self.loop.create_datagram_endpoint(
                    lambda: UdpSocket(self._on_message), local_addr=(host, udp_port)
                )
                self._udp = proto
                self.udp_port = proto.local[1]
            if tcp_port is None:
                break
            try:
                wanted = self.udp_port if same_port and self.udp_port else tcp_port
                self.tcp_port = await self._tcp.listen(host, wanted)
                break
            except OSError:
                if not same_port or attempt == 19:
                    raise
                transport.close()  # that number is taken for TCP: try another
        if tls_port is not None and ssl_context is not None:
            self._tls = TcpTransport(
                self._on_message, ssl=ssl_context, client_ssl=self._tls.client_ssl,
                limits=self._stream_limits, name="tls",
            )
            self.tls_port = await self._tls.listen(host, tls_port)
        # the start-up line (app.py) says this for the server; tests and the demo need no news
        logger.debug("SIP listening on %s udp=%s tcp=%s tls=%s",
                    host, self.udp_port, self.tcp_port, self.tls_port)

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for waiter in self._waiters.values():
            if not waiter.future.done():
                waiter.future.set_exception(ConnectionError("SIP endpoint closed"))
        self._waiters.clear()
        self._core.clear()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        await self._tcp.close()
        await self._tls.close()

    @property
    def awaiting_ack(self) -> int:
        """How many 2xx responses to INVITE are still resent, waiting for their ACK."""
        return self._core.awaiting_ack

    # -- the core's timer ------------------------------------------------------------

    def _rearm(self) -> None:
        at = None if self._closed else self._core.next_timer()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self.loop.call_at(at, self._fire)

    def _fire(self) -> None:
        at, self._timer, self._timer_at = self._timer_at, None, None
        # the loop may call a little early (its clock resolution): fire what was due
        now = max(self._now(), at or 0.0)
        try:
            self._perform(self._core.on_timer(now))
        except Exception:
            logger.exception("timer handling failed")
        self._rearm()

    # -- performing the core's actions -------------------------------------------------

    def _perform(self, actions: list[CoreAction[Flow]]) -> None:
        for action in actions:
            try:
                self._perform_one(action)
            except Exception:
                logger.exception("performing %s failed", type(action).__name__)
        self._rearm()

    def _perform_one(self, action: CoreAction[Flow]) -> None:
        if isinstance(action, Transmit):
            self._transmit(action)
        elif isinstance(action, NewRequest):
            self._dispatch(IncomingRequest(self, action.request, action.flow, action.server))
        elif isinstance(action, ResponseReceived):
            self._deliver(action.client, action.response)
        elif isinstance(action, ClientTimeout):
            self._fail(action.client, TimeoutError(
                f"no response to {action.client.request.method} (timer {action.timer})"
            ))
        elif isinstance(action, ClientTransportError):
            self._fail(action.client, ConnectionError("transport error"))
        elif isinstance(action, AckTimeout):
            self._callback(action.server, "on_ack_timeout")
        elif isinstance(action, InviteCancelled):
            self._callback(action.server, "on_cancel")

    def _transmit(self, action: Transmit[Flow]) -> None:
        try:
            target = action.target
            if isinstance(target, Destination):
                self._send_to(target, action.data)
            else:
                target.send(action.data)
        except (OSError, ConnectionError) as exc:
            logger.warning("send failed: %s", exc)
            if action.origin is not None:
                self._perform(self._core.transport_error(action.origin, self._now()))

    def _send_to(self, destination: Destination, data: bytes) -> None:
        if destination.transport == "udp":
            if self._udp is None:
                raise ConnectionError("UDP socket is closed")
            self._udp.send_to(data, destination.remote)
            return
        conn = self._stream(destination.transport).connection_to(destination.remote)
        if conn is None:
            raise ConnectionError(f"no {destination.transport} connection to {destination.remote}")
        conn.send(data)

    def _dispatch(self, incoming: IncomingRequest) -> None:
        handler = self._routes.get(incoming.message.method, self._handler)
        try:
            handler(incoming)
        except Exception:
            logger.exception("request handler failed for %s", incoming.message.method)
            if not incoming.answered:
                incoming.respond(500)

    def _callback(self, server: ServerHandle[Flow], name: str) -> None:
        incoming = server.owner
        if not isinstance(incoming, IncomingRequest):
            return
        callback = cast("Callable[[], None] | None", getattr(incoming, name))
        if callback is None:
            return
        try:
            callback()
        except Exception:
            logger.exception("%s callback failed", name)

    def _deliver(self, client: ClientHandle, response: Response) -> None:
        waiter = self._waiters.get(client)
        if waiter is None:
            return
        if response.code < 200:
            if waiter.on_provisional is not None:
                try:
                    waiter.on_provisional(response)
                except Exception:
                    logger.exception("provisional response callback failed")
            return
        del self._waiters[client]
        if not waiter.future.done():
            waiter.future.set_result(response)

    def _fail(self, client: ClientHandle, exc: Exception) -> None:
        waiter = self._waiters.pop(client, None)
        if waiter is not None and not waiter.future.done():
            waiter.future.set_exception(exc)

    # -- receiving -------------------------------------------------------------------

    def _on_message(self, data: bytes, flow: Flow) -> None:
        try:
            actions = self._core.receive(data, flow, self._now())
        except Exception:
            logger.exception("error handling message from %s", flow.remote)
            return
        self._perform(actions)

    # -- UAC -------------------------------------------------------------------------

    async def request(
        self,
        request: Request,
        remote: tuple[str, int],
        transport: str = "udp",
        *,
        on_provisional: Callable[[Response], None] | None = None,
    ) -> Response:
        """Send ``request`` in a client transaction; return its final response.

        Fills the top Via (new branch, rport), Max-Forwards and User-Agent.
        Raises ``TimeoutError`` when timer B or F fires.
        """
        destination = Destination(transport, remote)
        sent_by = await self._open(destination)
        client, actions = self._core.send_request(request, destination, self._now(),
                                                  sent_by=sent_by)
        return await self._await(client, actions, on_provisional)

    async def cancel(
        self, invite: Request, remote: tuple[str, int], transport: str = "udp"
    ) -> Response:
        """CANCEL an INVITE sent with ``request`` (9.1); returns the CANCEL's final response."""
        destination = Destination(transport, remote)
        await self._open(destination)
        client, actions = self._core.cancel(invite, destination, self._now())
        return await self._await(client, actions, None)

    async def _await(
        self,
        client: ClientHandle,
        actions: list[CoreAction[Flow]],
        on_provisional: Callable[[Response], None] | None,
    ) -> Response:
        future: asyncio.Future[Response] = self.loop.create_future()
        self._waiters[client] = _Waiter(future, on_provisional)
        self._perform(actions)
        try:
            return await future
        finally:
            if future.cancelled():  # the caller gave up: so does the transaction
                self._waiters.pop(client, None)
                self._core.abandon(client)
                self._rearm()

    async def _open(self, destination: Destination) -> str:
        """Make ``destination`` reachable (connect a stream); our host:port for its Via."""
        transport = destination.transport
        if transport == "udp":
            if self._udp is None:
                raise LocalProtocolError("no UDP socket: call listen() with a udp_port")
            return f"{self.advertised_host}:{self._udp.local[1]}"
        if transport in ("tcp", "tls"):
            conn = await self._stream(transport).connect(destination.remote)
            return f"{self.advertised_host}:{self._stream_port(transport) or conn.local[1]}"
        raise LocalProtocolError(f"unsupported transport {transport!r}")

    def _stream(self, transport: str) -> TcpTransport:
        return self._tls if transport == "tls" else self._tcp

    def _stream_port(self, transport: str) -> int | None:
        return self.tls_port if transport == "tls" else self.tcp_port

    def send_ack(self, response: Response, dialog: Dialog) -> None:
        """ACK a 2xx we received for our INVITE (13.2.2.4); resent if the 2xx is."""
        destination = self._core.invite_destination(response)
        if destination is None:
            raise LocalProtocolError(
                f"no INVITE sent for {response.headers['Call-ID']} CSeq {response.cseq.sequence}"
            )
        if destination.transport == "udp":
            udp = self._udp
            if udp is None:
                raise ConnectionError("UDP socket is closed")
            port = udp.local[1]
        else:
            conn = self._stream(destination.transport).connection_to(destination.remote)
            if conn is None:
                raise ConnectionError(f"no {destination.transport} connection to "
                                      f"{destination.remote}")
            port = self._stream_port(destination.transport) or conn.local[1]
        self._perform(self._core.send_ack(response, dialog, self._now(),
                                          sent_by=f"{self.advertised_host}:{port}"))
