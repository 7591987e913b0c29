"""The SIP endpoint: asyncio shell around the sans-IO core (RFC 3261 sections 8, 17, 18).

It owns the transports (UDP, TCP and TLS, the stream ones bounded by
``StreamLimits``), matches messages to transactions, drives every timer
with ``loop.call_at`` (handles kept and cancelled in ``close``), answers
OPTIONS, CANCEL and malformed requests itself, retransmits 2xx to INVITE
until ACK (13.3.1.4) and hands every new request to the application's
synchronous handler as an ``IncomingRequest``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from sipmessage import Request, Response

from callvault.errors import LocalProtocolError, RemoteProtocolError
from callvault.sip.dialog import Dialog
from callvault.sip.invite_2xx import Pending2xx, ack_key
from callvault.sip.message import (
    build_response,
    parse_message,
    salvage_request,
    serialize,
)
from callvault.sip.timers import Timers
from callvault.sip.transaction import (
    MAGIC_COOKIE,
    Action,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Deliver,
    Send,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    State,
    Timeout,
    TransactionKey,
    cancel_target_key,
    client_key,
    server_key,
)
from callvault.sip.transport import (
    Flow,
    HostPort,
    StreamLimits,
    TcpTransport,
    UdpSocket,
    response_address,
    stamp_via,
)

__all__ = ["ALLOW", "IncomingRequest", "SipEndpoint"]

logger = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"
ACCEPT = "application/sdp, application/rs-metadata+xml, multipart/mixed"

ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction
ClientTransaction = ClientInviteTransaction | ClientNonInviteTransaction


def _new_tag() -> str:
    return secrets.token_hex(6)


def _one_line(text: str) -> str:
    return " ".join(text.replace('"', "'").split())[:200]


class _Timed:
    """Something the endpoint keeps a timer handle for."""

    handle: asyncio.TimerHandle | None = None

    def next_timer(self) -> float | None:
        raise NotImplementedError


class _ServerEntry(_Timed):
    def __init__(self, txn: ServerTransaction, send: Callable[[bytes], None]) -> None:
        self.txn = txn
        self.send = send
        self.incoming: IncomingRequest | None = None

    def next_timer(self) -> float | None:
        return self.txn.next_timer()


class _ClientEntry(_Timed):
    def __init__(
        self,
        txn: ClientTransaction,
        send: Callable[[bytes], None],
        future: asyncio.Future[Response],
        on_provisional: Callable[[Response], None] | None,
    ) -> None:
        self.txn = txn
        self.send = send
        self.future = future
        self.on_provisional = on_provisional

    def next_timer(self) -> float | None:
        return self.txn.next_timer()


class _PendingEntry(_Timed):
    """A 2xx awaiting ACK; kept until 64*T1 to absorb late INVITE/ACK copies."""

    def __init__(
        self,
        pending: Pending2xx,
        send: Callable[[bytes], None],
        incoming: IncomingRequest,
        invite_key: TransactionKey,
        forget_at: float,
    ) -> None:
        self.pending = pending
        self.send = send
        self.incoming = incoming
        self.invite_key = invite_key
        self.forget_at = forget_at

    def next_timer(self) -> float | None:
        at = self.pending.next_timer()
        return self.forget_at if at is None else min(at, self.forget_at)


class _SentAck(_Timed):
    """An ACK we sent for a 2xx, resent when that 2xx is retransmitted."""

    def __init__(self, key: tuple[str, int], data: bytes, send: Callable[[bytes], None],
                 forget_at: float) -> None:
        self.key = key
        self.data = data
        self.send = send
        self.forget_at = forget_at

    def next_timer(self) -> float | None:
        return self.forget_at


class IncomingRequest:
    """A new request handed to the application, with the means to answer it."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        message: Request,
        flow: Flow,
        entry: _ServerEntry | None,
    ) -> None:
        self.message = message
        self.transport = flow.transport
        self.remote = flow.remote
        self.local = flow.local
        # SHA-256 (hex) of the TLS client certificate; None over UDP/TCP or without one.
        self.tls_fingerprint = flow.tls_fingerprint
        self.on_cancel: Callable[[], None] | None = None
        self.on_ack_timeout: Callable[[], None] | None = None
        self.to_tag = _new_tag()
        self._endpoint = endpoint
        self._entry = entry

    @property
    def answered(self) -> bool:
        """True once a final response went out (always True for ACK)."""
        return self._entry is None or (
            self._entry.txn.last_response is not None
            and self._entry.txn.last_response.code >= 200
        )

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
        if self._entry is None:
            raise LocalProtocolError(f"cannot respond to {self.message.method}")
        if to_tag is not None:
            self.to_tag = to_tag
        response = build_response(
            self.message, status, reason, to_tag=self.to_tag, headers=headers, body=body,
            content_type=content_type,
        )
        if response.headers.get("Server") is None:
            response.headers.add("Server", self._endpoint.user_agent)
        self._endpoint._send_response(self, self._entry, response)
        return response


