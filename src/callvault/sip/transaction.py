"""SIP transactions as sans-IO state machines (RFC 3261 section 17).

Four machines: client INVITE (17.1.1), client non-INVITE (17.1.2), server
INVITE (17.2.1) and server non-INVITE (17.2.2). Every state change is looked
up in a transition table (``TRANSITIONS[kind][state][event]``) and applied by
``Transaction._set_state``, which logs it; a move missing from the table is a
``LocalProtocolError`` when we caused it, and is ignored (logged) when the
peer did. Methods take ``now`` and return actions (bytes to send, responses to
deliver, timeouts) instead of doing I/O. Matching rules are 17.1.3 / 17.2.3,
with the RFC 2543 fallback for requests whose branch lacks the magic cookie.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import ClassVar

from sipmessage import Request, Response

from callvault.errors import LocalProtocolError
from callvault.sip.message import Message, serialize, tag_of, top_via
from callvault.sip.timers import Timers

__all__ = [
    "MAGIC_COOKIE",
    "TRANSITIONS",
    "Action",
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "Deliver",
    "Event",
    "Send",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "State",
    "Timeout",
    "Transaction",
    "TransactionKey",
    "cancel_target_key",
    "client_key",
    "make_ack_for_error",
    "server_key",
]

logger = logging.getLogger(__name__)

MAGIC_COOKIE = "z9hG4bK"
TransactionKey = tuple[str, ...]


class State(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class Event(enum.Enum):
    REQUEST = "request received"
    ACK = "ACK received"
    SEND_1XX = "send 1xx"
    SEND_2XX = "send 2xx"
    SEND_ERROR = "send 300-699"
    RECV_1XX = "1xx received"
    RECV_2XX = "2xx received"
    RECV_ERROR = "300-699 received"
    TRANSPORT_ERROR = "transport error"
    TIMER_A = "timer A"
    TIMER_B = "timer B"
    TIMER_D = "timer D"
    TIMER_E = "timer E"
    TIMER_F = "timer F"
    TIMER_G = "timer G"
    TIMER_H = "timer H"
    TIMER_I = "timer I"
    TIMER_J = "timer J"
    TIMER_K = "timer K"


S, E = State, Event
Table = dict[State, dict[Event, State]]

TRANSITIONS: dict[str, Table] = {
    "client-invite": {  # figure 5
        S.CALLING: {
            E.TIMER_A: S.CALLING, E.TIMER_B: S.TERMINATED, E.RECV_1XX: S.PROCEEDING,
            E.RECV_2XX: S.TERMINATED, E.RECV_ERROR: S.COMPLETED,
            E.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.PROCEEDING: {
            E.RECV_1XX: S.PROCEEDING, E.RECV_2XX: S.TERMINATED, E.RECV_ERROR: S.COMPLETED,
            E.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.COMPLETED: {
            E.RECV_ERROR: S.COMPLETED, E.TIMER_D: S.TERMINATED, E.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.TERMINATED: {},
    },
    "client-non-invite": {  # figure 6
        S.TRYING: {
            E.TIMER_E: S.TRYING, E.TIMER_F: S.TERMINATED, E.RECV_1XX: S.PROCEEDING,
            E.RECV_2XX: S.COMPLETED, E.RECV_ERROR: S.COMPLETED, E.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.PROCEEDING: {
            E.TIMER_E: S.PROCEEDING, E.TIMER_F: S.TERMINATED, E.RECV_1XX: S.PROCEEDING,
            E.RECV_2XX: S.COMPLETED, E.RECV_ERROR: S.COMPLETED, E.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.COMPLETED: {E.RECV_2XX: S.COMPLETED, E.RECV_ERROR: S.COMPLETED, E.TIMER_K: S.TERMINATED},
        S.TERMINATED: {},
    },
    "server-invite": {  # figure 7
        S.PROCEEDING: {
            E.REQUEST: S.PROCEEDING, E.SEND_1XX: S.PROCEEDING, E.SEND_2XX: S.TERMINATED,
            E.SEND_ERROR: S.COMPLETED, E.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.COMPLETED: {
            E.REQUEST: S.COMPLETED, E.TIMER_G: S.COMPLETED, E.ACK: S.CONFIRMED,
            E.TIMER_H: S.TERMINATED, E.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.CONFIRMED: {E.REQUEST: S.CONFIRMED, E.ACK: S.CONFIRMED, E.TIMER_I: S.TERMINATED},
        S.TERMINATED: {},
    },
    "server-non-invite": {  # figure 8
        S.TRYING: {
            E.REQUEST: S.TRYING, E.SEND_1XX: S.PROCEEDING, E.SEND_2XX: S.COMPLETED,
            E.SEND_ERROR: S.COMPLETED, E.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.PROCEEDING: {
            E.REQUEST: S.PROCEEDING, E.SEND_1XX: S.PROCEEDING, E.SEND_2XX: S.COMPLETED,
            E.SEND_ERROR: S.COMPLETED, E.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.COMPLETED: {
            E.REQUEST: S.COMPLETED, E.TIMER_J: S.TERMINATED, E.TRANSPORT_ERROR: S.TERMINATED,
        },
        S.TERMINATED: {},
    },
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Send:
    """Bytes to send to the transaction's peer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Deliver:
    """A response for the transaction user (client transactions only)."""

    response: Response


