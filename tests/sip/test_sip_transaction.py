"""Pure transaction tests: time is driven by hand (RFC 3261 section 17)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sipmessage import Request, Response

from callvault.errors import LocalProtocolError
from callvault.sip.invite_2xx import Pending2xx, Pending2xxState
from callvault.sip.message import build_response, parse_message, serialize
from callvault.sip.timers import Timers
from callvault.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Deliver,
    Send,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    State,
    Timeout,
    cancel_target_key,
    client_key,
    server_key,
)

T = Timers()


def make_request(method: str, branch: str = "z9hG4bKabc", cseq_method: str | None = None,
                 via_host: str = "192.0.2.1:5060") -> Request:
    data = (
        f"{method} sip:rs@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {via_host};branch={branch}\r\n"
        "From: <sip:src@example.com>;tag=f1\r\n"
        "To: <sip:rs@example.com>\r\n"
        "Call-ID: call-1@example.com\r\n"
        f"CSeq: 1 {cseq_method or method}\r\n"
        "Contact: <sip:src@192.0.2.1>\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def sends(actions: Sequence[object]) -> int:
    return sum(isinstance(a, Send) for a in actions)


def state_now(txn: ServerInviteTransaction) -> State:
    """The state read afresh: mypy keeps ``txn.state`` narrowed across the calls that change it."""
    return txn.state


def fire_until(txn: ServerInviteTransaction | ClientInviteTransaction
               | ClientNonInviteTransaction | ServerNonInviteTransaction,
               end: float) -> list[tuple[float, object]]:
    fired: list[tuple[float, object]] = []
    while (at := txn.next_timer()) is not None and at <= end:
        fired += [(at, a) for a in txn.on_timer(at)]
    return fired


def test_server_invite_error_response_retransmitted_with_timer_g_until_h() -> None:
    invite = make_request("INVITE")
    txn = ServerInviteTransaction(invite, reliable=False)
    assert txn.state is State.PROCEEDING
    assert sends(txn.send_response(build_response(invite, 100), 0.0)) == 1
    assert txn.receive_request(invite, 0.1) == [Send(serialize(build_response(invite, 100)))]
    txn.send_response(build_response(invite, 486, to_tag="t"), 1.0)
    assert state_now(txn) is State.COMPLETED
    fired = fire_until(txn, 1.0 + 64 * T.t1)
    times = [round(at - 1.0, 3) for at, a in fired if isinstance(a, Send)]
    assert times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]  # T1 doubling, capped at T2
    assert isinstance(fired[-1][1], Timeout) and fired[-1][1].timer == "H"
    assert txn.terminated


def test_server_invite_ack_absorbed_then_timer_i() -> None:
    invite = make_request("INVITE")
    txn = ServerInviteTransaction(invite, reliable=False)
    txn.send_response(build_response(invite, 404, to_tag="t"), 0.0)
    ack = make_request("ACK")
    assert server_key(ack) == txn.key
    assert txn.receive_request(ack, 0.2) == []
    assert txn.state is State.CONFIRMED
    assert txn.receive_request(ack, 0.3) == []  # duplicate ACK absorbed
    assert txn.receive_request(invite, 0.4) == []  # late INVITE copy absorbed
    assert txn.next_timer() == pytest.approx(0.2 + T.t4)
    assert fire_until(txn, 10) == []
    assert txn.terminated


def test_server_invite_2xx_terminates_and_illegal_moves_raise() -> None:
    invite = make_request("INVITE")
    txn = ServerInviteTransaction(invite, reliable=True)
    txn.send_response(build_response(invite, 200, to_tag="t"), 0.0)
    assert txn.terminated and txn.next_timer() is None
    with pytest.raises(LocalProtocolError):
        txn.send_response(build_response(invite, 200, to_tag="t"), 0.1)


def test_server_invite_reliable_has_no_timer_g() -> None:
    invite = make_request("INVITE")
    txn = ServerInviteTransaction(invite, reliable=True)
    txn.send_response(build_response(invite, 500, to_tag="t"), 0.0)
    assert txn.next_timer() == 64 * T.t1
    txn.receive_request(make_request("ACK"), 1.0)
    assert txn.next_timer() == 1.0  # timer I is zero on reliable transports


def test_server_non_invite_timer_j() -> None:
    bye = make_request("BYE")
    txn = ServerNonInviteTransaction(bye, reliable=False)
    assert txn.receive_request(bye, 0.1) == []  # Trying: nothing to resend
    txn.send_response(build_response(bye, 200, to_tag="t"), 0.2)
    assert txn.state is State.COMPLETED
    assert sends(txn.receive_request(bye, 0.3)) == 1
    assert txn.next_timer() == pytest.approx(0.2 + 64 * T.t1)
    fire_until(txn, 100)
    assert txn.terminated
    assert txn.receive_request(bye, 100) == []


def test_client_invite_timer_a_and_b() -> None:
    txn = ClientInviteTransaction(make_request("INVITE"), reliable=False)
    assert sends(txn.start(0.0)) == 1
    with pytest.raises(LocalProtocolError):
        txn.start(0.0)
    fired = fire_until(txn, 100)
    resend_times = [at for at, a in fired if isinstance(a, Send)]
    assert resend_times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert fired[-1] == (32.0, Timeout("B"))
    assert txn.terminated


def test_client_invite_error_generates_ack_and_absorbs_retransmissions() -> None:
    invite = make_request("INVITE")
    txn = ClientInviteTransaction(invite, reliable=False)
    txn.start(0.0)
    ringing = build_response(invite, 180, to_tag="u")
    assert txn.receive_response(ringing, 0.1) == [Deliver(ringing)]
    assert txn.state is State.PROCEEDING and txn.next_timer() is None
    busy = build_response(invite, 486, to_tag="u")
    actions = txn.receive_response(busy, 0.2)
    assert isinstance(actions[0], Send) and actions[1] == Deliver(busy)
    ack = parse_message(actions[0].data)
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.headers["CSeq"] == "1 ACK" and ack.headers["To"].endswith("tag=u")
    assert ack.headers["Via"] == invite.headers["Via"]
    assert txn.receive_response(busy, 0.3) == [actions[0]]  # resend ACK, don't deliver
    assert txn.next_timer() == pytest.approx(0.2 + 32)
    fire_until(txn, 40)
    assert txn.terminated


def test_client_invite_2xx_terminates() -> None:
    invite = make_request("INVITE")
    txn = ClientInviteTransaction(invite, reliable=True)
    txn.start(0.0)
    ok = build_response(invite, 200, to_tag="u")
    assert client_key(ok) == txn.key
    assert txn.receive_response(ok, 0.1) == [Deliver(ok)]
    assert txn.terminated


def test_client_non_invite_timer_e_f_and_k() -> None:
    options = make_request("OPTIONS")
    txn = ClientNonInviteTransaction(options, reliable=False)
    txn.start(0.0)
    fired = fire_until(txn, 100)
    resends = [at for at, a in fired if isinstance(a, Send)]
    assert resends[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert fired[-1] == (32.0, Timeout("F"))

    txn = ClientNonInviteTransaction(options, reliable=False)
    txn.start(0.0)
    txn.receive_response(build_response(options, 100), 0.1)
    assert txn.state is State.PROCEEDING
    fire_until(txn, 0.6)
    assert txn.next_timer() == pytest.approx(0.5 + T.t2)  # T2 in Proceeding
    ok = build_response(options, 200, to_tag="u")
    assert txn.receive_response(ok, 1.0) == [Deliver(ok)]
    assert txn.receive_response(ok, 1.1) == []
    assert txn.next_timer() == pytest.approx(1.0 + T.t4)
    fire_until(txn, 10)
    assert txn.terminated
    with pytest.raises(LocalProtocolError):
        ClientNonInviteTransaction(make_request("INVITE"), reliable=False)


def test_matching_rules() -> None:
    invite = make_request("INVITE")
    assert server_key(make_request("ACK")) == server_key(invite)
    cancel = make_request("CANCEL")
    assert server_key(cancel) != server_key(invite)
    assert cancel_target_key(cancel) == server_key(invite)
    assert server_key(make_request("INVITE", via_host="192.0.2.9")) != server_key(invite)
    assert server_key(make_request("INVITE", branch="z9hG4bKother")) != server_key(invite)
    # RFC 2543 fallback: no magic cookie
    old = make_request("INVITE", branch="1234")
    assert server_key(old)[0] == "rfc2543"
    assert server_key(make_request("ACK", branch="1234")) == server_key(old)


def test_pending_2xx_retransmits_until_ack_or_gives_up() -> None:
    invite = make_request("INVITE")
    ok = build_response(invite, 200, to_tag="t")
    pending = Pending2xx(ok, serialize(ok), reliable=False, timers=T, now=0.0)
    times: list[float] = []
    result: list[object] = []
    while (at := pending.next_timer()) is not None:
        actions = pending.on_timer(at)
        times += [at for a in actions if isinstance(a, Send)]
        result += actions
    assert times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert result[-1] == Timeout("ack")
    assert pending.state is Pending2xxState.TIMED_OUT

    pending = Pending2xx(ok, serialize(ok), reliable=False, timers=T, now=0.0)
    pending.on_timer(0.5)
    assert sends(pending.retransmit()) == 1
    pending.ack_received()
    assert pending.done and pending.next_timer() is None and pending.retransmit() == []


def test_transaction_response_types() -> None:
    options = make_request("OPTIONS")
    txn = ServerNonInviteTransaction(options, reliable=True)
    txn.send_response(build_response(options, 200, to_tag="t"), 0.0)
    assert isinstance(txn.last_response, Response)
    fire_until(txn, 0.0)
    assert txn.terminated