class SipEndpoint:
    """A SIP user agent (UAS for recording sessions, UAC for demos and tests)."""

    def __init__(
        self,
        handler: Callable[[IncomingRequest], None],
        *,
        user_agent: str = "callvault",
        timers: Timers | None = None,
        stream_limits: StreamLimits | None = None,
        tls_client_context: ssl.SSLContext | None = None,
    ) -> None:
        self._handler = handler
        self.user_agent = user_agent
        # Who may talk to us at all (the registered recording sources): a request
        # the screen refuses gets one stateless 403 and no transaction, so a
        # stranger draws neither 100 Trying nor retransmissions (no reflector).
        self.screen: Callable[[Request, Flow], bool] | None = None
        self.timers = timers or Timers()
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
        self._server: dict[TransactionKey, _ServerEntry] = {}
        self._client: dict[TransactionKey, _ClientEntry] = {}
        self._pending_by_ack: dict[tuple[str, int], _PendingEntry] = {}
        self._pending_by_invite: dict[TransactionKey, _PendingEntry] = {}
        self._sent_acks: dict[tuple[str, int], _SentAck] = {}
        self._invite_routes: dict[tuple[str, int], tuple[str, HostPort]] = {}
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

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
        entries: list[_Timed] = [
            *self._server.values(), *self._client.values(),
            *self._pending_by_invite.values(), *self._sent_acks.values(),
        ]
        for entry in entries:
            if entry.handle is not None:
                entry.handle.cancel()
                entry.handle = None
        for client in self._client.values():
            if not client.future.done():
                client.future.set_exception(ConnectionError("SIP endpoint closed"))
        self._server.clear()
        self._client.clear()
        self._pending_by_ack.clear()
        self._pending_by_invite.clear()
        self._sent_acks.clear()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        await self._tcp.close()
        await self._tls.close()

    @property
    def awaiting_ack(self) -> int:
        """How many 2xx responses to INVITE are still resent, waiting for their ACK."""
        return sum(not entry.pending.done for entry in self._pending_by_invite.values())

    # -- timers --------------------------------------------------------------------

    def _schedule(self, entry: _Timed) -> None:
        if entry.handle is not None:
            entry.handle.cancel()
            entry.handle = None
        at = entry.next_timer()
        if at is not None and not self._closed:
            entry.handle = self.loop.call_at(at, self._fire, entry)

    def _fire(self, entry: _Timed) -> None:
        entry.handle = None
        now = self.loop.time()
        try:
            if isinstance(entry, _ServerEntry):
                self._run_server(entry, entry.txn.on_timer(now))
            elif isinstance(entry, _ClientEntry):
                self._run_client(entry, entry.txn.on_timer(now))
            elif isinstance(entry, _PendingEntry):
                self._run_pending(entry, entry.pending.on_timer(now), now)
            elif isinstance(entry, _SentAck) and self._sent_acks.get(entry.key) is entry:
                del self._sent_acks[entry.key]
        except Exception:
            logger.exception("timer handling failed")

    # -- sending ---------------------------------------------------------------------

    def _sender(self, flow: Flow, request: Request) -> Callable[[bytes], None]:
        if flow.reliable:
            return flow.send
        udp = self._udp
        destination = response_address(request)
        assert udp is not None

        def send(data: bytes) -> None:
            udp.send_to(data, destination)

        return send

    def _safe_send(self, send: Callable[[bytes], None], data: bytes) -> bool:
        try:
            send(data)
            return True
        except (OSError, ConnectionError) as exc:
            logger.warning("send failed: %s", exc)
            return False

    def _run_server(self, entry: _ServerEntry, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                if not self._safe_send(entry.send, action.data):
                    entry.txn.transport_error()
            elif isinstance(action, Timeout):
                logger.info("server transaction %s: timer %s", entry.txn.key[0], action.timer)
        if entry.txn.terminated:
            self._server.pop(entry.txn.key, None)
            if entry.handle is not None:
                entry.handle.cancel()
                entry.handle = None
        else:
            self._schedule(entry)

    def _run_client(self, entry: _ClientEntry, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                if not self._safe_send(entry.send, action.data):
                    entry.txn.transport_error()
                    if not entry.future.done():
                        entry.future.set_exception(ConnectionError("transport error"))
            elif isinstance(action, Deliver):
                response = action.response
                if response.code < 200:
                    if entry.on_provisional is not None:
                        try:
                            entry.on_provisional(response)
                        except Exception:
                            logger.exception("provisional response callback failed")
                elif not entry.future.done():
                    entry.future.set_result(response)
            elif isinstance(action, Timeout) and not entry.future.done():
                entry.future.set_exception(
                    TimeoutError(
                        f"no response to {entry.txn.request.method} (timer {action.timer})"
                    )
                )
        if entry.txn.terminated:
            self._client.pop(entry.txn.key, None)
            if entry.handle is not None:
                entry.handle.cancel()
                entry.handle = None
        else:
            self._schedule(entry)

    def _run_pending(self, entry: _PendingEntry, actions: list[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._safe_send(entry.send, action.data)
            elif isinstance(action, Timeout):
                logger.warning("no ACK for 2xx to %s", entry.pending.key)
                callback = entry.incoming.on_ack_timeout
                if callback is not None:
                    try:
                        callback()
                    except Exception:
                        logger.exception("on_ack_timeout callback failed")
        if entry.pending.done and now >= entry.forget_at:
            self._pending_by_invite.pop(entry.invite_key, None)
            if self._pending_by_ack.get(entry.pending.key) is entry:
                del self._pending_by_ack[entry.pending.key]
        else:
            self._schedule(entry)

    def _send_response(
        self, incoming: IncomingRequest, entry: _ServerEntry, response: Response
    ) -> None:
        now = self.loop.time()
        actions = entry.txn.send_response(response, now)
        if isinstance(entry.txn, ServerInviteTransaction) and 200 <= response.code < 300:
            data = next(a.data for a in actions if isinstance(a, Send))
            pending = Pending2xx(response, data, reliable=entry.txn.reliable,
                                 timers=self.timers, now=now)
            pending_entry = _PendingEntry(pending, entry.send, incoming, entry.txn.key,
                                          now + self.timers.timeout)
            self._pending_by_ack[pending.key] = pending_entry
            self._pending_by_invite[entry.txn.key] = pending_entry
            self._schedule(pending_entry)
        self._run_server(entry, actions)

    # -- receiving -------------------------------------------------------------------

    def _on_message(self, data: bytes, flow: Flow) -> None:
        if not data.strip(b"\r\n"):
            return  # CRLF keep-alive
        try:
            message = parse_message(data)
        except RemoteProtocolError as exc:
            self._reject_malformed(data, flow, exc)
            return
        try:
            if isinstance(message, Response):
                self._on_response(message)
            else:
                self._on_request(message, flow)
        except RemoteProtocolError as exc:
            self._reject_malformed(data, flow, exc)
        except Exception:
            logger.exception("error handling message from %s", flow.remote)

    def _reject_malformed(self, data: bytes, flow: Flow, exc: RemoteProtocolError) -> None:
        request = salvage_request(data)
        if request is None:
            logger.info("dropping malformed message from %s: %s", flow.remote, exc)
            return
        text = _one_line(str(exc))
        response = build_response(
            request, exc.status, text, to_tag=_new_tag(),
            headers=[("Warning", f'399 callvault "{_one_line(exc.warning or text)}"')],
        )
        logger.info("answering %s to malformed request from %s: %s", exc.status, flow.remote, text)
        self._safe_send(flow.send, serialize(response))

    def _on_response(self, response: Response) -> None:
        entry = self._client.get(client_key(response))
        if entry is None:
            cseq = response.cseq
            sent = self._sent_acks.get((response.headers["Call-ID"], cseq.sequence))
            if sent is not None and cseq.method == "INVITE" and 200 <= response.code < 300:
                self._safe_send(sent.send, sent.data)  # the 2xx was resent: so is our ACK
            else:
                logger.debug("stray response %s to %s", response.code, cseq)
            return
        self._run_client(entry, entry.txn.receive_response(response, self.loop.time()))

    def _on_request(self, request: Request, flow: Flow) -> None:
        stamp_via(request, flow.remote)
        now = self.loop.time()
        key = server_key(request)
        existing = self._server.get(key)
        if existing is not None:  # retransmission, or ACK for a non-2xx
            self._run_server(existing, existing.txn.receive_request(request, now))
            return
        if self.screen is not None and not self.screen(request, flow):
            if request.method != "ACK":
                response = build_response(request, 403, "Forbidden", to_tag=_new_tag())
                self._safe_send(flow.send, serialize(response))
            return
        if request.method == "ACK":
            self._on_ack_for_2xx(request, flow)
            return
        if request.method == "INVITE":
            accepted = self._pending_by_invite.get(key)
            if accepted is not None:  # INVITE resent after our 2xx
                self._run_pending(accepted, accepted.pending.retransmit(), now)
                return
        txn: ServerTransaction
        if request.method == "INVITE":
            txn = ServerInviteTransaction(request, reliable=flow.reliable, timers=self.timers)
        else:
            txn = ServerNonInviteTransaction(request, reliable=flow.reliable, timers=self.timers)
        entry = _ServerEntry(txn, self._sender(flow, request))
        incoming = IncomingRequest(self, request, flow, entry)
        entry.incoming = incoming
        self._server[key] = entry
        if request.method == "INVITE":
            incoming.respond(100)
        if request.method == "CANCEL":
            self._on_cancel(incoming)
        elif request.method == "OPTIONS":
            incoming.respond(200, headers=[
                ("Allow", ALLOW), ("Accept", ACCEPT), ("Supported", "timer"),
            ])
        else:
            self._dispatch(incoming)

    def _dispatch(self, incoming: IncomingRequest) -> None:
        try:
            self._handler(incoming)
        except Exception:
            logger.exception("request handler failed for %s", incoming.message.method)
            if not incoming.answered:
                incoming.respond(500)

    def _on_ack_for_2xx(self, request: Request, flow: Flow) -> None:
        key = ack_key(request.headers["Call-ID"], request.cseq.sequence)
        entry = self._pending_by_ack.get(key)
        if entry is None or entry.pending.done:
            logger.debug("absorbing ACK without a pending 2xx: %s", key)
            return
        entry.pending.ack_received()
        self._schedule(entry)
        self._dispatch(IncomingRequest(self, request, flow, None))

    def _on_cancel(self, incoming: IncomingRequest) -> None:
        target = self._server.get(cancel_target_key(incoming.message))
        if target is None or not isinstance(target.txn, ServerInviteTransaction):
            incoming.respond(481)
            return
        incoming.respond(200)
        invite = target.incoming
        if invite is None or target.txn.state is not State.PROCEEDING:
            return
        callback = invite.on_cancel
        if callback is not None:
            try:
                callback()
            except Exception:
                logger.exception("on_cancel callback failed")
        if not invite.answered:
            invite.respond(487)

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
        send, local_port, reliable = await self._client_sender(remote, transport)
        branch = MAGIC_COOKIE + secrets.token_hex(8)
        sent_by = f"{self.advertised_host}:{local_port}"
        via = f"SIP/2.0/{transport.upper()} {sent_by};branch={branch};rport"
        _prepend_header(request, "Via", via)
        if request.headers.get("Max-Forwards") is None:
            request.headers.add("Max-Forwards", "70")
        if request.headers.get("User-Agent") is None:
            request.headers.add("User-Agent", self.user_agent)
        if request.method == "INVITE":
            self._invite_routes[(request.headers["Call-ID"], request.cseq.sequence)] = (
                transport, remote,
            )
        return await self._run_client_transaction(request, send, reliable, on_provisional)

    async def cancel(
        self, invite: Request, remote: tuple[str, int], transport: str = "udp"
    ) -> Response:
        """CANCEL an INVITE sent with ``request`` (9.1); returns the CANCEL's final response."""
        cancel = Request(method="CANCEL", uri=invite.uri)
        headers = cancel.headers
        headers.add("Via", invite.headers.getlist("Via")[0])
        for route in invite.headers.getlist("Route"):
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            headers.add(name, invite.headers[name])
        headers.add("CSeq", f"{invite.cseq.sequence} CANCEL")
        send, _, reliable = await self._client_sender(remote, transport)
        return await self._run_client_transaction(cancel, send, reliable, None)

    async def _run_client_transaction(
        self,
        request: Request,
        send: Callable[[bytes], None],
        reliable: bool,
        on_provisional: Callable[[Response], None] | None,
    ) -> Response:
        txn: ClientTransaction
        if request.method == "INVITE":
            txn = ClientInviteTransaction(request, reliable=reliable, timers=self.timers)
        else:
            txn = ClientNonInviteTransaction(request, reliable=reliable, timers=self.timers)
        future: asyncio.Future[Response] = self.loop.create_future()
        entry = _ClientEntry(txn, send, future, on_provisional)
        self._client[txn.key] = entry
        self._run_client(entry, txn.start(self.loop.time()))
        try:
            return await future
        finally:
            if not txn.terminated and future.cancelled():
                self._client.pop(txn.key, None)
                if entry.handle is not None:
                    entry.handle.cancel()

    async def _client_sender(
        self, remote: HostPort, transport: str
    ) -> tuple[Callable[[bytes], None], int, bool]:
        if transport == "udp":
            udp = self._udp
            if udp is None:
                raise LocalProtocolError("no UDP socket: call listen() with a udp_port")

            def send(data: bytes) -> None:
                udp.send_to(data, remote)

            return send, udp.local[1], False
        if transport in ("tcp", "tls"):
            conn = await self._stream(transport).connect(remote)
            return conn.send, self._stream_port(transport) or conn.local[1], True
        raise LocalProtocolError(f"unsupported transport {transport!r}")

    def _stream(self, transport: str) -> TcpTransport:
        return self._tls if transport == "tls" else self._tcp

    def _stream_port(self, transport: str) -> int | None:
        return self.tls_port if transport == "tls" else self.tcp_port

    def send_ack(self, response: Response, dialog: Dialog) -> None:
        """ACK a 2xx we received for our INVITE (13.2.2.4); resent if the 2xx is."""
        call_id, cseq = response.headers["Call-ID"], response.cseq.sequence
        route = self._invite_routes.pop((call_id, cseq), None)
        if route is None:
            raise LocalProtocolError(f"no INVITE sent for {call_id} CSeq {cseq}")
        transport, remote = route
        ack = dialog.create_ack(cseq)
        if transport == "udp":
            udp = self._udp
            assert udp is not None
            port = udp.local[1]

            def send(data: bytes) -> None:
                udp.send_to(data, remote)
        else:
            conn = self._stream(transport).connection_to(remote)
            if conn is None:
                raise ConnectionError(f"no {transport} connection to {remote}")
            send, port = conn.send, self._stream_port(transport) or conn.local[1]
        branch = MAGIC_COOKIE + secrets.token_hex(8)
        _prepend_header(
            ack, "Via",
            f"SIP/2.0/{transport.upper()} {self.advertised_host}:{port};branch={branch};rport",
        )
        data = serialize(ack)
        self._safe_send(send, data)
        sent = _SentAck((call_id, cseq), data, send, self.loop.time() + self.timers.timeout)
        self._sent_acks[sent.key] = sent
        self._schedule(sent)


def _prepend_header(message: Request | Response, name: str, value: str) -> None:
    """Put a header first (a new top Via must precede the others)."""
    existing: list[tuple[str, list[str]]] = [
        (key, list(message.headers.getlist(key))) for key in message.headers.keys()  # noqa: SIM118
    ]
    headers: Any = type(message.headers)()
    headers.add(name, value)
    for key, values in existing:
        for item in values:
            headers.add(key, item)
    message.headers = headers