@dataclass(frozen=True, slots=True)
class Timeout:
    """The named timer expired without the awaited message (B, F, H, or "ack")."""

    timer: str


Action = Send | Deliver | Timeout


def _sent_by(msg: Message) -> tuple[str, str | None]:
    via = top_via(msg)
    return f"{via.host.lower()}:{via.port or 5060}", via.parameters.get("branch")


def server_key(request: Request, method: str | None = None) -> TransactionKey:
    """Key of the server transaction a request belongs to (17.2.3)."""
    if method is None:
        method = "INVITE" if request.method == "ACK" else request.method
    sent_by, branch = _sent_by(request)
    if branch and branch.startswith(MAGIC_COOKIE):
        return (branch, sent_by, method)
    # RFC 2543 peers: no usable branch. The To tag is left out so that the
    # ACK (which carries our tag) matches the INVITE.
    return (
        "rfc2543",
        str(request.uri),
        tag_of(request.headers.get("From")) or "",
        request.headers["Call-ID"],
        request.cseq.sequence.__str__(),
        request.headers.getlist("Via")[0],
        method,
    )


def cancel_target_key(cancel: Request) -> TransactionKey:
    """Key of the INVITE server transaction a CANCEL refers to (9.2)."""
    return server_key(cancel, method="INVITE")


def client_key(message: Message) -> TransactionKey:
    """Key of the client transaction a response (or our request) belongs to (17.1.3)."""
    _, branch = _sent_by(message)
    return (branch or "", message.cseq.method)


