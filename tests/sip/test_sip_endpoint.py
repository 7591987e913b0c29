"""Two real SipEndpoints over loopback UDP/TCP/TLS, raw sockets as misbehaving peers, and sipp.

Absence checks never rest on a short sleep: they wait on a barrier (a later
request's answer on the same path) or read the endpoint's timer state
(``awaiting_ack``). The timers' schedules themselves (2xx resends, timers
A/B/E/F/H/J/K, absorbed copies) are tested in memory with a fake clock in
``test_core.py`` and ``test_core_pair.py``; here each feature has one run over
real sockets, with timers short enough that a timeout costs well under a second.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sipmessage import URI, Request, Response
from tests.peers import program
from tests.sip.sip_torture import INVALID, wire
from tests.sip.tls_certs import Certificate, client_context, self_signed

from callvault.sip.dialog import Dialog
from callvault.sip.endpoint import IncomingRequest, SipEndpoint
from callvault.sip.message import parse_message, tag_of
from callvault.sip.timers import Timers
from callvault.sip.transport import make_server_ssl_context

FAST = Timers(t1=0.05, t2=0.4, t4=0.5, timer_d=0.5)
# for the tests that wait for a timeout (64*T1 = 0.32 s)
FASTER = Timers(t1=0.005, t2=0.04, t4=0.05, timer_d=0.05)
HOST = "127.0.0.1"


@dataclass
class Recorder:
    """A UAS application: answers INVITE/BYE, remembers what it saw."""

    answer_invite: int | None = 200
    seen: list[IncomingRequest] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    ack_timeouts: list[str] = field(default_factory=list)

    def __call__(self, incoming: IncomingRequest) -> None:
        self.seen.append(incoming)
        method = incoming.message.method
        if method == "INVITE":
            incoming.on_cancel = lambda: self.cancelled.append(incoming.message.call_id)
            incoming.on_ack_timeout = lambda: self.ack_timeouts.append(incoming.message.call_id)
            if self.answer_invite is not None:
                incoming.respond(
                    self.answer_invite,
                    headers=[("Contact", f"<sip:rs@{HOST}:{incoming.local[1]}>")],
                    body=b"v=0\r\n", content_type="application/sdp",
                )
        elif method == "INFO":
            raise RuntimeError("handler bug")
        elif method != "ACK":
            incoming.respond(200)

    def methods(self) -> list[str]:
        return [i.message.method for i in self.seen]


@dataclass(frozen=True)
class Certs:
    server: Certificate
    client: Certificate


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    directory: Path = tmp_path_factory.mktemp("certs")
    return Certs(self_signed(directory, "server"), self_signed(directory, "client"))


def answer_200(incoming: IncomingRequest) -> None:
    incoming.respond(200)


def tls_certs(request: pytest.FixtureRequest) -> Certs | None:
    """The certificates, for tests run over TLS only (the others need no openssl)."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or callspec.params.get("transport") != "tls":
        return None
    certs: Certs = request.getfixturevalue("certs")
    return certs


@pytest.fixture
async def uas(request: pytest.FixtureRequest) -> AsyncIterator[tuple[SipEndpoint, Recorder]]:
    recorder = Recorder()
    endpoint = SipEndpoint(recorder, timers=FAST)
    certs = tls_certs(request)
    if certs is None:
        await endpoint.listen(HOST, 0, 0)
    else:
        context = make_server_ssl_context(certs.server.cert, certs.server.key, certs.client.cert)
        await endpoint.listen(HOST, 0, 0, tls_port=0, ssl_context=context)
    yield endpoint, recorder
    await endpoint.close()


@pytest.fixture
async def uac(request: pytest.FixtureRequest) -> AsyncIterator[SipEndpoint]:
    certs = tls_certs(request)
    endpoint = SipEndpoint(
        answer_200, timers=FAST,
        tls_client_context=None if certs is None else client_context(certs.server, certs.client),
    )
    await endpoint.listen(HOST, 0, 0)
    yield endpoint
    await endpoint.close()


