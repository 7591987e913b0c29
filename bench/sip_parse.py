"""Throughput of the SIP core: parse_message on a SIPREC INVITE and a BYE, and
full server INVITE transactions (parse, 100, 200, ACK) per second of CPU.

Rates are per second of this process's CPU time (``time.process_time``), not of
the wall clock, so that other work on a shared machine does not count. "fresh"
rows give every message its own branch, tags and Call-ID, as on the wire (the
parse caches of ``sip/message.py`` do not hit); the others repeat one message.

Run: python bench/sip_parse.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sipmessage import Request

from callvault.sip.invite_2xx import Pending2xx
from callvault.sip.message import build_response, parse_message, serialize
from callvault.sip.timers import Timers
from callvault.sip.transaction import ServerInviteTransaction, server_key

SDP = (
    "v=0\r\no=SRC 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    "m=audio 10000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=label:1\r\na=sendonly\r\n"
    "m=audio 10002 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=label:2\r\na=sendonly\r\n"
)
METADATA = (
    '<?xml version="1.0" encoding="UTF-8"?>\r\n'
    '<recording xmlns="urn:ietf:params:xml:ns:recording:1">\r\n'
    "  <datamode>complete</datamode>\r\n"
    + "".join(
        f'  <participant participant_id="p{i}AAAAAAAAAAAAAAAA==">\r\n'
        f'    <nameID aor="sip:user{i}@example.com"><name>User {i}</name></nameID>\r\n'
        "  </participant>\r\n"
        f'  <stream stream_id="s{i}AAAAAAAAAAAAAAAAA==" session_id="sessAAAAAAAAAAAAA==">\r\n'
        f"    <label>{i}</label>\r\n  </stream>\r\n"
        for i in range(1, 7)
    )
    + '  <session session_id="sessAAAAAAAAAAAAA==">\r\n'
    "    <sipSessionID>ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2"
    "</sipSessionID>\r\n  </session>\r\n</recording>\r\n"
)
BODY = (
    "--uniqueBoundary\r\nContent-Type: application/sdp\r\n\r\n"
    + SDP
    + "--uniqueBoundary\r\nContent-Type: application/rs-metadata+xml\r\n"
    "Content-Disposition: recording-session\r\n\r\n" + METADATA + "--uniqueBoundary--\r\n"
).encode()


def invite(branch: str = "z9hG4bKsbc1") -> bytes:
    head = (
        "INVITE sip:recorder@192.0.2.10:5060;transport=udp SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch};rport\r\n"
        "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKupstream;received=198.51.100.7\r\n"
        "Max-Forwards: 69\r\n"
        "From: <sip:srs-client@sbc.example.com>;tag=as5f3a\r\n"
        "To: <sip:recorder@rs.example.com>\r\n"
        "Call-ID: 3c26b9a1-7c42-4b9e-9e0a-4a6d2a1f@sbc.example.com\r\n"
        "CSeq: 101 INVITE\r\n"
        "Contact: <sip:srs-client@192.0.2.1:5060>;+sip.src\r\n"
        "Record-Route: <sip:192.0.2.1;lr>\r\n"
        "Require: siprec\r\n"
        "Supported: timer, replaces, 100rel\r\n"
        "Session-Expires: 1800;refresher=uac\r\nMin-SE: 90\r\n"
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO\r\n"
        "User-Agent: ExampleSBC/9.1\r\n"
        "Content-Type: multipart/mixed;boundary=uniqueBoundary\r\n"
        "Mime-Version: 1.0\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    )
    return head.encode() + BODY


BYE = (
    b"BYE sip:recorder@192.0.2.10:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbye1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:srs-client@sbc.example.com>;tag=as5f3a\r\n"
    b"To: <sip:recorder@rs.example.com>;tag=rs77\r\n"
    b"Call-ID: 3c26b9a1-7c42-4b9e-9e0a-4a6d2a1f@sbc.example.com\r\n"
    b"CSeq: 102 BYE\r\n"
    b"Content-Length: 0\r\n\r\n"
)
ACK = (
    b"ACK sip:recorder@192.0.2.10:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:srs-client@sbc.example.com>;tag=as5f3a\r\n"
    b"To: <sip:recorder@rs.example.com>;tag=rs77\r\n"
    b"Call-ID: 3c26b9a1-7c42-4b9e-9e0a-4a6d2a1f@sbc.example.com\r\n"
    b"CSeq: 101 ACK\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def rate(fn: Callable[[], object], seconds: float = 2.0) -> float:
    count, start = 0, time.process_time()
    while (elapsed := time.process_time() - start) < seconds:
        for _ in range(100):
            fn()
        count += 100
    return count / elapsed


class Fresh:
    """Messages of a new call each time: the INVITE, its ACK and BYE share a Call-ID
    and From tag; branches differ."""

    def __init__(self) -> None:
        self.n = 0

    def next_call(self) -> tuple[bytes, bytes, bytes]:
        self.n += 1
        n = self.n

        def fresh(data: bytes) -> bytes:
            return (
                data.replace(b"z9hG4bKsbc1", b"z9hG4bKsbc1x%d" % n)
                .replace(b"z9hG4bKack1", b"z9hG4bKack1x%d" % n)
                .replace(b"z9hG4bKbye1", b"z9hG4bKbye1x%d" % n)
                .replace(b"tag=as5f3a", b"tag=as5f3a%d" % n)
                .replace(b"3c26b9a1-", b"%d-3c26b9a1-" % n)
            )

        return fresh(INVITE), fresh(ACK), fresh(BYE)


FRESH = Fresh()


def fresh_invite() -> None:
    parse_message(FRESH.next_call()[0])


def fresh_bye() -> None:
    parse_message(FRESH.next_call()[2])


def fresh_transaction() -> None:
    invite_data, ack, _bye = FRESH.next_call()
    server_invite_transaction(invite_data, ack)


def server_invite_transaction(
    invite_data: bytes | None = None, ack_data: bytes | None = None
) -> None:
    request = parse_message(invite_data or INVITE)
    assert isinstance(request, Request)
    server_key(request)
    txn = ServerInviteTransaction(request, reliable=False, timers=TIMERS)
    txn.send_response(build_response(request, 100), 0.0)
    ok = build_response(
        request,
        200,
        to_tag="rs77",
        body=SDP.encode(),
        content_type="application/sdp",
        headers=[("Contact", "<sip:recorder@192.0.2.10:5060>")],
    )
    data = serialize(ok)
    txn.send_response(ok, 0.01)
    pending = Pending2xx(ok, data, reliable=False, timers=TIMERS, now=0.01)
    ack = parse_message(ack_data or ACK)
    assert isinstance(ack, Request)
    pending.ack_received()


INVITE = invite()
TIMERS = Timers()


def main() -> None:
    rows = [
        (f"parse_message SIPREC INVITE ({len(INVITE)} B)", rate(lambda: parse_message(INVITE))),
        (f"parse_message BYE ({len(BYE)} B)", rate(lambda: parse_message(BYE))),
        ("server INVITE transaction (parse, 100, 200, ACK)", rate(server_invite_transaction)),
        ("fresh: parse_message SIPREC INVITE", rate(fresh_invite)),
        ("fresh: parse_message BYE", rate(fresh_bye)),
        ("fresh: server INVITE transaction", rate(fresh_transaction)),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'benchmark':<{width}}  {'per CPU second':>14}")
    for name, value in rows:
        print(f"{name:<{width}}  {value:>14,.0f}")


if __name__ == "__main__":
    main()
