"""Two SIP cores back to back over an in-memory network with a fake clock (as h11 tests do).

A UAC core and a UAS core exchange bytes through ``Network``, which can drop,
duplicate and delay (reorder) datagrams. Every timer is the cores' own: the
driver jumps the clock to the next packet or ``next_timer()``, so the RFC's
32-second timeouts take no wall time.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from sipmessage import URI, Request, Response
from tests.sip.core_support import MemoryFlow

from callvault.sip.core import (
    AckTimeout,
    ClientHandle,
    ClientTimeout,
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

HostPort = tuple[str, int]
UAC_ADDR: HostPort = ("192.0.2.1", 5060)
UAS_ADDR: HostPort = ("192.0.2.2", 5060)
LATENCY = 0.01

# decides, per datagram, from its first line and its sender: True drops / duplicates it
Rule = Callable[[bytes, HostPort], bool]


def first_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].decode()


def nth(match: str, sender: HostPort, *which: int) -> Rule:
    """The ``which``-th (1-based) datagrams from ``sender`` whose first line contains ``match``."""
    seen = itertools.count(1)

    def rule(data: bytes, source: HostPort) -> bool:
        return source == sender and match in first_line(data) and next(seen) in which

    return rule


@dataclass
class Node:
    """One user agent: its core and what its application saw."""

    addr: HostPort
    core: SipCore[MemoryFlow]
    requests: list[Request] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    events: list[CoreAction[MemoryFlow]] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)


class Network:
    """Datagrams between nodes, with loss, duplication and extra delay."""

    def __init__(self, *, seed: int = 1) -> None:
        self.now = 1000.0
        self.nodes: dict[HostPort, Node] = {}
        self.drop: list[Rule] = []
        self.duplicate: list[Rule] = []
        self.jitter = 0.0  # up to this much extra delay per datagram: reorders them
        self._random = random.Random(seed)
        self._queue: list[tuple[float, int, HostPort, HostPort, bytes]] = []
        self._order = itertools.count()
        self.on_action: Callable[[Node, CoreAction[MemoryFlow]], None] = lambda n, a: None

    def node(self, addr: HostPort, timers: Timers | None = None) -> Node:
        core: SipCore[MemoryFlow] = SipCore(
            allow="INVITE, ACK, BYE, CANCEL, OPTIONS", accept="application/sdp",
            timers=timers or Timers(), user_agent=f"ua-{addr[0]}",
        )
        self.nodes[addr] = node = Node(addr, core)
        return node

    def perform(self, node: Node, actions: list[CoreAction[MemoryFlow]]) -> None:
        for action in actions:
            if isinstance(action, Transmit):
                node.sent.append(action.data)
                self._send(node.addr, action.target.remote, action.data)
            else:
                node.events.append(action)
                self.on_action(node, action)

    def _send(self, source: HostPort, to: HostPort, data: bytes) -> None:
        if any(rule(data, source) for rule in self.drop):
            return
        copies = 2 if any(rule(data, source) for rule in self.duplicate) else 1
        for _ in range(copies):
            at = self.now + LATENCY + self._random.uniform(0, self.jitter)
            heapq.heappush(self._queue, (at, next(self._order), source, to, data))

    def run(self, until: float) -> None:
        """Deliver datagrams and fire timers in time order up to ``until``."""
        while True:
            candidates = [(self._queue[0][0], 0)] if self._queue else []
            for node in self.nodes.values():
                at = node.core.next_timer()
                if at is not None:
                    candidates.append((at, 1))
            if not candidates or min(candidates)[0] > until:
                self.now = max(self.now, until)
                return
            at, kind = min(candidates)
            self.now = max(self.now, at)
            if kind == 0:
                _, _, source, to, data = heapq.heappop(self._queue)
                node = self.nodes[to]
                self.perform(node, node.core.receive(data, MemoryFlow("udp", source, to),
                                                     self.now))
            else:
                for node in self.nodes.values():
                    self.perform(node, node.core.on_timer(self.now))

    def settle(self) -> None:
        """Run until everything is forgotten (every timer has run out)."""
        self.run(self.now + 200)


class Call:
    """The two applications: the UAC calls, ACKs the 2xx and hangs up; the UAS answers."""

    def __init__(self, net: Network, *, answer: bool = True, hang_up: bool = True) -> None:
        self.net = net
        self.uac = net.node(UAC_ADDR)
        self.uas = net.node(UAS_ADDR)
        self.answer = answer
        self.hang_up = hang_up
        self.invite = self._request("INVITE", 1)
        self.dialog: Dialog | None = None
        self.bye_response: Response | None = None
        self.invite_client: ClientHandle | None = None
        self.invite_server: ServerHandle[MemoryFlow] | None = None
        net.on_action = self._on_action

    def _request(self, method: str, cseq: int) -> Request:
        request = Request(method=method, uri=URI.parse("sip:bob@192.0.2.2"))
        h = request.headers
        h.add("From", "<sip:alice@example.com>;tag=alice1")
        h.add("To", "<sip:bob@example.com>")
        h.add("Call-ID", "pair-call@example.com")
        h.add("CSeq", f"{cseq} {method}")
        h.add("Contact", "<sip:alice@192.0.2.1:5060>")
        return request

    def start(self) -> None:
        self.invite_client, actions = self.uac.core.send_request(
            self.invite, Destination("udp", UAS_ADDR), self.net.now, sent_by="192.0.2.1:5060",
        )
        self.net.perform(self.uac, actions)

    def cancel(self) -> None:
        _, actions = self.uac.core.cancel(self.invite, Destination("udp", UAS_ADDR),
                                          self.net.now)
        self.net.perform(self.uac, actions)

    def _on_action(self, node: Node, action: CoreAction[MemoryFlow]) -> None:
        now = self.net.now
        if isinstance(action, NewRequest):
            node.requests.append(action.request)
            server = action.server
            if server is None:
                return  # the ACK
            if action.request.method == "INVITE":
                self.invite_server = server
                core = node.core
                self.net.perform(node, core.respond(server, core.make_response(server, 180), now))
                if self.answer:
                    ok = core.make_response(server, 200, headers=[
                        ("Contact", "<sip:bob@192.0.2.2:5060>")], body=b"v=0\r\n",
                        content_type="application/sdp")
                    self.net.perform(node, core.respond(server, ok, now))
            else:
                self.net.perform(node, node.core.respond(
                    server, node.core.make_response(server, 200), now))
        elif isinstance(action, ResponseReceived):
            node.responses.append(action.response)
            response = action.response
            if response.cseq.method == "BYE":
                self.bye_response = response
            elif response.cseq.method == "INVITE" and 200 <= response.code < 300:
                self.dialog = Dialog.from_outgoing_invite(self.invite, response)
                self.net.perform(node, node.core.send_ack(
                    response, self.dialog, now, sent_by="192.0.2.1:5060"))
                if self.hang_up:
                    bye = self.dialog.create_request("BYE")
                    _, actions = node.core.send_request(
                        bye, Destination("udp", UAS_ADDR), now, sent_by="192.0.2.1:5060")
                    self.net.perform(node, actions)

    def methods(self, node: Node) -> list[str]:
        return [r.method for r in node.requests]

    def codes(self, node: Node, method: str = "INVITE") -> list[int]:
        return [r.code for r in node.responses if r.cseq.method == method]

    def sent(self, node: Node, start: str) -> int:
        return sum(first_line(data).startswith(start) for data in node.sent)


def completed(call: Call, *, in_order: bool = True) -> None:
    if in_order:
        assert call.methods(call.uas) == ["INVITE", "ACK", "BYE"]
        assert call.codes(call.uac) == [100, 180, 200]
    else:  # the BYE may overtake the ACK, a late 1xx after the 2xx is stray
        assert sorted(call.methods(call.uas)) == ["ACK", "BYE", "INVITE"]
        assert call.codes(call.uac).count(200) == 1
    assert call.bye_response is not None and call.bye_response.code == 200
    assert not any(isinstance(e, (AckTimeout, ClientTimeout)) for n in (call.uac, call.uas)
                   for e in n.events)
    call.net.settle()
    assert call.uac.core.remembered == 0 and call.uas.core.remembered == 0


def test_invite_100_180_200_ack_bye() -> None:
    call = Call(Network())
    call.start()
    call.net.run(call.net.now + 1)
    completed(call)
    assert call.sent(call.uas, "SIP/2.0 200") == 2  # the INVITE's and the BYE's: no resend
    assert call.sent(call.uac, "ACK") == 1


def test_lost_2xx_is_resent_until_the_ack() -> None:
    net = Network()
    net.drop.append(nth("200 OK", UAS_ADDR, 1))
    call = Call(net)
    call.start()
    net.run(net.now + 0.4)
    assert call.dialog is None  # not yet
    net.run(net.now + 1)  # the 2xx comes again at T1
    completed(call)
    assert call.sent(call.uas, "SIP/2.0 200") == 3  # INVITE's twice, BYE's once


def test_lost_ack_the_2xx_comes_again_and_so_does_our_ack() -> None:
    net = Network()
    net.drop.append(nth("ACK", UAC_ADDR, 1))
    call = Call(net, hang_up=False)
    call.start()
    net.run(net.now + 2)
    assert call.methods(call.uas) == ["INVITE", "ACK"]  # the app sees one ACK
    assert call.sent(call.uac, "ACK") == 2  # resent by the UAC core, not the application
    assert call.uas.core.awaiting_ack == 0
    net.settle()
    assert call.uac.core.remembered == 0 and call.uas.core.remembered == 0


def test_lost_invite_is_resent_by_timer_a() -> None:
    net = Network()
    net.drop.append(nth("INVITE sip:", UAC_ADDR, 1, 2))
    call = Call(net)
    call.start()
    net.run(net.now + 1)  # T1, then 2*T1: the third copy arrives at 1.5 s
    assert call.methods(call.uas) == []
    net.run(net.now + 1)
    completed(call)
    assert call.sent(call.uac, "INVITE sip:") == 3


def test_lost_bye_is_resent_by_timer_e() -> None:
    net = Network()
    net.drop.append(nth("BYE", UAC_ADDR, 1))
    call = Call(net)
    call.start()
    net.run(net.now + 1)
    completed(call)
    assert call.sent(call.uac, "BYE") == 2


def test_duplicated_and_reordered_datagrams_change_nothing() -> None:
    for seed in range(20):
        net = Network(seed=seed)
        net.duplicate.append(lambda data, source: True)
        net.jitter = 0.2  # datagrams overtake each other
        call = Call(net)
        call.start()
        net.run(net.now + 5)
        completed(call, in_order=False)


def test_total_loss_ends_in_timer_b() -> None:
    net = Network()
    net.drop.append(lambda data, source: True)
    call = Call(net)
    call.start()
    net.run(net.now + 31.9)
    assert not call.uac.events
    net.run(net.now + 1)
    assert call.uac.events == [ClientTimeout(call.invite_client, "B")]  # type: ignore[arg-type]
    net.settle()
    assert call.uac.core.remembered == 0
    assert call.methods(call.uas) == []


def test_cancel_while_ringing_200_then_487_and_its_ack() -> None:
    net = Network()
    call = Call(net, answer=False)
    call.start()
    net.run(net.now + 0.5)
    assert call.codes(call.uac) == [100, 180]
    call.cancel()
    net.run(net.now + 1)
    assert call.codes(call.uac, "CANCEL") == [200]
    assert call.codes(call.uac) == [100, 180, 487]
    assert call.invite_server is not None
    assert InviteCancelled(call.invite_server) in call.uas.events
    assert call.methods(call.uas) == ["INVITE"]  # CANCEL and ACK for the 487: the cores'
    assert call.sent(call.uas, "SIP/2.0 487") == 1  # the ACK arrived: no timer G resend
    net.settle()
    assert call.uac.core.remembered == 0 and call.uas.core.remembered == 0


def test_cancel_racing_the_200_leaves_the_call_up() -> None:
    net = Network()
    call = Call(net, hang_up=False)
    call.start()
    net.run(net.now + 0.005)  # the INVITE is on its way; the UAS answers 200 on arrival
    call.cancel()
    net.run(net.now + 1)
    assert call.codes(call.uac, "CANCEL") == [200]  # 9.2: it matched, but changes nothing
    assert call.codes(call.uac) == [100, 180, 200]
    assert call.methods(call.uas) == ["INVITE", "ACK"]
    assert not any(isinstance(e, InviteCancelled) for e in call.uas.events)