def new_invite(uac: SipEndpoint, cseq: int = 1, method: str = "INVITE") -> Request:
    request = Request(method=method, uri=URI.parse(f"sip:rs@{HOST}"))
    h = request.headers
    h.add("From", f"<sip:src@example.com>;tag={uuid.uuid4().hex[:8]}")
    h.add("To", "<sip:rs@example.com>")
    h.add("Call-ID", uuid.uuid4().hex)
    h.add("CSeq", f"{cseq} {method}")
    h.add("Contact", f"<sip:src@{HOST}:{uac.udp_port}>")
    return request


async def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def remote(uas: SipEndpoint, transport: str) -> tuple[str, int]:
    port = {"udp": uas.udp_port, "tcp": uas.tcp_port, "tls": uas.tls_port}[transport]
    assert port is not None
    return (HOST, port)


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_invite_ack_bye(
    uas: tuple[SipEndpoint, Recorder], uac: SipEndpoint, transport: str,
    request: pytest.FixtureRequest,
) -> None:
    server, app = uas
    provisional: list[Response] = []
    invite = new_invite(uac)
    ok = await uac.request(invite, remote(server, transport), transport,
                           on_provisional=provisional.append)
    assert ok.code == 200 and ok.body == b"v=0\r\n"
    assert [r.code for r in provisional] == [100]
    assert tag_of(ok.headers["To"])
    dialog = Dialog.from_outgoing_invite(invite, ok)
    assert server.awaiting_ack == 1
    uac.send_ack(ok, dialog)
    await wait_for(lambda: "ACK" in app.methods())
    assert server.awaiting_ack == 0  # the 2xx is no longer resent, no ACK timeout is armed
    bye = await uac.request(dialog.create_request("BYE"), remote(server, transport), transport)
    assert bye.code == 200
    assert app.methods() == ["INVITE", "ACK", "BYE"]
    assert app.seen[0].transport == transport
    assert app.seen[0].local[1] == remote(server, transport)[1]
    certs = tls_certs(request)
    fingerprint = app.seen[0].tls_fingerprint
    assert fingerprint == (certs.client.fingerprint if certs is not None else None)


async def test_options_answered_by_endpoint(
    uas: tuple[SipEndpoint, Recorder], uac: SipEndpoint
) -> None:
    server, app = uas
    response = await uac.request(new_invite(uac, method="OPTIONS"), remote(server, "udp"))
    assert response.code == 200
    assert "INVITE" in (response.headers.get("Allow") or "")
    assert "application/rs-metadata+xml" in (response.headers.get("Accept") or "")
    assert response.supported == ["timer"]
    assert app.seen == []


async def test_method_router_and_the_options_answer_are_the_constructors(
    uac: SipEndpoint,
) -> None:
    """A B2BUA-style endpoint: its own Allow/Accept, one handler per method, a default."""
    default: list[str] = []
    routed: list[str] = []

    def on_refer(incoming: IncomingRequest) -> None:
        routed.append(incoming.message.method)
        incoming.respond(202)

    def fallback(incoming: IncomingRequest) -> None:
        default.append(incoming.message.method)
        incoming.respond(200)

    server = SipEndpoint(fallback, timers=FAST, allow="INVITE, ACK, BYE, REFER",
                         accept="application/sdp", supported="timer, replaces")
    server.route("refer", on_refer)
    await server.listen(HOST, 0, None)
    try:
        target = (HOST, server.udp_port or 0)
        options = await uac.request(new_invite(uac, method="OPTIONS"), target)
        assert options.headers.get("Allow") == "INVITE, ACK, BYE, REFER"
        assert options.headers.get("Accept") == "application/sdp"
        assert options.supported == ["timer", "replaces"]
        assert (await uac.request(new_invite(uac, method="REFER"), target)).code == 202
        assert (await uac.request(new_invite(uac, method="MESSAGE"), target)).code == 200
        assert (routed, default) == (["REFER"], ["MESSAGE"])
    finally:
        await server.close()


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_cancel(uas: tuple[SipEndpoint, Recorder], uac: SipEndpoint, transport: str) -> None:
    server, app = uas
    app.answer_invite = None
    invite = new_invite(uac)
    got_100 = asyncio.Event()
    call = asyncio.create_task(uac.request(invite, remote(server, transport), transport,
                                           on_provisional=lambda r: got_100.set()))
    await asyncio.wait_for(got_100.wait(), 2)
    cancel_response = await uac.cancel(invite, remote(server, transport), transport)
    assert cancel_response.code == 200
    final = await asyncio.wait_for(call, 2)
    assert final.code == 487
    assert app.cancelled == [invite.call_id]


