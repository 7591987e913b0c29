"""The sans-IO SIP transaction user both modes share (RFC 3261 sections 8, 9, 13, 17).

``SipCore`` takes bytes with the flow they came on and the time, and returns
actions: bytes to transmit, new requests and responses for the application,
timeouts. It owns what every user agent of ours does the same way, so the
SIPREC server and the B2BUA only answer requests and send their own:

- matching messages to transactions (17.1.3, 17.2.3) and running the
  transaction machines of ``transaction.py``;
- the screen: a request it refuses gets one stateless 403 and no state;
- 100 Trying for INVITE; OPTIONS answered with the Allow/Accept/Supported
  given to the constructor; CANCEL answered 200 and its INVITE 487 (9.2);
- the 2xx to INVITE resent until its ACK (13.3.1.4, ``invite_2xx.py``),
  late copies of that INVITE and ACK absorbed for 64*T1;
- the ACK we send for a 2xx we received, resent when that 2xx is (13.2.2.4);
- malformed requests answered 400 with a Warning when they can be addressed.

No sockets, no event loop, no clock: the shell (``endpoint.py``) performs the
actions, calls ``on_timer`` at ``next_timer()`` and passes its loop's time.
Flows are the shell's own objects; the core reads only their transport,
remote address and reliability. Tests drive it with a fake clock and two cores
wired back to back (``tests/sip/test_core*.py``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, Union

from sipmessage import Request, Response

from callvault.errors import LocalProtocolError, RemoteProtocolError
from callvault.sip.dialog import Dialog
from callvault.sip.invite_2xx import Pending2xx, ack_key
from callvault.sip.message import build_response, parse_message, salvage_request, serialize
from callvault.sip.timers import Timers
from callvault.sip.transaction import (
    MAGIC_COOKIE,
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
from callvault.sip.transaction import Action as TxnAction
from callvault.sip.via import HostPort, response_address, stamp_via

__all__ = [
    "AckTimeout",
    "ClientHandle",
    "ClientTimeout",
    "ClientTransportError",
    "CoreAction",
    "Destination",
    "FlowLike",
    "InviteCancelled",
    "NewRequest",
    "ResponseReceived",
    "ServerHandle",
    "SipCore",
    "Transmit",
]

logger = logging.getLogger(__name__)


class FlowLike(Protocol):
    """What the core reads of the shell's flow a message arrived on."""

    @property
    def transport(self) -> str: ...

    @property
    def remote(self) -> HostPort: ...

    @property
    def reliable(self) -> bool: ...


F = TypeVar("F", bound=FlowLike)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a message goes when no flow is given: a transport and an address.

    For UDP the shell sends from its socket; for TCP/TLS along its connection
    to ``remote`` (opened before the request was handed to the core).
    """

    transport: str
    remote: HostPort

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"


def _new_tag() -> str:
    return secrets.token_hex(6)


def _one_line(text: str) -> str:
    return " ".join(text.replace('"', "'").split())[:200]


class _Timed:
    """Something with timers; ``armed_at`` is its live entry in the core's heap."""

    armed_at: float | None = None
    live = True

    def next_timer(self) -> float | None:
        raise NotImplementedError


ServerTxn = ServerInviteTransaction | ServerNonInviteTransaction
ClientTxn = ClientInviteTransaction | ClientNonInviteTransaction


class ServerHandle(_Timed, Generic[F]):
    """A request we serve: the application answers it with ``SipCore.respond``."""

    def __init__(self, txn: ServerTxn, flow: F, target: F | Destination) -> None:
        self.txn = txn
        self.request: Request = txn.request
        self.flow = flow
        self.target = target  # where its responses go (18.2.2)
        self.to_tag = _new_tag()  # our tag in every response, the 487 included
        self.owner: object = None  # the shell's object for this request

    @property
    def answered(self) -> bool:
        last = self.txn.last_response
        return last is not None and last.code >= 200

    def next_timer(self) -> float | None:
        return self.txn.next_timer()


