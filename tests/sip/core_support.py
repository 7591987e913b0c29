"""In-memory pieces for driving ``SipCore`` without sockets: flows, a clock, raw requests."""

from __future__ import annotations

from dataclasses import dataclass

from sipmessage import Request, Response

from callvault.sip.core import CoreAction, Destination, Transmit
from callvault.sip.message import parse_message

HostPort = tuple[str, int]


@dataclass(frozen=True)
class MemoryFlow:
    """A flow as the core sees it: the transport and the peer's address."""

    transport: str
    remote: HostPort
    local: HostPort = ("192.0.2.10", 5060)

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"


UDP_PEER = MemoryFlow("udp", ("192.0.2.1", 5060))
TCP_PEER = MemoryFlow("tcp", ("192.0.2.1", 40000))


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now


def raw_request(
    method: str,
    *,
    branch: str = "z9hG4bKcore1",
    call_id: str = "core-call@example.com",
    cseq: int = 1,
    cseq_method: str | None = None,
    to_tag: str | None = None,
    transport: str = "UDP",
    sent_by: str = "192.0.2.1:5060",
) -> bytes:
    to = "<sip:rs@example.com>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{method} sip:rs@192.0.2.10 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {sent_by};branch={branch};rport\r\n"
        "From: <sip:src@example.com>;tag=src1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        "Contact: <sip:src@192.0.2.1:5060>\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def transmits(actions: list[CoreAction[MemoryFlow]]) -> list[Transmit[MemoryFlow]]:
    return [a for a in actions if isinstance(a, Transmit)]


def sent_responses(actions: list[CoreAction[MemoryFlow]]) -> list[Response]:
    out: list[Response] = []
    for action in transmits(actions):
        message = parse_message(action.data)
        assert isinstance(message, Response)
        out.append(message)
    return out


def sent_requests(actions: list[CoreAction[MemoryFlow]]) -> list[Request]:
    out: list[Request] = []
    for action in transmits(actions):
        message = parse_message(action.data)
        assert isinstance(message, Request)
        out.append(message)
    return out


def codes(actions: list[CoreAction[MemoryFlow]]) -> list[int]:
    return [r.code for r in sent_responses(actions)]


def address_of(target: MemoryFlow | Destination) -> HostPort:
    return target.remote