async def test_cancel_unknown_invite_gets_481(
    uas: tuple[SipEndpoint, Recorder], uac: SipEndpoint
) -> None:
    server, _ = uas
    invite = new_invite(uac)
    invite.headers.add("Via", f"SIP/2.0/UDP {HOST}:{uac.udp_port};branch=z9hG4bKnothere")
    response = await uac.cancel(invite, remote(server, "udp"))
    assert response.code == 481


async def test_request_timeout() -> None:
    uac = SipEndpoint(answer_200, timers=FASTER)
    await uac.listen(HOST, 0, None)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((HOST, 0))
    try:
        with pytest.raises(TimeoutError, match="timer F"):
            await uac.request(new_invite(uac, method="OPTIONS"), silent.getsockname())
    finally:
        silent.close()
        await uac.close()


class RawUdp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait(data)


async def raw_peer() -> tuple[asyncio.DatagramTransport, RawUdp]:
    loop = asyncio.get_running_loop()
    return await loop.create_datagram_endpoint(RawUdp, local_addr=(HOST, 0))


def raw_invite(port: int, branch: str = "z9hG4bKraw1", method: str = "INVITE") -> bytes:
    return (
        f"{method} sip:rs@{HOST} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{port};branch={branch};rport\r\n"
        "From: <sip:src@example.com>;tag=raw\r\n"
        "To: <sip:rs@example.com>\r\n"
        "Call-ID: raw-call@example.com\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:src@{HOST}:{port}>\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def barrier(
    transport: asyncio.DatagramTransport, peer: RawUdp, server: SipEndpoint, port: int
) -> list[Response]:
    """Send an OPTIONS and wait for its 200: whatever the server sent before has arrived.

    Returns the responses that came before (the endpoint handles datagrams in order).
    """
    transport.sendto(raw_invite(port, "z9hG4bKbarrier", "OPTIONS"), remote(server, "udp"))
    before: list[Response] = []
    while True:
        msg = parse_message(await asyncio.wait_for(peer.received.get(), 2))
        assert isinstance(msg, Response)
        if msg.cseq.method == "OPTIONS":
            return before
        before.append(msg)


async def test_2xx_retransmitted_until_ack_timeout() -> None:
    app = Recorder()
    server = SipEndpoint(app, timers=FASTER)
    await server.listen(HOST, 0, None)
    transport, peer = await raw_peer()
    port = transport.get_extra_info("sockname")[1]
    try:
        transport.sendto(raw_invite(port), remote(server, "udp"))
        codes: list[int] = []
        async with asyncio.timeout(1.0):
            while codes.count(200) < 4:
                msg = parse_message(await peer.received.get())
                assert isinstance(msg, Response)
                codes.append(msg.code)
        assert codes[0] == 100
        # a retransmitted INVITE is answered with the 2xx, not handed to the app again
        transport.sendto(raw_invite(port), remote(server, "udp"))
        await barrier(transport, peer, server, port)
        assert app.methods() == ["INVITE"]
        await wait_for(lambda: app.ack_timeouts == ["raw-call@example.com"], 5)
    finally:
        transport.close()
        await server.close()


