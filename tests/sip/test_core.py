"""The sans-IO SIP core in memory: bytes in, actions out, time passed by hand.

Server side (RFC 3261 8.2, 9.2, 13.3.1.4, 17.2), client side (17.1, 13.2.2.4),
the screen's stateless 403 and malformed input. The two-core exchanges are in
``test_core_pair.py``; the real-socket shell in ``test_sip_endpoint.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sipmessage import URI, Request
from tests.sip.core_support import (
    TCP_PEER,
    UDP_PEER,
    MemoryFlow,
    codes,
    raw_request,
    sent_requests,
    sent_responses,
    transmits,
)

import callvault.sip.core as core_module
from callvault.errors import LocalProtocolError
from callvault.sip.core import (
    AckTimeout,
    ClientTimeout,
    ClientTransportError,
    CoreAction,
    Destination,
    InviteCancelled,
    NewRequest,
    ResponseReceived,
    ServerHandle,
    SipCore,
)
from callvault.sip.dialog import Dialog
from callvault.sip.message import build_response, parse_message, serialize, tag_of
from callvault.sip.timers import Timers

T = Timers()  # T1 0.5 s, T2 4 s, T4 5 s: the RFC's defaults
NOW = 1000.0
Actions = list[CoreAction[MemoryFlow]]


def new_core(**kwargs: object) -> SipCore[MemoryFlow]:
    return SipCore(allow="INVITE, ACK, BYE", accept="application/sdp", timers=T,
                   user_agent="core-test", **kwargs)  # type: ignore[arg-type]


def run_until(core: SipCore[MemoryFlow], end: float) -> list[tuple[float, CoreAction[MemoryFlow]]]:
    """Fire every timer up to ``end``, each at its own time (as the shell does)."""
    fired: list[tuple[float, CoreAction[MemoryFlow]]] = []
    while (at := core.next_timer()) is not None and at <= end:
        fired += [(at, action) for action in core.on_timer(at)]
    return fired


def new_request(actions: Actions) -> ServerHandle[MemoryFlow]:
    [request] = [a for a in actions if isinstance(a, NewRequest)]
    assert request.server is not None
    return request.server


def invite_answered_200(core: SipCore[MemoryFlow], flow: MemoryFlow = UDP_PEER,
                        transport: str = "UDP") -> ServerHandle[MemoryFlow]:
    server = new_request(core.receive(raw_request("INVITE", transport=transport), flow, NOW))
    ok = core.respond(server, core.make_response(server, 200, body=b"v=0\r\n",
                                                 content_type="application/sdp"), NOW)
    assert codes(ok) == [200]
    return server


def ack_for(server: ServerHandle[MemoryFlow], branch: str = "z9hG4bKack1") -> bytes:
    return raw_request("ACK", branch=branch, to_tag=server.to_tag)


# -- server side --------------------------------------------------------------------------


def test_invite_gets_100_trying_then_goes_to_the_application() -> None:
    core = new_core()
    actions = core.receive(raw_request("INVITE"), UDP_PEER, NOW)
    assert codes(actions) == [100]
    trying = sent_responses(actions)[0]
    assert tag_of(trying.headers["To"]) is None  # a 100 carries no tag (8.2.6.1)
    assert trying.headers["Server"] == "core-test"
    # UDP responses go where the Via says, with the port the request came from (RFC 3581)
    assert transmits(actions)[0].target == Destination("udp", ("192.0.2.1", 5060))
    server = new_request(actions)
    assert server.request.method == "INVITE" and not server.answered
    assert isinstance(actions[-1], NewRequest)  # the 100 goes out before the app runs


def test_responses_over_a_stream_go_back_along_its_flow() -> None:
    core = new_core()
    actions = core.receive(raw_request("INVITE", transport="TCP"), TCP_PEER, NOW)
    assert transmits(actions)[0].target is TCP_PEER


def test_2xx_resent_with_t1_doubling_to_t2_until_the_ack_timeout() -> None:
    core = new_core()
    server = invite_answered_200(core)
    assert core.awaiting_ack == 1
    fired = run_until(core, NOW + 64 * T.t1)
    resends = [at - NOW for at, a in fired if not isinstance(a, AckTimeout)]
    # 13.3.1.4: T1, then doubling, capped at T2, for 64*T1
    assert resends == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(codes([a]) == [200] for at, a in fired if not isinstance(a, AckTimeout))
    timeouts = [(at - NOW, a) for at, a in fired if isinstance(a, AckTimeout)]
    assert timeouts == [(32.0, AckTimeout(server))]
    assert core.awaiting_ack == 0
    assert core.remembered == 0 and core.next_timer() is None


def test_over_a_stream_the_2xx_is_sent_once_but_the_ack_timeout_still_runs() -> None:
    core = new_core()
    server = invite_answered_200(core, TCP_PEER, transport="TCP")
    fired = run_until(core, NOW + 100)
    assert [(at - NOW, a) for at, a in fired] == [(32.0, AckTimeout(server))]


def test_ack_stops_the_2xx_and_copies_are_absorbed_for_64_t1() -> None:
    core = new_core()
    server = invite_answered_200(core)
    run_until(core, NOW + 0.5)  # one retransmission went out
    ack = core.receive(ack_for(server), UDP_PEER, NOW + 0.7)
    [delivered] = ack
    assert isinstance(delivered, NewRequest) and delivered.server is None
    assert delivered.request.method == "ACK"
    assert core.awaiting_ack == 0
    # a duplicate ACK and a late INVITE copy: absorbed (the ACK shows the 2xx arrived)
    assert core.receive(ack_for(server), UDP_PEER, NOW + 0.8) == []
    assert core.receive(raw_request("INVITE"), UDP_PEER, NOW + 0.9) == []
    # nothing is resent and no ACK timeout fires; all is forgotten at 64*T1
    assert run_until(core, NOW + 100) == []
    assert core.remembered == 0


def test_invite_copy_while_the_2xx_awaits_its_ack_gets_the_2xx_again() -> None:
    core = new_core()
    invite_answered_200(core)
    again = core.receive(raw_request("INVITE"), UDP_PEER, NOW + 0.2)
    assert codes(again) == [200] and not any(isinstance(a, NewRequest) for a in again)


def test_retransmitted_invite_before_the_answer_gets_the_last_provisional() -> None:
    core = new_core()
    first = core.receive(raw_request("INVITE"), UDP_PEER, NOW)
    server = new_request(first)
    core.respond(server, core.make_response(server, 180), NOW + 0.1)
    again = core.receive(raw_request("INVITE"), UDP_PEER, NOW + 0.5)
    assert codes(again) == [180]
    assert not any(isinstance(a, NewRequest) for a in again)


def test_error_answer_resent_by_timer_g_until_timer_h() -> None:
    core = new_core()
    server = new_request(core.receive(raw_request("INVITE"), UDP_PEER, NOW))
    core.respond(server, core.make_response(server, 486), NOW)
    fired = run_until(core, NOW + 100)
    assert [at - NOW for at, _ in fired] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5,
                                             31.5]
    assert all(codes([a]) == [486] for _, a in fired)
    assert core.transactions == 0 and core.next_timer() is None  # timer H ended it


def test_ack_for_an_error_answer_ends_it_after_timer_i() -> None:
    core = new_core()
    server = new_request(core.receive(raw_request("INVITE"), UDP_PEER, NOW))
    core.respond(server, core.make_response(server, 486), NOW)
    # the ACK for a non-2xx has the INVITE's branch (17.1.1.3): the transaction absorbs it
    assert core.receive(raw_request("ACK", to_tag=server.to_tag), UDP_PEER, NOW + 0.2) == []
    assert run_until(core, NOW + 100) == []
    assert core.next_timer() is None and core.transactions == 0


def test_a_second_final_answer_is_refused() -> None:
    core = new_core()
    server = invite_answered_200(core)
    with pytest.raises(LocalProtocolError):
        core.respond(server, core.make_response(server, 486), NOW)


def test_non_invite_answer_repeated_to_copies_until_timer_j() -> None:
    core = new_core()
    bye = raw_request("BYE", branch="z9hG4bKbye1", cseq=2, to_tag="uas1")
    server = new_request(core.receive(bye, UDP_PEER, NOW))
    assert codes(core.respond(server, core.make_response(server, 200), NOW)) == [200]
    again = core.receive(bye, UDP_PEER, NOW + 3)
    assert codes(again) == [200] and not any(isinstance(a, NewRequest) for a in again)
    assert run_until(core, NOW + 64 * T.t1 - 0.01) == []
    assert core.transactions == 1
    run_until(core, NOW + 64 * T.t1)  # timer J
    assert core.transactions == 0
    # after timer J a copy is a new request again
    assert any(isinstance(a, NewRequest) for a in core.receive(bye, UDP_PEER, NOW + 40))


def test_timer_j_is_zero_over_a_stream() -> None:
    core = new_core()
    bye = raw_request("BYE", transport="TCP", to_tag="uas1")
    server = new_request(core.receive(bye, TCP_PEER, NOW))
    core.respond(server, core.make_response(server, 200), NOW)
    run_until(core, NOW)
    assert core.transactions == 0


def test_options_answered_by_the_core_with_the_constructor_values() -> None:
    core = SipCore[MemoryFlow](allow="INVITE, ACK, BYE, CANCEL, OPTIONS, REFER",
                               accept="application/sdp", supported="timer, replaces")
    actions = core.receive(raw_request("OPTIONS"), UDP_PEER, NOW)
    [ok] = sent_responses(actions)
    assert ok.code == 200
    assert ok.headers["Allow"] == "INVITE, ACK, BYE, CANCEL, OPTIONS, REFER"
    assert ok.headers["Accept"] == "application/sdp"
    assert ok.headers["Supported"] == "timer, replaces"
    assert not any(isinstance(a, NewRequest) for a in actions)


def test_cancel_before_the_answer_200_then_487_with_the_invites_tag() -> None:
    core = new_core()
    server = new_request(core.receive(raw_request("INVITE"), UDP_PEER, NOW))
    ringing = core.respond(server, core.make_response(server, 180), NOW)
    actions = core.receive(raw_request("CANCEL", cseq_method="CANCEL"), UDP_PEER, NOW + 1)
    # the CANCEL's 200, then the application hears of it, then the INVITE's 487
    assert [type(a).__name__ for a in actions] == ["Transmit", "InviteCancelled", "Transmit"]
    assert actions[1] == InviteCancelled(server)
    cancel_ok, terminated = sent_responses(actions)
    assert (cancel_ok.code, cancel_ok.cseq.method) == (200, "CANCEL")
    assert (terminated.code, terminated.cseq.method) == (487, "INVITE")
    assert tag_of(terminated.headers["To"]) == tag_of(sent_responses(ringing)[0].headers["To"])
    assert server.answered
    with pytest.raises(LocalProtocolError):  # the application is too late
        core.respond(server, core.make_response(server, 200), NOW + 1)
    # the UAC ACKs the 487 in the INVITE transaction: absorbed there
    assert core.receive(raw_request("ACK", to_tag=server.to_tag), UDP_PEER, NOW + 1.1) == []


def test_cancel_after_a_2xx_is_answered_200_and_changes_nothing() -> None:
    core = new_core()
    invite_answered_200(core)
    actions = core.receive(raw_request("CANCEL", cseq_method="CANCEL"), UDP_PEER, NOW + 0.1)
    assert codes(actions) == [200]
    assert not any(isinstance(a, InviteCancelled) for a in actions)
    assert core.awaiting_ack == 1  # the 2xx still waits for its ACK


def test_cancel_after_an_error_answer_changes_nothing() -> None:
    core = new_core()
    server = new_request(core.receive(raw_request("INVITE"), UDP_PEER, NOW))
    core.respond(server, core.make_response(server, 486), NOW)
    actions = core.receive(raw_request("CANCEL", cseq_method="CANCEL"), UDP_PEER, NOW + 0.1)
    assert codes(actions) == [200]
    assert not any(isinstance(a, InviteCancelled) for a in actions)


def test_cancel_of_an_unknown_invite_is_481() -> None:
    core = new_core()
    actions = core.receive(raw_request("CANCEL", branch="z9hG4bKnothere"), UDP_PEER, NOW)
    assert codes(actions) == [481]


def test_a_screened_request_gets_one_stateless_403_and_leaves_no_state() -> None:
    seen: list[tuple[str, MemoryFlow]] = []

    def screen(request: Request, flow: MemoryFlow) -> bool:
        seen.append((request.method, flow))
        return False

    core = new_core(screen=screen)
    stranger = MemoryFlow("udp", ("203.0.113.9", 5999))
    for _ in range(2):  # a retransmission is refused again, the same way
        actions = core.receive(raw_request("INVITE"), stranger, NOW)
        assert codes(actions) == [403]  # no 100 Trying
        assert transmits(actions)[0].target is stranger  # back where it came from
        assert core.remembered == 0 and core.next_timer() is None
    assert core.receive(raw_request("ACK"), stranger, NOW) == []  # never answered
    assert [method for method, _ in seen] == ["INVITE", "INVITE", "ACK"]
    assert seen[0][1] is stranger


def test_malformed_request_is_answered_400_with_a_warning() -> None:
    core = new_core()
    broken = raw_request("INVITE").replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE")
    actions = core.receive(broken, UDP_PEER, NOW)
    [reply] = sent_responses(actions)
    assert reply.code == 400 and "does not match" in reply.phrase
    assert (reply.headers.get("Warning") or "").startswith("399 callvault")
    assert transmits(actions)[0].target is UDP_PEER
    assert core.remembered == 0


@pytest.mark.parametrize("data", [b"\x00\xffgarbage\r\n\r\n", b"\r\n\r\n", b"",
                                  b"SIP/2.0 200 OK\r\n\r\n"])
def test_unreadable_input_and_keepalives_are_dropped(data: bytes) -> None:
    core = new_core()
    assert core.receive(data, UDP_PEER, NOW) == []
    assert core.remembered == 0


def test_stray_response_is_dropped() -> None:
    core = new_core()
    request = parse_message(raw_request("OPTIONS"))
    assert isinstance(request, Request)
    stray = serialize(build_response(request, 200, to_tag="x"))
    assert core.receive(stray, UDP_PEER, NOW) == []


# -- client side --------------------------------------------------------------------------


def outgoing(method: str, cseq: int = 1) -> Request:
    request = Request(method=method, uri=URI.parse("sip:bob@192.0.2.1"))
    h = request.headers
    h.add("From", "<sip:alice@example.com>;tag=a1")
    h.add("To", "<sip:bob@example.com>")
    h.add("Call-ID", "out-call@example.com")
    h.add("CSeq", f"{cseq} {method}")
    h.add("Contact", "<sip:alice@192.0.2.10:5060>")
    return request


PEER = Destination("udp", ("192.0.2.1", 5060))


def answer(request_bytes: bytes, status: int, to_tag: str | None = "b1") -> bytes:
    request = parse_message(request_bytes)
    assert isinstance(request, Request)
    response = build_response(request, status, to_tag=to_tag,
                              headers=[("Contact", "<sip:bob@192.0.2.1>")])
    return serialize(response)


def test_request_gets_via_max_forwards_and_user_agent() -> None:
    core = new_core()
    _, actions = core.send_request(outgoing("OPTIONS"), PEER, NOW, sent_by="192.0.2.10:5060")
    [sent] = sent_requests(actions)
    via = sent.headers.getlist("Via")[0]
    assert via.startswith("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK") and via.endswith("rport")
    assert sent.headers["Max-Forwards"] == "70" and sent.headers["User-Agent"] == "core-test"
    assert transmits(actions)[0].target == PEER


def test_non_invite_resent_by_timer_e_then_timer_f() -> None:
    core = new_core()
    client, _ = core.send_request(outgoing("OPTIONS"), PEER, NOW, sent_by="192.0.2.10:5060")
    fired = run_until(core, NOW + 100)
    resends = [at - NOW for at, a in fired if not isinstance(a, ClientTimeout)]
    assert resends == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [(at - NOW, a) for at, a in fired if isinstance(a, ClientTimeout)] == [
        (32.0, ClientTimeout(client, "F"))
    ]
    assert core.remembered == 0


def test_invite_resent_by_timer_a_then_timer_b() -> None:
    core = new_core()
    client, _ = core.send_request(outgoing("INVITE"), PEER, NOW, sent_by="192.0.2.10:5060")
    fired = run_until(core, NOW + 100)
    resends = [at - NOW for at, a in fired if not isinstance(a, ClientTimeout)]
    assert resends == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # timer A doubles without a cap
    assert fired[-1] == (NOW + 32.0, ClientTimeout(client, "B"))
    assert core.remembered == 0  # its ACK route is forgotten too


def test_nothing_is_resent_over_a_stream() -> None:
    core = new_core()
    stream = Destination("tcp", ("192.0.2.1", 5060))
    client, _ = core.send_request(outgoing("INVITE"), stream, NOW, sent_by="192.0.2.10:5060")
    assert run_until(core, NOW + 100) == [(NOW + 32.0, ClientTimeout(client, "B"))]


def test_provisional_stops_timer_a_and_b() -> None:
    core = new_core()
    _, actions = core.send_request(outgoing("INVITE"), PEER, NOW, sent_by="h:5060")
    ringing = core.receive(answer(transmits(actions)[0].data, 180), UDP_PEER, NOW + 0.2)
    [received] = ringing
    assert isinstance(received, ResponseReceived) and received.response.code == 180
    assert run_until(core, NOW + 200) == []  # waits for the final answer as long as it takes


def test_final_answer_to_non_invite_then_timer_k() -> None:
    core = new_core()
    client, actions = core.send_request(outgoing("OPTIONS"), PEER, NOW, sent_by="h:5060")
    ok = answer(transmits(actions)[0].data, 200)
    [received] = core.receive(ok, UDP_PEER, NOW + 0.1)
    assert isinstance(received, ResponseReceived) and received.client is client
    assert received.response.code == 200
    assert core.receive(ok, UDP_PEER, NOW + 0.2) == []  # a copy: absorbed
    assert core.transactions == 1
    run_until(core, NOW + 0.1 + T.t4)  # timer K
    assert core.transactions == 0


def test_error_answer_to_invite_is_acked_by_the_transaction() -> None:
    core = new_core()
    _, actions = core.send_request(outgoing("INVITE"), PEER, NOW, sent_by="h:5060")
    busy = answer(transmits(actions)[0].data, 486)
    got = core.receive(busy, UDP_PEER, NOW + 0.1)
    [ack] = sent_requests(got)
    [invite] = sent_requests(actions)
    assert ack.method == "ACK"
    assert ack.headers.getlist("Via")[0] == invite.headers.getlist("Via")[0]  # 17.1.1.3
    assert [type(a).__name__ for a in got] == ["Transmit", "ResponseReceived"]
    assert sent_requests(core.receive(busy, UDP_PEER, NOW + 0.3))[0].method == "ACK"  # again
    run_until(core, NOW + 100)  # timer D
    assert core.remembered == 0  # no ACK of ours will follow: its route is gone


def test_our_ack_for_a_2xx_is_resent_with_the_2xx_for_64_t1() -> None:
    core = new_core()
    invite = outgoing("INVITE")
    _, actions = core.send_request(invite, PEER, NOW, sent_by="192.0.2.10:5060")
    ok_bytes = answer(transmits(actions)[0].data, 200)
    [received] = core.receive(ok_bytes, UDP_PEER, NOW + 0.1)
    assert isinstance(received, ResponseReceived)
    assert core.invite_destination(received.response) == PEER
    dialog = Dialog.from_outgoing_invite(invite, received.response)
    sent = core.send_ack(received.response, dialog, NOW + 0.1, sent_by="192.0.2.10:5060")
    [ack] = sent_requests(sent)
    assert ack.method == "ACK" and ack.cseq.sequence == 1
    assert transmits(sent)[0].target == PEER
    with pytest.raises(LocalProtocolError):  # one ACK per INVITE
        core.send_ack(received.response, dialog, NOW + 0.1, sent_by="192.0.2.10:5060")
    # the UAS did not get it and resends the 2xx: the same ACK goes again
    again = core.receive(ok_bytes, UDP_PEER, NOW + 0.6)
    assert [a.data for a in transmits(again)] == [transmits(sent)[0].data]
    run_until(core, NOW + 0.1 + 64 * T.t1)
    assert core.remembered == 0
    assert core.receive(ok_bytes, UDP_PEER, NOW + 40) == []  # forgotten


def test_cancel_uses_the_invites_branch() -> None:
    core = new_core()
    invite = outgoing("INVITE")
    core.send_request(invite, PEER, NOW, sent_by="h:5060")
    _, cancel_actions = core.cancel(invite, PEER, NOW + 1)
    [cancel] = sent_requests(cancel_actions)
    assert cancel.method == "CANCEL" and cancel.cseq.method == "CANCEL"
    assert cancel.headers.getlist("Via")[0] == invite.headers.getlist("Via")[0]


def test_transport_error_ends_the_client_transaction() -> None:
    core = new_core()
    stream = Destination("tcp", ("192.0.2.1", 5060))
    client, actions = core.send_request(outgoing("INVITE"), stream, NOW, sent_by="h:5060")
    assert transmits(actions)[0].origin is client
    assert core.transport_error(client, NOW) == [ClientTransportError(client)]
    assert core.remembered == 0 and core.next_timer() is None


def test_abandoned_request_is_forgotten() -> None:
    core = new_core()
    client, _ = core.send_request(outgoing("OPTIONS"), PEER, NOW, sent_by="h:5060")
    core.abandon(client)
    assert core.remembered == 0 and run_until(core, NOW + 100) == []


def test_the_core_does_no_io_and_reads_no_clock() -> None:
    tree = ast.parse(Path(core_module.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert not imported & {"asyncio", "socket", "ssl", "time", "selectors", "uvloop"}