class ClientHandle(_Timed):
    """A request we sent, in its client transaction."""

    def __init__(self, txn: ClientTxn, destination: Destination) -> None:
        self.txn = txn
        self.request: Request = txn.request
        self.destination = destination

    def next_timer(self) -> float | None:
        return self.txn.next_timer()


class _Pending(_Timed, Generic[F]):
    """A 2xx awaiting ACK; kept until 64*T1 to absorb late INVITE/ACK copies."""

    def __init__(self, pending: Pending2xx, server: ServerHandle[F], forget_at: float) -> None:
        self.pending = pending
        self.server = server
        self.forget_at = forget_at

    def next_timer(self) -> float | None:
        at = self.pending.next_timer()
        return self.forget_at if at is None else min(at, self.forget_at)


class _SentAck(_Timed):
    """An ACK we sent for a 2xx, resent when that 2xx is retransmitted."""

    def __init__(self, key: tuple[str, int], data: bytes, destination: Destination,
                 forget_at: float) -> None:
        self.key = key
        self.data = data
        self.destination = destination
        self.forget_at = forget_at

    def next_timer(self) -> float | None:
        return self.forget_at


# -- actions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Transmit(Generic[F]):
    """Send ``data`` along a flow, or to a destination.

    ``origin`` is the transaction it belongs to: if sending fails, the shell
    tells the core (``transport_error``), as 17.1.4/17.2.4 ask.
    """

    data: bytes
    target: F | Destination
    origin: ServerHandle[F] | ClientHandle | None = None


@dataclass(frozen=True)
class NewRequest(Generic[F]):
    """A new request for the application; ``server`` is None for the ACK of a 2xx."""

    request: Request
    flow: F
    server: ServerHandle[F] | None


@dataclass(frozen=True)
class ResponseReceived:
    """A provisional or final response to a request we sent."""

    client: ClientHandle
    response: Response


@dataclass(frozen=True)
class ClientTimeout:
    """No final response to a request we sent (timer B or F)."""

    client: ClientHandle
    timer: str


@dataclass(frozen=True)
class ClientTransportError:
    """A request we sent could not be sent (17.1.4): the transaction is over."""

    client: ClientHandle


@dataclass(frozen=True)
class AckTimeout(Generic[F]):
    """The 2xx we sent for this INVITE got no ACK within 64*T1: end the dialog (BYE)."""

    server: ServerHandle[F]


@dataclass(frozen=True)
class InviteCancelled(Generic[F]):
    """A CANCEL hit this INVITE before its final answer; the core answers it 487."""

    server: ServerHandle[F]


CoreAction = Union[  # noqa: UP007 (a generic alias: the | form needs 3.12's type statement)
    Transmit[F], NewRequest[F], ResponseReceived, ClientTimeout, ClientTransportError,
    AckTimeout[F], InviteCancelled[F],
]