async def test_ack_stops_2xx_retransmission(uas: tuple[SipEndpoint, Recorder]) -> None:
    server, app = uas
    transport, peer = await raw_peer()
    port = transport.get_extra_info("sockname")[1]
    try:
        transport.sendto(raw_invite(port), remote(server, "udp"))
        ok: Response | None = None
        while ok is None:
            msg = parse_message(await asyncio.wait_for(peer.received.get(), 1))
            if isinstance(msg, Response) and msg.code == 200:
                ok = msg
        ack = (
            f"ACK sip:rs@{HOST}:{server.udp_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bKack1\r\n"
            "From: <sip:src@example.com>;tag=raw\r\n"
            f"To: {ok.headers['To']}\r\n"
            "Call-ID: raw-call@example.com\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        transport.sendto(ack, remote(server, "udp"))
        transport.sendto(ack, remote(server, "udp"))  # duplicate: absorbed
        await wait_for(lambda: "ACK" in app.methods())
        # no retransmission or ACK timeout left armed (that none fires later is
        # test_core.py's test_ack_stops_the_2xx_and_copies_are_absorbed_for_64_t1)
        assert server.awaiting_ack == 0
        while not peer.received.empty():
            peer.received.get_nowait()
        assert await barrier(transport, peer, server, port) == []
        assert app.methods() == ["INVITE", "ACK"]
        assert app.ack_timeouts == []
    finally:
        transport.close()


async def test_malformed_requests_and_handler_errors(
    uas: tuple[SipEndpoint, Recorder], uac: SipEndpoint
) -> None:
    server = uas[0]
    transport, peer = await raw_peer()
    port = transport.get_extra_info("sockname")[1]
    try:
        transport.sendto(wire(INVALID["mismatch01"][0]), remote(server, "udp"))
        reply = parse_message(await asyncio.wait_for(peer.received.get(), 1))
        assert isinstance(reply, Response) and reply.code == 400
        assert "does not match" in reply.phrase
        assert (reply.headers.get("Warning") or "").startswith("399 callvault")
        transport.sendto(b"\x00\xffgarbage\r\n\r\n", remote(server, "udp"))
        transport.sendto(b"\r\n\r\n", remote(server, "udp"))
        assert await barrier(transport, peer, server, port) == []  # both dropped silently
    finally:
        transport.close()
    info = await uac.request(new_invite(uac, method="INFO"), remote(server, "udp"))
    assert info.code == 500
    ok = await uac.request(new_invite(uac, method="OPTIONS"), remote(server, "udp"))
    assert ok.code == 200


async def test_tcp_unframeable_stream_closes_only_that_connection(
    uas: tuple[SipEndpoint, Recorder], uac: SipEndpoint
) -> None:
    server = uas[0]
    reader, writer = await asyncio.open_connection(*remote(server, "tcp"))
    request = raw_invite(1).replace(b"Content-Length: 0\r\n", b"")
    writer.write(request)
    assert await asyncio.wait_for(reader.read(), 2) == b""  # closed by the server
    writer.close()
    ok = await uac.request(new_invite(uac, method="OPTIONS"), remote(server, "tcp"), "tcp")
    assert ok.code == 200


async def test_sipp_uac(uas: tuple[SipEndpoint, Recorder]) -> None:
    sipp = program("sipp", "the real SIP peer")  # a failure, not a skip, when CI=true
    server, app = uas
    proc = await asyncio.create_subprocess_exec(
        sipp, "-sn", "uac", f"{HOST}:{server.udp_port}", "-i", HOST, "-p", "0",
        "-m", "3", "-timeout", "20s", "-timeout_error", "-nostdin", "-d", "100",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, output.decode(errors="replace")[-2000:]
    assert app.methods().count("BYE") == 3
    assert app.methods().count("ACK") == 3


async def test_runs_under_uvloop() -> None:
    import uvloop

    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
