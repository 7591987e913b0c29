"""The B2BUA end to end with our own SIP stack as the phones (baresip: test_b2bua_calls).

Phone A (127.0.0.2, a PBX source) calls through callvault to phone B
(127.0.0.3, a trunk source, reached by the operator's route). Each phone
sends its own tone from one socket and keeps what it hears; the checks are
by content: each hears the other's tone, B hears the start prompt before A's
tone, and the recording has A (the recorded user) left and B right.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sipmessage import URI, Request, Response

from callvault.b2bua.route_store import add_route
from callvault.db.engine import make_engine, make_sessionmaker
from callvault.media.analysis import goertzel_power
from callvault.media.codecs import ULAW_TABLE
from callvault.media.sender import G711Stream
from callvault.media.tones import sine
from callvault.sip.dialog import Dialog
from callvault.sip.endpoint import IncomingRequest, SipEndpoint
from callvault.sip.sdp import parse_sdp
from callvault.sources.store import SourceSpec, add_source
from tests.e2e.harness import Recorder, running_recorder

A_HZ, B_HZ = 700.0, 1100.0


class PhoneMedia(asyncio.DatagramProtocol):
    """One RTP socket: sends a tone every 20 ms, keeps the payloads it receives."""

    def __init__(self, freq: float, seconds: float) -> None:
        self.stream = G711Stream(sine(freq, seconds), 0, ptime_ms=20, rng=random.Random(1))
        self.heard: list[tuple[float, bytes]] = []
        self.remote: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.events: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if len(data) > 12 and data[1] & 0x7F == 0:
            self.heard.append((asyncio.get_running_loop().time(), data[12:]))
        elif len(data) > 12:
            self.events.append(data)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    async def run(self) -> None:
        while not self.stream.done:
            if self.remote is not None and self.transport is not None:
                for packet in self.stream.tick():
                    self.transport.sendto(packet, self.remote)
            await asyncio.sleep(0.02)

    def audio(self) -> np.ndarray:
        return (
            ULAW_TABLE[np.frombuffer(b"".join(p for _, p in self.heard), np.uint8)]
            if self.heard
            else np.zeros(0)
        )


def offer(host: str, port: int) -> bytes:
    return (
        f"v=0\r\no=phone 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
    ).encode()


def media_target(body: bytes) -> tuple[str, int]:
    sdp = parse_sdp(body)
    audio = sdp.media[0]
    assert audio.connection is not None
    return audio.connection, audio.port


def seed_bridge(rec: Recorder, b_port: int, **route: str) -> None:
    engine = make_engine(rec.app.settings.db_url)
    with make_sessionmaker(engine)() as session:
        pbx = add_source(
            session,
            SourceSpec(
                name="pbx", networks=["127.0.0.2/32"], tenant_ids=[rec.tenant_id], kind="pbx"
            ),
            created_by="test",
        )
        trunk = add_source(
            session,
            SourceSpec(
                name="trunk", networks=["127.0.0.3/32"], tenant_ids=[rec.tenant_id], kind="trunk"
            ),
            created_by="test",
        )
        session.flush()
        add_route(
            session,
            tenant_id=rec.tenant_id,
            source_id=pbx.id,
            prefix=route.get("prefix", ""),
            target=route.get("target", f"sip:127.0.0.3:{b_port};transport=udp"),
            created_by="test",
        )
        del trunk
        session.commit()
    engine.dispose()
    rec.app.reload_directory()


def ignore(request: IncomingRequest) -> None:
    del request


def answer_ok(request: IncomingRequest) -> None:
    if request.message.method != "ACK":
        request.respond(200)


@asynccontextmanager
async def phone(
    host: str, handler: Callable[[IncomingRequest], None]
) -> AsyncIterator[SipEndpoint]:
    endpoint = SipEndpoint(handler)
    await endpoint.listen(host, 0, None)
    try:
        yield endpoint
    finally:
        await endpoint.close()


async def test_a_bridged_call_relays_both_ways_announces_and_is_recorded(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    media_a, media_b = PhoneMedia(A_HZ, 6), PhoneMedia(B_HZ, 6)
    await loop.create_datagram_endpoint(lambda: media_a, local_addr=("127.0.0.2", 0))
    await loop.create_datagram_endpoint(lambda: media_b, local_addr=("127.0.0.3", 0))
    b_calls: list[Request] = []
    b_byes: list[Request] = []

    def b_handler(request: IncomingRequest) -> None:
        if request.message.method == "INVITE":
            b_calls.append(request.message)
            media_b.remote = media_target(bytes(request.message.body))
            request.respond(
                200,
                headers=[("Contact", f"<sip:bob@127.0.0.3:{b_endpoint.udp_port}>")],
                body=offer("127.0.0.3", media_b.port),
                content_type="application/sdp",
            )
        elif request.message.method == "BYE":
            b_byes.append(request.message)
            request.respond(200)

    async with (
        running_recorder(tmp_path) as rec,
        phone("127.0.0.2", answer_ok) as a_endpoint,
        phone("127.0.0.3", b_handler) as b_endpoint,
    ):
        seed_bridge(rec, b_endpoint.udp_port or 0)
        invite = Request(method="INVITE", uri=URI.parse("sip:+31612345678@trunk.example"))
        h = invite.headers
        h.add("From", "<sip:alice@acme.example>;tag=a1")
        h.add("To", "<sip:+31612345678@trunk.example>")
        h.add("Call-ID", "bridge-1@127.0.0.2")
        h.add("CSeq", "1 INVITE")
        h.add("Contact", f"<sip:alice@127.0.0.2:{a_endpoint.udp_port}>")
        h.add("Content-Type", "application/sdp")
        invite.body = offer("127.0.0.2", media_a.port)
        response: Response = await a_endpoint.request(invite, rec.sip)
        assert response.code == 200, response.code
        dialog = Dialog.from_outgoing_invite(invite, response)
        a_endpoint.send_ack(response, dialog)
        media_a.remote = media_target(bytes(response.body))
        assert media_a.remote[1] != media_b.port  # anchored: A talks to callvault's relay
        assert len(b_calls) == 1
        assert str(b_calls[0].uri).startswith("sip:+31612345678@trunk.example")
        await asyncio.gather(media_a.run(), media_b.run())
        bye = dialog.create_request("BYE")
        assert (await a_endpoint.request(bye, rec.sip)).code == 200
        [(_call, recording_id)] = await rec.wait_finished(1, timeout=60)
        assert recording_id is not None
        for _ in range(50):
            if b_byes:
                break
            await asyncio.sleep(0.05)
        assert b_byes, "leg b was not ended"

        heard_by_b, heard_by_a = media_b.audio(), media_a.audio()
        # B hears A's tone, after the start prompt (the prompt replaces A's audio first)
        assert goertzel_power(heard_by_b[-8000:], 8000, A_HZ) > 100 * goertzel_power(
            heard_by_b[-8000:], 8000, B_HZ
        )
        first = heard_by_b[:4000]
        assert goertzel_power(first, 8000, A_HZ) < 0.1 * goertzel_power(
            heard_by_b[-8000:], 8000, A_HZ
        )
        # A hears B's tone
        assert goertzel_power(heard_by_a[-8000:], 8000, B_HZ) > 100 * goertzel_power(
            heard_by_a[-8000:], 8000, A_HZ
        )
        meta = await rec.recording(recording_id)
        sides = {p["aor"]: p["side"] for p in meta["parties"]}
        assert sides["sip:alice@acme.example"] == "user"
        assert meta["user_id"] == rec.users["alice"]
        pcm, rate, _ = await rec.audio(recording_id)
        left, right = pcm[0], pcm[1]
        mid = slice(rate * 2, rate * 4)
        assert goertzel_power(left[mid], rate, A_HZ) > 20 * goertzel_power(left[mid], rate, B_HZ)
        assert goertzel_power(right[mid], rate, B_HZ) > 20 * goertzel_power(right[mid], rate, A_HZ)


async def test_no_route_is_a_404_that_says_why(tmp_path: Path) -> None:
    async with (
        running_recorder(tmp_path) as rec,
        phone("127.0.0.2", ignore) as a_endpoint,
    ):
        seed_bridge(rec, 5999, prefix="+49")
        invite = Request(method="INVITE", uri=URI.parse("sip:+31612345678@trunk.example"))
        h = invite.headers
        h.add("From", "<sip:alice@acme.example>;tag=a1")
        h.add("To", "<sip:+31612345678@trunk.example>")
        h.add("Call-ID", "bridge-2@127.0.0.2")
        h.add("CSeq", "1 INVITE")
        h.add("Contact", f"<sip:alice@127.0.0.2:{a_endpoint.udp_port}>")
        h.add("Content-Type", "application/sdp")
        invite.body = offer("127.0.0.2", 4000)
        response = await a_endpoint.request(invite, rec.sip)
        assert response.code == 404
        assert "no call route" in (response.headers.get("Warning") or "")