def make_ack_for_error(request: Request, response: Response) -> Request:
    """The ACK a client INVITE transaction sends for a 300-699 (17.1.1.3)."""
    ack = Request(method="ACK", uri=request.uri)
    headers = ack.headers
    headers.add("Via", request.headers.getlist("Via")[0])
    for route in request.headers.getlist("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    headers.add("From", request.headers["From"])
    headers.add("To", response.headers["To"])
    headers.add("Call-ID", request.headers["Call-ID"])
    headers.add("CSeq", f"{request.cseq.sequence} ACK")
    return ack


class Transaction:
    """Common machinery: the state table lookup and the named timers."""

    KIND: ClassVar[str]

    def __init__(self, key: TransactionKey, state: State, *, reliable: bool, timers: Timers):
        self.key = key
        self.state = state
        self.reliable = reliable
        self.timers = timers
        self._deadlines: dict[Event, float] = {}

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def next_timer(self) -> float | None:
        """When ``on_timer`` must next be called, or None."""
        return min(self._deadlines.values(), default=None)

    def on_timer(self, now: float) -> list[Action]:
        """Fire every timer due at ``now``, earliest first."""
        actions: list[Action] = []
        while self._deadlines:
            event, at = min(self._deadlines.items(), key=lambda item: item[1])
            if at > now:
                break
            del self._deadlines[event]
            self._set_state(event)
            actions += self._timer_fired(event, at)
        return actions

    def transport_error(self) -> list[Action]:
        """The transport could not deliver a message (17.1.4, 17.2.4)."""
        if self._accepts(Event.TRANSPORT_ERROR):
            self._set_state(Event.TRANSPORT_ERROR)
        return []

    def _accepts(self, event: Event) -> bool:
        return event in TRANSITIONS[self.KIND][self.state]

    def _set_state(self, event: Event) -> State:
        """Apply the table's move for ``event``; return the previous state."""
        new = TRANSITIONS[self.KIND][self.state].get(event)
        if new is None:
            raise LocalProtocolError(
                f"{self.KIND} transaction: {event.value} not allowed in {self.state.value}"
            )
        old, self.state = self.state, new
        if new is not old and logger.isEnabledFor(logging.DEBUG):  # enum .value costs
            logger.debug("%s %s: %s -> %s on %s", self.KIND, self.key[0], old.value,
                         new.value, event.value)
        if new is State.TERMINATED:
            self._deadlines.clear()
        return old

    def _arm(self, timer: Event, at: float) -> None:
        self._deadlines[timer] = at

    def _disarm(self, *timers: Event) -> None:
        for timer in timers:
            self._deadlines.pop(timer, None)

    def _timer_fired(self, timer: Event, at: float) -> list[Action]:
        raise NotImplementedError


def _response_event(code: int, *, sending: bool) -> Event:
    if code < 200:
        return Event.SEND_1XX if sending else Event.RECV_1XX
    if code < 300:
        return Event.SEND_2XX if sending else Event.RECV_2XX
    return Event.SEND_ERROR if sending else Event.RECV_ERROR


class _ServerTransaction(Transaction):
    def __init__(self, request: Request, state: State, *, reliable: bool, timers: Timers):
        super().__init__(server_key(request), state, reliable=reliable, timers=timers)
        self.request = request
        self.last_response: Response | None = None
        self._last_bytes: bytes | None = None

    def _record(self, response: Response) -> bytes:
        self.last_response = response
        self._last_bytes = serialize(response)
        return self._last_bytes

    def _resend_last(self) -> list[Action]:
        return [Send(self._last_bytes)] if self._last_bytes is not None else []


class ServerInviteTransaction(_ServerTransaction):
    """17.2.1. A 2xx ends the transaction; the UAS core retransmits it (``Pending2xx``)."""

    KIND = "server-invite"

    def __init__(self, request: Request, *, reliable: bool, timers: Timers | None = None):
        super().__init__(request, State.PROCEEDING, reliable=reliable, timers=timers or Timers())
        self._timer_g_interval = self.timers.t1

    def receive_request(self, request: Request, now: float) -> list[Action]:
        """A retransmitted INVITE or an ACK matched this transaction."""
        event = Event.ACK if request.method == "ACK" else Event.REQUEST
        if not self._accepts(event):
            logger.debug("server-invite %s: ignoring %s in %s", self.key[0], event.value,
                         self.state.value)
            return []
        old = self._set_state(event)
        if event is Event.REQUEST:
            return [] if self.state is State.CONFIRMED else self._resend_last()
        if old is State.COMPLETED:
            self._disarm(Event.TIMER_G, Event.TIMER_H)
            self._arm(Event.TIMER_I, now + (0 if self.reliable else self.timers.t4))
        return []

    def send_response(self, response: Response, now: float) -> list[Action]:
        event = _response_event(response.code, sending=True)
        self._set_state(event)
        data = self._record(response)
        if event is Event.SEND_ERROR:
            if not self.reliable:
                self._arm(Event.TIMER_G, now + self._timer_g_interval)
            self._arm(Event.TIMER_H, now + self.timers.timeout)
        return [Send(data)]

    def _timer_fired(self, timer: Event, at: float) -> list[Action]:
        if timer is Event.TIMER_G:
            self._timer_g_interval = min(2 * self._timer_g_interval, self.timers.t2)
            self._arm(Event.TIMER_G, at + self._timer_g_interval)
            return self._resend_last()
        if timer is Event.TIMER_H:
            return [Timeout("H")]
        return []


class ServerNonInviteTransaction(_ServerTransaction):
    """17.2.2."""

    KIND = "server-non-invite"

    def __init__(self, request: Request, *, reliable: bool, timers: Timers | None = None):
        super().__init__(request, State.TRYING, reliable=reliable, timers=timers or Timers())

    def receive_request(self, request: Request, now: float) -> list[Action]:
        """A retransmission of the request: repeat the last response, if any."""
        if not self._accepts(Event.REQUEST):
            return []
        self._set_state(Event.REQUEST)
        return self._resend_last()

    def send_response(self, response: Response, now: float) -> list[Action]:
        event = _response_event(response.code, sending=True)
        self._set_state(event)
        data = self._record(response)
        if self.state is State.COMPLETED:
            self._arm(Event.TIMER_J, now + (0 if self.reliable else self.timers.timeout))
        return [Send(data)]

    def _timer_fired(self, timer: Event, at: float) -> list[Action]:
        return []


class _ClientTransaction(Transaction):
    def __init__(self, request: Request, state: State, *, reliable: bool, timers: Timers):
        super().__init__(client_key(request), state, reliable=reliable, timers=timers)
        self.request = request
        self._request_bytes = serialize(request)
        self._interval = self.timers.t1
        self._started = False

    def _begin(self) -> None:
        if self._started:
            raise LocalProtocolError("client transaction already started")
        self._started = True


class ClientInviteTransaction(_ClientTransaction):
    """17.1.1. Generates the ACK for 300-699 itself; a 2xx ends it (the TU ACKs)."""

    KIND = "client-invite"

    def __init__(self, request: Request, *, reliable: bool, timers: Timers | None = None):
        super().__init__(request, State.CALLING, reliable=reliable, timers=timers or Timers())
        self._ack: bytes | None = None

    def start(self, now: float) -> list[Action]:
        """Send the INVITE and arm timers A (unreliable only) and B."""
        self._begin()
        if not self.reliable:
            self._arm(Event.TIMER_A, now + self._interval)
        self._arm(Event.TIMER_B, now + self.timers.timeout)
        return [Send(self._request_bytes)]

    def receive_response(self, response: Response, now: float) -> list[Action]:
        event = _response_event(response.code, sending=False)
        if not self._accepts(event):
            return []
        old = self._set_state(event)
        if event is Event.RECV_1XX:
            self._disarm(Event.TIMER_A, Event.TIMER_B)
            return [Deliver(response)]
        if event is Event.RECV_2XX:
            return [Deliver(response)]
        if old is State.COMPLETED:  # retransmitted final response: repeat the ACK
            return [Send(self._ack)] if self._ack is not None else []
        self._ack = serialize(make_ack_for_error(self.request, response))
        self._disarm(Event.TIMER_A, Event.TIMER_B)
        self._arm(Event.TIMER_D, now + (0 if self.reliable else self.timers.timer_d))
        return [Send(self._ack), Deliver(response)]

    def _timer_fired(self, timer: Event, at: float) -> list[Action]:
        if timer is Event.TIMER_A:
            self._interval *= 2
            self._arm(Event.TIMER_A, at + self._interval)
            return [Send(self._request_bytes)]
        if timer is Event.TIMER_B:
            return [Timeout("B")]
        return []


class ClientNonInviteTransaction(_ClientTransaction):
    """17.1.2."""

    KIND = "client-non-invite"

    def __init__(self, request: Request, *, reliable: bool, timers: Timers | None = None):
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError(f"{request.method} cannot use a non-INVITE transaction")
        super().__init__(request, State.TRYING, reliable=reliable, timers=timers or Timers())

    def start(self, now: float) -> list[Action]:
        """Send the request and arm timers E (unreliable only) and F."""
        self._begin()
        if not self.reliable:
            self._arm(Event.TIMER_E, now + self._interval)
        self._arm(Event.TIMER_F, now + self.timers.timeout)
        return [Send(self._request_bytes)]

    def receive_response(self, response: Response, now: float) -> list[Action]:
        event = _response_event(response.code, sending=False)
        if not self._accepts(event):
            return []
        old = self._set_state(event)
        if old is State.COMPLETED:  # retransmitted final: absorbed
            return []
        if self.state is State.COMPLETED:
            self._disarm(Event.TIMER_E, Event.TIMER_F)
            self._arm(Event.TIMER_K, now + (0 if self.reliable else self.timers.t4))
        return [Deliver(response)]

    def _timer_fired(self, timer: Event, at: float) -> list[Action]:
        if timer is Event.TIMER_E:
            if self.state is State.TRYING:
                self._interval = min(2 * self._interval, self.timers.t2)
            else:
                self._interval = self.timers.t2
            self._arm(Event.TIMER_E, at + self._interval)
            return [Send(self._request_bytes)]
        if timer is Event.TIMER_F:
            return [Timeout("F")]
        return []
