"""The B2BUA end to end with our own SIP stack as the phones (baresip: test_b2bua_calls).

Our own stack lets a test send what baresip cannot: a re-INVITE asserting a
new party (a transfer the PBX carried out) and an attended transfer's REFER.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sipmessage import URI, Request, Response

from callvault.b2bua.route_store import add_route
from callvault.db.engine import make_engine, make_sessionmaker
from callvault.db.models import Tenant
from callvault.live.listen import FRAME_HEADER, ListenHub, Listening
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


def seed_bridge(rec: Recorder, b_port: int, *, after_transfer: bool = False, **route: str) -> None:
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
        tenant = session.get(Tenant, rec.tenant_id)
        assert tenant is not None
        tenant.announce_after_transfer = after_transfer
        session.commit()
    engine.dispose()
    rec.app.reload_directory()


def ignore(request: IncomingRequest) -> None:
    del request


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


class PhoneB:
    """The called phone: answers INVITEs (also re-INVITEs) with its own SDP, keeps
    what it got, and can send in-dialog requests of its own."""

    def __init__(self, media: PhoneMedia, host: str) -> None:
        self.media = media
        self.host = host
        self.invites: list[IncomingRequest] = []
        self.requests: list[Request] = []
        self.byes: list[Request] = []
        self.endpoint: SipEndpoint | None = None
        self.dialog: Dialog | None = None

    def handle(self, request: IncomingRequest) -> None:
        method = request.message.method
        if method == "ACK":
            return
        self.requests.append(request.message)
        if method == "INVITE":
            self.invites.append(request)
            self.media.remote = media_target(bytes(request.message.body))
            assert self.endpoint is not None
            contact = f"<sip:bob@{self.host}:{self.endpoint.udp_port}>"
            if self.dialog is None:
                self.dialog = Dialog.from_incoming_invite(request.message, request.to_tag, contact)
            request.respond(
                200,
                headers=[("Contact", contact)],
                body=offer(self.host, self.media.port),
                content_type="application/sdp",
                to_tag=self.dialog.local_tag,
            )
        elif method == "BYE":
            self.byes.append(request.message)
            request.respond(200)
        elif method == "REFER":
            request.respond(202, "Accepted")
        else:
            request.respond(200)


@dataclass
class Bridged:
    rec: Recorder
    a: SipEndpoint
    b: PhoneB
    dialog: Dialog  # phone A's
    media_a: PhoneMedia
    media_b: PhoneMedia


@asynccontextmanager
async def bridged_call(
    tmp_path: Path, seconds: float, *, after_transfer: bool = False
) -> AsyncIterator[Bridged]:
    """Phone A (alice, a recorded user, mode always) calls +31612345678 through
    callvault to phone B; both start sending their tones."""
    loop = asyncio.get_running_loop()
    media_a, media_b = PhoneMedia(A_HZ, seconds), PhoneMedia(B_HZ, seconds)
    await loop.create_datagram_endpoint(lambda: media_a, local_addr=("127.0.0.2", 0))
    await loop.create_datagram_endpoint(lambda: media_b, local_addr=("127.0.0.3", 0))
    b = PhoneB(media_b, "127.0.0.3")
    a_requests: list[Request] = []

    def a_handler(request: IncomingRequest) -> None:
        if request.message.method == "ACK":
            return
        a_requests.append(request.message)
        if request.message.method == "INVITE":
            media_a.remote = media_target(bytes(request.message.body))
            request.respond(
                200, body=offer("127.0.0.2", media_a.port), content_type="application/sdp"
            )
        elif request.message.method == "REFER":
            request.respond(202, "Accepted")
        else:
            request.respond(200)

    async with (
        running_recorder(tmp_path) as rec,
        phone("127.0.0.2", a_handler) as a_endpoint,
        phone("127.0.0.3", b.handle) as b_endpoint,
    ):
        b.endpoint = b_endpoint
        seed_bridge(rec, b_endpoint.udp_port or 0, after_transfer=after_transfer)
        invite = Request(method="INVITE", uri=URI.parse("sip:+31612345678@trunk.example"))
        h = invite.headers
        h.add("From", "<sip:alice@acme.example>;tag=a1")
        h.add("To", "<sip:+31612345678@trunk.example>")
        h.add("Call-ID", f"bridge-{random.randrange(10**9)}@127.0.0.2")
        h.add("CSeq", "1 INVITE")
        h.add("Contact", f"<sip:alice@127.0.0.2:{a_endpoint.udp_port}>")
        h.add("Content-Type", "application/sdp")
        invite.body = offer("127.0.0.2", media_a.port)
        response: Response = await a_endpoint.request(invite, rec.sip)
        assert response.code == 200, response.code
        dialog = Dialog.from_outgoing_invite(invite, response)
        a_endpoint.send_ack(response, dialog)
        media_a.remote = media_target(bytes(response.body))
        call = Bridged(rec, a_endpoint, b, dialog, media_a, media_b)
        call.a_requests = a_requests  # type: ignore[attr-defined]
        yield call


def loud(pcm: np.ndarray, freq: float, rate: int = 8000) -> float:
    return goertzel_power(pcm, rate, freq)


async def test_a_bridged_call_relays_both_ways_announces_and_is_recorded(tmp_path: Path) -> None:
    async with bridged_call(tmp_path, 6) as call:
        rec, media_a, media_b = call.rec, call.media_a, call.media_b
        assert media_a.remote is not None and media_a.remote[1] != media_b.port  # anchored
        assert len(call.b.invites) == 1
        assert str(call.b.invites[0].message.uri).startswith("sip:+31612345678@trunk.example")
        await asyncio.gather(media_a.run(), media_b.run())
        bye = call.dialog.create_request("BYE")
        assert (await call.a.request(bye, rec.sip)).code == 200
        [(call_id, recording_id)] = await rec.wait_finished(1, timeout=60)
        assert recording_id is not None
        for _ in range(50):
            if call.b.byes:
                break
            await asyncio.sleep(0.05)
        assert call.b.byes, "leg b was not ended"

        heard_by_b, heard_by_a = media_b.audio(), media_a.audio()
        # B hears A's tone, after the start prompt (the prompt replaces A's audio first)
        tail = heard_by_b[-8000:]
        assert loud(tail, A_HZ) > 100 * loud(tail, B_HZ)
        assert loud(heard_by_b[:4000], A_HZ) < 0.1 * loud(tail, A_HZ)
        # A hears B's tone
        assert loud(heard_by_a[-8000:], B_HZ) > 100 * loud(heard_by_a[-8000:], A_HZ)
        meta = await rec.recording(recording_id)
        sides = {p["aor"]: p["side"] for p in meta["parties"]}
        assert sides["sip:alice@acme.example"] == "user"
        assert meta["user_id"] == rec.users["alice"]
        pcm, rate, _ = await rec.audio(recording_id)
        left, right = pcm[0], pcm[1]
        mid = slice(rate * 2, rate * 4)
        assert loud(left[mid], A_HZ, rate) > 20 * loud(left[mid], B_HZ, rate)
        assert loud(right[mid], B_HZ, rate) > 20 * loud(right[mid], A_HZ, rate)
        # Reports list the bridged call like a SIPREC one
        calls = (await rec.http.get(f"/api/v1/tenants/{rec.tenant_id}/calls")).json()["items"]
        assert [c["id"] for c in calls] == [call_id]
        assert calls[0]["recording_ids"] == [recording_id]


async def test_a_reinvite_asserting_a_new_party_is_a_transfer_announced_again(
    tmp_path: Path,
) -> None:
    """The trunk's PBX transferred the call (B to C) itself and says so with a
    re-INVITE carrying C's identity: one conversation, C in its parties, and C
    (on B's leg) hears the start prompt again, the tenant having asked for it."""
    async with bridged_call(tmp_path, 8, after_transfer=True) as call:
        rec, b = call.rec, call.b
        sending = asyncio.gather(call.media_a.run(), call.media_b.run())
        await asyncio.sleep(4.0)
        assert b.dialog is not None and b.endpoint is not None
        before = len(call.media_b.heard)
        reinvite = b.dialog.create_request(
            "INVITE",
            offer("127.0.0.3", call.media_b.port),
            "application/sdp",
            headers=[("P-Asserted-Identity", "<sip:+31698765432@trunk.example>")],
        )
        answer = await b.endpoint.request(reinvite, rec.sip)
        assert answer.code == 200
        b.endpoint.send_ack(answer, b.dialog)
        await sending
        bye = call.dialog.create_request("BYE")
        assert (await call.a.request(bye, rec.sip)).code == 200
        [(_call_id, recording_id)] = await rec.wait_finished(1, timeout=60)
        assert recording_id is not None
        meta = await rec.recording(recording_id)
        aors = [p["aor"] for p in meta["parties"]]
        assert "sip:+31612345678@trunk.example" in aors and "sip:+31698765432@trunk.example" in aors
        # after the re-INVITE, B's side first hears the prompt instead of A's tone
        after = ULAW_TABLE[
            np.frombuffer(b"".join(p for _, p in call.media_b.heard[before:]), np.uint8)
        ]
        first, later = after[:4000], after[-4000:]
        assert loud(later, A_HZ) > 100 * loud(later, B_HZ)
        assert loud(first, A_HZ) < 0.1 * loud(later, A_HZ)


async def test_an_attended_transfer_is_passed_to_the_other_leg(tmp_path: Path) -> None:
    """REFER with Replaces names a dialog only the PBX knows: callvault passes it on
    and brings the answer back."""
    async with bridged_call(tmp_path, 2) as call:
        rec, b = call.rec, call.b
        assert b.dialog is not None and b.endpoint is not None
        refer = b.dialog.create_request(
            "REFER",
            headers=[
                (
                    "Refer-To",
                    "<sip:+31611112222@trunk.example?Replaces=abc%40pbx%3Bto-tag%3D1%3Bfrom-tag%3D2>",
                ),
                ("Referred-By", "<sip:+31612345678@trunk.example>"),
            ],
        )
        response = await b.endpoint.request(refer, rec.sip)
        assert response.code == 202
        refers = [m for m in call.a_requests if m.method == "REFER"]  # type: ignore[attr-defined]
        assert len(refers) == 1
        assert "Replaces=" in refers[0].headers["Refer-To"]
        assert refers[0].headers.get("Referred-By") == "<sip:+31612345678@trunk.example>"
        bye = call.dialog.create_request("BYE")
        assert (await call.a.request(bye, rec.sip)).code == 200
        await rec.wait_finished(1, timeout=60)


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


async def test_a_bridged_call_is_heard_live_user_left_other_right(tmp_path: Path) -> None:
    """LiveCenter's listening works on B2BUA calls as on SIPREC ones: with a listener
    the relay's tap leaves its native path for the receiver's, which feeds the
    listener; alice (the user) is heard left, the other party right."""
    async with bridged_call(tmp_path, 4) as call:
        [recorded] = list(call.rec.app.calls.calls.values())
        assert recorded.bridged
        hub = ListenHub(asyncio.get_running_loop())
        subscriber = hub.subscribe(recorded, Listening("both"))
        sending = asyncio.gather(call.media_a.run(), call.media_b.run())
        frames: list[bytes] = []
        while not sending.done():
            try:
                frame = await asyncio.wait_for(subscriber.queue.get(), 0.5)
            except TimeoutError:
                continue
            if frame is not None:
                frames.append(frame)
        await sending
        hub.unsubscribe(recorded, subscriber)
        bye = call.dialog.create_request("BYE")
        assert (await call.a.request(bye, call.rec.sip)).code == 200
        await call.rec.wait_finished(1, timeout=60)
    pcm = np.concatenate(
        [np.frombuffer(f[FRAME_HEADER.size :], "<i2").reshape(-1, 2) for f in frames]
    )
    assert len(pcm) > 8000 * 2, len(pcm)  # seconds of live audio, not a stray frame
    left, right = pcm[-8000:, 0], pcm[-8000:, 1]
    assert loud(left, A_HZ) > 100 * loud(left, B_HZ)
    assert loud(right, B_HZ) > 100 * loud(right, A_HZ)