class SipCore(Generic[F]):
    """The transaction user: matching, the answers every UA gives itself, 2xx/ACK."""

    def __init__(
        self,
        *,
        user_agent: str = "callvault",
        timers: Timers | None = None,
        allow: str,
        accept: str,
        supported: str = "timer",
        screen: Callable[[Request, F], bool] | None = None,
    ) -> None:
        self.user_agent = user_agent
        self.timers = timers or Timers()
        self.allow = allow
        self.accept = accept
        self.supported = supported
        # Who may talk to us at all: a request the screen refuses gets one
        # stateless 403 and no transaction, so a stranger draws neither 100
        # Trying nor retransmissions (no reflector).
        self.screen = screen
        self._server: dict[TransactionKey, ServerHandle[F]] = {}
        self._client: dict[TransactionKey, ClientHandle] = {}
        self._pending_by_ack: dict[tuple[str, int], _Pending[F]] = {}
        self._pending_by_invite: dict[TransactionKey, _Pending[F]] = {}
        self._sent_acks: dict[tuple[str, int], _SentAck] = {}
        self._invite_routes: dict[tuple[str, int], Destination] = {}
        self._heap: list[tuple[float, int, _Timed]] = []
        self._order = itertools.count()

    # -- state for the shell and for tests ---------------------------------------------

    @property
    def awaiting_ack(self) -> int:
        """How many 2xx responses to INVITE are still resent, waiting for their ACK."""
        return sum(not entry.pending.done for entry in self._pending_by_invite.values())

    @property
    def transactions(self) -> int:
        """Live server and client transactions (a 2xx awaiting ACK is not one)."""
        return len(self._server) + len(self._client)

    @property
    def remembered(self) -> int:
        """Everything kept: transactions, 2xx awaiting ACK or absorbing, ACKs sent, routes."""
        return (self.transactions + len(self._pending_by_invite) + len(self._sent_acks)
                + len(self._invite_routes))

    def clear(self) -> None:
        """Forget everything (the shell is closing)."""
        for timed in self._all_timed():
            timed.live = False
        self._server.clear()
        self._client.clear()
        self._pending_by_ack.clear()
        self._pending_by_invite.clear()
        self._sent_acks.clear()
        self._invite_routes.clear()
        self._heap.clear()

    def _all_timed(self) -> Iterable[_Timed]:
        yield from self._server.values()
        yield from self._client.values()
        yield from self._pending_by_invite.values()
        yield from self._sent_acks.values()

    # -- timers ------------------------------------------------------------------------

    def next_timer(self) -> float | None:
        """When ``on_timer`` must next be called, or None."""
        heap = self._heap
        while heap and not self._current(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def on_timer(self, now: float) -> list[CoreAction[F]]:
        """Fire every timer due at ``now``."""
        actions: list[CoreAction[F]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._current(entry):
                continue
            timed = entry[2]
            timed.armed_at = None
            actions += self._fire(timed, now)
            self._touch(timed)
        return actions

    @staticmethod
    def _current(entry: tuple[float, int, _Timed]) -> bool:
        at, _, timed = entry
        return timed.live and timed.armed_at == at

    def _touch(self, timed: _Timed) -> None:
        """Put ``timed``'s next deadline in the heap (stale entries are skipped later)."""
        at = timed.next_timer() if timed.live else None
        if at is not None and at != timed.armed_at:
            heapq.heappush(self._heap, (at, next(self._order), timed))
        timed.armed_at = at

    def _fire(self, timed: _Timed, now: float) -> list[CoreAction[F]]:
        if isinstance(timed, ServerHandle):
            return self._server_actions(timed, timed.txn.on_timer(now))
        if isinstance(timed, ClientHandle):
            return self._client_actions(timed, timed.txn.on_timer(now))
        if isinstance(timed, _Pending):
            return self._pending_actions(timed, timed.pending.on_timer(now), now)
        if isinstance(timed, _SentAck) and now >= timed.forget_at:
            self._forget_ack(timed)
        return []

    # -- receiving ---------------------------------------------------------------------

    def receive(self, data: bytes, flow: F, now: float) -> list[CoreAction[F]]:
        """One datagram or framed stream message from ``flow``."""
        if not data.strip(b"\r\n"):
            return []  # CRLF keep-alive
        try:
            message = parse_message(data)
            if isinstance(message, Response):
                return self._on_response(message, now)
            return self._on_request(message, flow, now)
        except RemoteProtocolError as exc:
            return self._reject_malformed(data, flow, exc)

    def _reject_malformed(
        self, data: bytes, flow: F, exc: RemoteProtocolError
    ) -> list[CoreAction[F]]:
        request = salvage_request(data)
        if request is None:
            logger.info("dropping malformed message from %s: %s", flow.remote, exc)
            return []
        text = _one_line(str(exc))
        response = build_response(
            request, exc.status, text, to_tag=_new_tag(),
            headers=[("Warning", f'399 callvault "{_one_line(exc.warning or text)}"')],
        )
        logger.info("answering %s to malformed request from %s: %s", exc.status, flow.remote,
                    text)
        return [Transmit(serialize(response), flow)]

    def _on_request(self, request: Request, flow: F, now: float) -> list[CoreAction[F]]:
        stamp_via(request, flow.remote)
        key = server_key(request)
        existing = self._server.get(key)
        if existing is not None:  # retransmission, or ACK for a non-2xx
            return self._server_actions(existing, existing.txn.receive_request(request, now))
        if self.screen is not None and not self.screen(request, flow):
            if request.method == "ACK":
                return []
            refusal = build_response(request, 403, "Forbidden", to_tag=_new_tag())
            return [Transmit(serialize(refusal), flow)]
        if request.method == "ACK":
            return self._on_ack_for_2xx(request, flow)
        if request.method == "INVITE":
            accepted = self._pending_by_invite.get(key)
            if accepted is not None:  # INVITE resent after our 2xx: the same 2xx again
                return self._pending_actions(accepted, accepted.pending.retransmit(), now)
        txn: ServerTxn
        if request.method == "INVITE":
            txn = ServerInviteTransaction(request, reliable=flow.reliable, timers=self.timers)
        else:
            txn = ServerNonInviteTransaction(request, reliable=flow.reliable, timers=self.timers)
        target: F | Destination = (
            flow if flow.reliable else Destination(flow.transport, response_address(request))
        )
        handle = ServerHandle(txn, flow, target)
        self._server[key] = handle
        actions: list[CoreAction[F]] = []
        if request.method == "INVITE":
            actions += self._reply(handle, 100, now)
        if request.method == "CANCEL":
            actions += self._on_cancel(handle, now)
        elif request.method == "OPTIONS":
            actions += self._reply(handle, 200, now, headers=[
                ("Allow", self.allow), ("Accept", self.accept), ("Supported", self.supported),
            ])
        else:
            actions.append(NewRequest(request, flow, handle))
        return actions

    def _on_ack_for_2xx(self, request: Request, flow: F) -> list[CoreAction[F]]:
        key = ack_key(request.headers["Call-ID"], request.cseq.sequence)
        entry = self._pending_by_ack.get(key)
        if entry is None or entry.pending.done:
            logger.debug("absorbing ACK without a pending 2xx: %s", key)
            return []
        entry.pending.ack_received()
        self._touch(entry)
        return [NewRequest(request, flow, None)]

    def _on_cancel(self, cancel: ServerHandle[F], now: float) -> list[CoreAction[F]]:
        invite_key = cancel_target_key(cancel.request)
        target = self._server.get(invite_key)
        if target is None or not isinstance(target.txn, ServerInviteTransaction):
            if invite_key in self._pending_by_invite:
                # the INVITE was accepted (RFC 6026's Accepted state): the CANCEL
                # matched it, but has no effect on it (9.2)
                return self._reply(cancel, 200, now)
            return self._reply(cancel, 481, now)
        actions = self._reply(cancel, 200, now)
        if target.txn.state is not State.PROCEEDING:
            return actions  # answered already: the CANCEL changes nothing
        actions.append(InviteCancelled(target))
        actions += self._reply(target, 487, now)
        return actions

    def _on_response(self, response: Response, now: float) -> list[CoreAction[F]]:
        handle = self._client.get(client_key(response))
        if handle is None:
            cseq = response.cseq
            sent = self._sent_acks.get((response.headers["Call-ID"], cseq.sequence))
            if sent is not None and cseq.method == "INVITE" and 200 <= response.code < 300:
                return [Transmit(sent.data, sent.destination)]  # the 2xx was resent: our ACK too
            logger.debug("stray response %s to %s", response.code, cseq)
            return []
        return self._client_actions(handle, handle.txn.receive_response(response, now))

    # -- answering ---------------------------------------------------------------------

    def make_response(
        self,
        server: ServerHandle[F],
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Response:
        """A response to ``server``'s request carrying its To tag and our Server header."""
        response = build_response(
            server.request, status, reason, to_tag=server.to_tag, headers=headers, body=body,
            content_type=content_type,
        )
        if response.headers.get("Server") is None:
            response.headers.add("Server", self.user_agent)
        return response

    def respond(
        self, server: ServerHandle[F], response: Response, now: float
    ) -> list[CoreAction[F]]:
        """Send ``response`` in ``server``'s transaction; a 2xx to INVITE is resent until ACK.

        Raises ``LocalProtocolError`` when the transaction cannot send it (a
        final response already went out).
        """
        if response.headers.get("Server") is None:
            response.headers.add("Server", self.user_agent)
        txn_actions = server.txn.send_response(response, now)
        if isinstance(server.txn, ServerInviteTransaction) and 200 <= response.code < 300:
            data = next(a.data for a in txn_actions if isinstance(a, Send))
            pending = Pending2xx(response, data, reliable=server.txn.reliable,
                                 timers=self.timers, now=now)
            entry = _Pending(pending, server, now + self.timers.timeout)
            self._pending_by_ack[pending.key] = entry
            self._pending_by_invite[server.txn.key] = entry
            self._touch(entry)
        return self._server_actions(server, txn_actions)

    def _reply(
        self, server: ServerHandle[F], status: int, now: float, *,
        headers: Iterable[tuple[str, str]] = (),
    ) -> list[CoreAction[F]]:
        return self.respond(server, self.make_response(server, status, headers=headers), now)

    def _server_actions(
        self, server: ServerHandle[F], txn_actions: list[TxnAction]
    ) -> list[CoreAction[F]]:
        actions: list[CoreAction[F]] = []
        for action in txn_actions:
            if isinstance(action, Send):
                actions.append(Transmit(action.data, server.target, server))
            elif isinstance(action, Timeout):
                logger.info("server transaction %s: timer %s", server.txn.key[0], action.timer)
        self._settle_server(server)
        return actions

    def _settle_server(self, server: ServerHandle[F]) -> None:
        if server.txn.terminated:
            if self._server.get(server.txn.key) is server:
                del self._server[server.txn.key]
            server.live = False
        self._touch(server)

    def _pending_actions(
        self, entry: _Pending[F], txn_actions: list[TxnAction], now: float
    ) -> list[CoreAction[F]]:
        actions: list[CoreAction[F]] = []
        for action in txn_actions:
            if isinstance(action, Send):
                actions.append(Transmit(action.data, entry.server.target))
            elif isinstance(action, Timeout):
                logger.warning("no ACK for 2xx to %s", entry.pending.key)
                actions.append(AckTimeout(entry.server))
        if entry.pending.done and now >= entry.forget_at:
            entry.live = False
            self._pending_by_invite.pop(entry.server.txn.key, None)
            if self._pending_by_ack.get(entry.pending.key) is entry:
                del self._pending_by_ack[entry.pending.key]
        self._touch(entry)
        return actions

    # -- sending requests --------------------------------------------------------------

    def send_request(
        self, request: Request, destination: Destination, now: float, *, sent_by: str
    ) -> tuple[ClientHandle, list[CoreAction[F]]]:
        """Send ``request`` in a new client transaction.

        Fills the top Via (``sent_by``: our host:port on that transport, a new
        branch, rport), Max-Forwards and User-Agent. An INVITE's destination
        is remembered for its ACK (``send_ack``).
        """
        branch = MAGIC_COOKIE + secrets.token_hex(8)
        via = f"SIP/2.0/{destination.transport.upper()} {sent_by};branch={branch};rport"
        _prepend_header(request, "Via", via)
        if request.headers.get("Max-Forwards") is None:
            request.headers.add("Max-Forwards", "70")
        if request.headers.get("User-Agent") is None:
            request.headers.add("User-Agent", self.user_agent)
        if request.method == "INVITE":
            self._invite_routes[(request.headers["Call-ID"], request.cseq.sequence)] = destination
        return self._start_client(request, destination, now)

    def cancel(
        self, invite: Request, destination: Destination, now: float
    ) -> tuple[ClientHandle, list[CoreAction[F]]]:
        """CANCEL an INVITE sent with ``send_request`` (9.1): same Via branch, Route, tags."""
        cancel = Request(method="CANCEL", uri=invite.uri)
        headers = cancel.headers
        headers.add("Via", invite.headers.getlist("Via")[0])
        for route in invite.headers.getlist("Route"):
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            headers.add(name, invite.headers[name])
        headers.add("CSeq", f"{invite.cseq.sequence} CANCEL")
        return self._start_client(cancel, destination, now)

    def _start_client(
        self, request: Request, destination: Destination, now: float
    ) -> tuple[ClientHandle, list[CoreAction[F]]]:
        txn: ClientTxn
        if request.method == "INVITE":
            txn = ClientInviteTransaction(request, reliable=destination.reliable,
                                          timers=self.timers)
        else:
            txn = ClientNonInviteTransaction(request, reliable=destination.reliable,
                                             timers=self.timers)
        handle = ClientHandle(txn, destination)
        self._client[txn.key] = handle
        return handle, self._client_actions(handle, txn.start(now))

    def abandon(self, client: ClientHandle) -> None:
        """The application no longer waits for ``client``: forget it and its timers."""
        if self._client.get(client.txn.key) is client:
            del self._client[client.txn.key]
        client.live = False
        self._forget_route(client)

    def invite_destination(self, response: Response) -> Destination | None:
        """Where the INVITE that ``response`` answers went (its ACK goes there too)."""
        return self._invite_routes.get((response.headers["Call-ID"], response.cseq.sequence))

    def send_ack(
        self, response: Response, dialog: Dialog, now: float, *, sent_by: str
    ) -> list[CoreAction[F]]:
        """ACK a 2xx we received for our INVITE (13.2.2.4); resent if the 2xx is."""
        call_id, cseq = response.headers["Call-ID"], response.cseq.sequence
        destination = self._invite_routes.pop((call_id, cseq), None)
        if destination is None:
            raise LocalProtocolError(f"no INVITE sent for {call_id} CSeq {cseq}")
        ack = dialog.create_ack(cseq)
        branch = MAGIC_COOKIE + secrets.token_hex(8)
        _prepend_header(
            ack, "Via",
            f"SIP/2.0/{destination.transport.upper()} {sent_by};branch={branch};rport",
        )
        data = serialize(ack)
        sent = _SentAck((call_id, cseq), data, destination, now + self.timers.timeout)
        old = self._sent_acks.get(sent.key)
        if old is not None:
            old.live = False
        self._sent_acks[sent.key] = sent
        self._touch(sent)
        return [Transmit(data, destination)]

    def _forget_ack(self, sent: _SentAck) -> None:
        sent.live = False
        if self._sent_acks.get(sent.key) is sent:
            del self._sent_acks[sent.key]

    def transport_error(
        self, origin: ServerHandle[F] | ClientHandle, now: float
    ) -> list[CoreAction[F]]:
        """Sending ``origin``'s message failed (17.1.4, 17.2.4)."""
        if isinstance(origin, ClientHandle):
            origin.txn.transport_error()
            self._forget_route(origin)
            self._settle_client(origin)
            return [ClientTransportError(origin)]
        origin.txn.transport_error()
        self._settle_server(origin)
        return []

    def _client_actions(
        self, client: ClientHandle, txn_actions: list[TxnAction]
    ) -> list[CoreAction[F]]:
        actions: list[CoreAction[F]] = []
        for action in txn_actions:
            if isinstance(action, Send):
                actions.append(Transmit(action.data, client.destination, client))
            elif isinstance(action, Deliver):
                if action.response.code >= 300:
                    self._forget_route(client)  # no ACK of ours will follow
                actions.append(ResponseReceived(client, action.response))
            elif isinstance(action, Timeout):
                self._forget_route(client)
                actions.append(ClientTimeout(client, action.timer))
        self._settle_client(client)
        return actions

    def _settle_client(self, client: ClientHandle) -> None:
        if client.txn.terminated:
            if self._client.get(client.txn.key) is client:
                del self._client[client.txn.key]
            client.live = False
        self._touch(client)

    def _forget_route(self, client: ClientHandle) -> None:
        if client.request.method == "INVITE":
            self._invite_routes.pop(
                (client.request.headers["Call-ID"], client.request.cseq.sequence), None
            )


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
