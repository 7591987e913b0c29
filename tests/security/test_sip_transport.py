"""SIP stream transports against hostile or careless peers: TLS identity, timeouts, caps.

A live ``SipEndpoint`` on loopback with small limits, raw sockets as peers.
The deadlines themselves are checked with passed-in times (``StreamDeadline``);
the live tests only wait for the close that must happen.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callvault.settings import SettingsError, load_settings
from callvault.sip.endpoint import IncomingRequest, SipEndpoint
from callvault.sip.transport import (
    StreamDeadline,
    StreamLimits,
    make_server_ssl_context,
    server_ssl_context,
    stream_limits,
)
from tests.sip.tls_certs import Certificate, client_context, self_signed

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Certs:
    server: Certificate
    client: Certificate
    stranger: Certificate  # a client certificate the server does not trust


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    directory = tmp_path_factory.mktemp("certs")
    return Certs(*(self_signed(directory, name) for name in ("server", "client", "stranger")))


@dataclass
class App:
    seen: list[IncomingRequest] = field(default_factory=list)

    def __call__(self, incoming: IncomingRequest) -> None:
        self.seen.append(incoming)
        if incoming.message.method != "ACK":
            incoming.respond(200)


@dataclass
class Server:
    endpoint: SipEndpoint
    app: App

    @property
    def tcp(self) -> tuple[str, int]:
        assert self.endpoint.tcp_port is not None
        return (HOST, self.endpoint.tcp_port)

    @property
    def tls(self) -> tuple[str, int]:
        assert self.endpoint.tls_port is not None
        return (HOST, self.endpoint.tls_port)


async def start(limits: StreamLimits, certs: Certs | None = None) -> Server:
    app = App()
    endpoint = SipEndpoint(app, stream_limits=limits)
    if certs is None:
        await endpoint.listen(HOST, None, 0)
    else:
        context = make_server_ssl_context(certs.server.cert, certs.server.key, certs.client.cert)
        await endpoint.listen(HOST, None, 0, tls_port=0, ssl_context=context)
    return Server(endpoint, app)


@pytest.fixture
async def server(certs: Certs) -> AsyncIterator[Server]:
    running = await start(StreamLimits(header_timeout=5, idle_timeout=30), certs)
    yield running
    await running.endpoint.close()


def request(method: str = "OPTIONS", transport: str = "TCP", branch: str = "z9hG4bKsec1") -> bytes:
    return (
        f"{method} sip:rs@{HOST} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {HOST}:5999;branch={branch}\r\n"
        "From: <sip:src@example.com>;tag=sec\r\n"
        "To: <sip:rs@example.com>\r\n"
        f"Call-ID: {branch}@example.com\r\n"
        f"CSeq: 1 {method}\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(
    remote: tuple[str, int], *, source: str = HOST, context: ssl.SSLContext | None = None
) -> Stream:
    return await asyncio.open_connection(
        *remote, local_addr=(source, 0), ssl=context,
        server_hostname=HOST if context is not None else None,
    )


async def answered(stream: Stream, method: str = "OPTIONS", transport: str = "TCP",
                   branch: str = "z9hG4bKsec1") -> bool:
    """Send a request; True if a 200 comes back, False if the server closed instead."""
    reader, writer = stream
    try:
        writer.write(request(method, transport, branch))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        return False
    return head.startswith(b"SIP/2.0 200")


async def closed_by_server(stream: Stream, within: float = 3.0) -> float:
    """Wait (at most ``within`` s) for the server to close; return how long it took."""
    reader, _ = stream
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        while await asyncio.wait_for(reader.read(65536), within):
            pass
    except ConnectionError:
        pass
    return loop.time() - started


def close(*streams: Stream) -> None:
    for _, writer in streams:
        writer.close()


# -- TLS: the flow reports the client certificate ------------------------------------------


async def test_tls_flow_reports_the_client_certificate_fingerprint(
    server: Server, certs: Certs
) -> None:
    with_cert = await connect(server.tls, context=client_context(certs.server, certs.client))
    assert await answered(with_cert, "INFO", "TLS", "z9hG4bKtls1")
    without = await connect(server.tls, context=client_context(certs.server))
    assert await answered(without, "INFO", "TLS", "z9hG4bKtls2")
    plain = await connect(server.tcp)
    assert await answered(plain, "INFO", "TCP", "z9hG4bKtcp1")
    close(with_cert, without, plain)
    seen = {incoming.message.call_id: incoming for incoming in server.app.seen}
    first = seen["z9hG4bKtls1@example.com"]
    assert first.transport == "tls"
    assert first.tls_fingerprint == certs.client.fingerprint
    assert len(first.tls_fingerprint) == 64 and first.tls_fingerprint.islower()
    assert seen["z9hG4bKtls2@example.com"].tls_fingerprint is None
    assert seen["z9hG4bKtcp1@example.com"].tls_fingerprint is None


async def test_tls_client_certificate_not_trusted_is_refused(
    server: Server, certs: Certs
) -> None:
    try:
        stranger = await connect(server.tls, context=client_context(certs.server, certs.stranger))
    except (ssl.SSLError, ConnectionError):
        pass  # refused during the handshake (TLS 1.2)
    else:  # TLS 1.3: the client learns of the refusal on its first read
        assert not await answered(stranger, "INFO", "TLS", "z9hG4bKstranger")
        close(stranger)
    assert server.app.seen == []


async def test_plain_tcp_to_the_tls_port_gets_nothing(server: Server) -> None:
    plain = await connect(server.tls)
    assert not await answered(plain, "INFO", "TCP", "z9hG4bKplain")
    close(plain)
    assert server.app.seen == []


# -- deadlines, with passed-in times -------------------------------------------------------

LIMITS = StreamLimits(header_timeout=10, idle_timeout=600)


def test_idle_deadline_moves_with_traffic() -> None:
    deadline = StreamDeadline(LIMITS, now=1000.0)
    assert deadline.due == 1600.0
    assert deadline.expired(1599.9) is None
    deadline.on_receive(1100.0, completed=1, in_message=False)  # a whole message
    assert deadline.due == 1700.0
    deadline.on_receive(1200.0, completed=0, in_message=False)  # a CRLF keep-alive
    deadline.on_send(1300.0)  # our own request on the connection
    assert deadline.due == 1900.0
    assert deadline.expired(1900.0) == "idle for 600s"


def test_header_deadline_counts_from_the_first_byte_of_the_message() -> None:
    deadline = StreamDeadline(LIMITS, now=0.0)
    deadline.on_receive(5.0, completed=0, in_message=True)  # first bytes of a message
    for now in (6.0, 8.0, 14.0):  # a trickle does not push the deadline
        deadline.on_receive(now, completed=0, in_message=True)
    assert deadline.due == 15.0
    assert deadline.expired(14.9) is None
    assert deadline.expired(15.0) == "message incomplete after 10s"


def test_header_deadline_restarts_with_each_message() -> None:
    deadline = StreamDeadline(LIMITS, now=0.0)
    deadline.on_receive(1.0, completed=0, in_message=True)
    # message 1 completes and message 2 starts in the same read
    deadline.on_receive(9.0, completed=1, in_message=True)
    assert deadline.due == 19.0
    deadline.on_receive(12.0, completed=1, in_message=False)  # message 2 done: idle again
    assert deadline.due == 612.0


# -- deadlines on a live server ------------------------------------------------------------


@pytest.fixture
async def strict() -> AsyncIterator[Server]:
    running = await start(StreamLimits(header_timeout=0.3, idle_timeout=0.6))
    yield running
    await running.endpoint.close()


async def test_partial_header_is_closed_at_the_header_timeout(strict: Server) -> None:
    stream = await connect(strict.tcp)
    stream[1].write(request()[:40])
    elapsed = await closed_by_server(stream)
    assert 0.25 <= elapsed < 2.0
    close(stream)


async def test_false_content_length_is_closed_at_the_header_timeout(strict: Server) -> None:
    stream = await connect(strict.tcp)
    stream[1].write(request().replace(b"Content-Length: 0", b"Content-Length: 500"))
    elapsed = await closed_by_server(stream)
    assert 0.25 <= elapsed < 2.0
    close(stream)


async def test_trickling_bytes_do_not_keep_a_message_alive(strict: Server) -> None:
    stream = await connect(strict.tcp)
    writer = stream[1]
    data = request()
    loop = asyncio.get_running_loop()
    started = loop.time()
    closed = asyncio.create_task(closed_by_server(stream))
    for i in range(len(data) - 1):  # one byte every 20 ms: 4 s for the whole message
        if closed.done():
            break
        try:
            writer.write(data[i : i + 1])
        except ConnectionError:
            break
        await asyncio.wait([closed], timeout=0.02)
    await closed
    assert loop.time() - started < 2.0
    close(stream)


async def test_idle_connection_is_closed_and_keepalives_hold_it(strict: Server) -> None:
    idle = await connect(strict.tcp)
    assert await answered(idle, branch="z9hG4bKidle")
    busy = await connect(strict.tcp)
    assert await answered(busy, branch="z9hG4bKbusy")
    closed = asyncio.create_task(closed_by_server(idle))
    # CRLF keep-alives (RFC 5626 3.5.1) every 0.15 s for 1.5 s: over twice the idle limit
    for _ in range(10):
        busy[1].write(b"\r\n\r\n")
        await asyncio.wait([closed], timeout=0.15)
    assert closed.done()
    assert 0.55 <= closed.result() < 2.0
    assert await answered(busy, branch="z9hG4bKbusy2")
    close(idle, busy)


async def test_a_message_in_pieces_within_the_header_timeout_is_answered(
    strict: Server,
) -> None:
    stream = await connect(strict.tcp)
    data = request()
    for i in range(0, len(data), 50):
        stream[1].write(data[i : i + 50])
        await asyncio.sleep(0)
    head = await asyncio.wait_for(stream[0].readuntil(b"\r\n\r\n"), 3)
    assert head.startswith(b"SIP/2.0 200")
    close(stream)


# -- connection caps -----------------------------------------------------------------------


async def test_connection_caps_per_source_and_in_total() -> None:
    server = await start(StreamLimits(max_per_source=3, max_total=4))
    streams: list[Stream] = []
    try:
        for i in range(3):
            streams.append(await connect(server.tcp))
            assert await answered(streams[-1], branch=f"z9hG4bKcap{i}")
        over = await connect(server.tcp)
        assert not await answered(over, branch="z9hG4bKover")
        close(over)
        other = await connect(server.tcp, source="127.0.0.2")  # another address still gets in
        assert await answered(other, branch="z9hG4bKother")
        streams.append(other)
        full = await connect(server.tcp, source="127.0.0.3")  # but not past the total
        assert not await answered(full, branch="z9hG4bKfull")
        close(full)
        close(streams.pop(0))  # a slot frees when a connection goes
        async with asyncio.timeout(3):
            while True:
                again = await connect(server.tcp)
                if await answered(again, branch="z9hG4bKagain"):
                    break
                close(again)
        streams.append(again)
    finally:
        close(*streams)
        await server.endpoint.close()


# -- settings ------------------------------------------------------------------------------


def test_tls_settings_build_the_listener_context(certs: Certs, tmp_path: Path) -> None:
    assert server_ssl_context(load_settings(data_dir=tmp_path)) is None  # TLS off by default
    settings = load_settings(
        data_dir=tmp_path, sip_tls_cert=certs.server.cert, sip_tls_key=certs.server.key,
        sip_tls_ca=certs.client.cert, sip_tcp_header_timeout_s=4, sip_tcp_idle_timeout_s=90,
        sip_tcp_max_connections_per_source=8, sip_tcp_max_connections=64,
    )
    context = server_ssl_context(settings)
    assert context is not None and context.verify_mode == ssl.CERT_OPTIONAL
    assert settings.sip_tls_port == 5061
    assert stream_limits(settings) == StreamLimits(
        header_timeout=4, idle_timeout=90, max_per_source=8, max_total=64)
    with pytest.raises(SettingsError, match="sip_tls_key"):
        load_settings(data_dir=tmp_path, sip_tls_cert=certs.server.cert)
    with pytest.raises(SettingsError, match="sip_tls_ca"):
        load_settings(data_dir=tmp_path, sip_tls_ca=tmp_path / "missing.pem")
