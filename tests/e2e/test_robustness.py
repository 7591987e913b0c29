"""Hostile and broken SIP against a running recorder, while a good call is recorded.

Raw UDP datagrams and raw TCP streams, written by hand (not with callvault's
own SIP stack), each get the precise answer RFC 3261 asks for: 400 for a
malformed request or body, 415 for a body type we cannot use, 488 for an
offer we cannot record, always with a ``Warning: 399`` naming the problem;
what cannot be answered (no Call-ID, garbage, a TCP stream that cannot be
framed) is dropped, and a TCP connection whose framing is lost is closed.
Through all of it the server keeps answering OPTIONS and the good call's
recording keeps its tones. Also: BYE and CANCEL outside any dialog or
transaction (481), CANCEL of an INVITE still being processed, and a hold by
re-INVITE with ``c=IN IP4 0.0.0.0`` that is cut out of the recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

import callvault.demo.client as demo_client
from callvault.demo.client import CallPlan, Participant
from callvault.media.analysis import tone_spans
from callvault.media.tones import sine
from tests.e2e.harness import Recorder, running_recorder

USER_HZ, OTHER_HZ = 440.0, 1000.0
SILENT_WAIT = 1.0  # how long "no answer" is waited for


def _covered(spans: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in spans)


# -- a hand-written SIP peer -------------------------------------------------------------


@dataclass
class Reply:
    code: int
    reason: str
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str:
        return ", ".join(self.headers.get(name.lower(), []))

    @property
    def call_id(self) -> str:
        return self.header("call-id")


def parse_reply(data: bytes) -> Reply:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    _version, code, reason = [*lines[0].split(" ", 2), ""][:3]
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return Reply(int(code), reason, headers, body)


class _UdpPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[Reply] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a datagram endpoint's (uvloop's does not subclass asyncio.DatagramTransport)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.startswith(b"SIP/2.0 "):
            self.replies.put_nowait(parse_reply(data))


@dataclass
class Peer:
    """Sends raw bytes over UDP or one TCP connection, collects the responses."""

    transport: str
    server: tuple[str, int]
    port: int = 0
    _udp: _UdpPeer | None = None
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _pending: list[Reply] = field(default_factory=list)

    @classmethod
    async def open(cls, transport: str, server: tuple[str, int]) -> Peer:
        loop = asyncio.get_running_loop()
        peer = cls(transport, server)
        if transport == "udp":
            _, proto = await loop.create_datagram_endpoint(_UdpPeer, local_addr=("127.0.0.1", 0))
            peer._udp = proto
            assert proto.transport is not None
            peer.port = proto.transport.get_extra_info("sockname")[1]
        else:
            peer._reader, peer._writer = await asyncio.open_connection(*server)
            peer.port = peer._writer.get_extra_info("sockname")[1]
        return peer

    def send(self, data: bytes) -> None:
        if self._udp is not None:
            assert self._udp.transport is not None
            self._udp.transport.sendto(data, self.server)
        else:
            assert self._writer is not None
            self._writer.write(data)

    async def _next(self, timeout: float) -> Reply | None:
        """The next response, or None when the server closed a TCP connection."""
        if self._udp is not None:
            return await asyncio.wait_for(self._udp.replies.get(), timeout)
        assert self._reader is not None
        head = await asyncio.wait_for(self._reader.readuntil(b"\r\n\r\n"), timeout)
        reply = parse_reply(head)
        length = int(reply.header("content-length") or 0)
        if length:
            reply.body = await asyncio.wait_for(self._reader.readexactly(length), timeout)
        return reply

    async def final(self, call_id: str, timeout: float = 15.0) -> Reply:
        """The first final (>= 200) response for ``call_id``; provisional ones are skipped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for reply in self._pending:
                if reply.call_id == call_id and reply.code >= 200:
                    self._pending.remove(reply)
                    return reply
            heard = await self._next(max(0.01, deadline - loop.time()))
            assert heard is not None
            self._pending.append(heard)

    async def silence(self, wait: float = SILENT_WAIT) -> None:
        """Assert nothing at all comes back within ``wait`` (each case has its own peer)."""
        with contextlib.suppress(TimeoutError):
            reply = await self._next(wait)
            assert reply is None, (reply.code, reply.reason, reply.headers)

    async def closed_by_server(self, timeout: float = 10.0) -> bool:
        assert self._reader is not None
        try:
            data = await asyncio.wait_for(self._reader.read(65536), timeout)
        except (ConnectionResetError, BrokenPipeError):
            return True
        return data == b""

    async def close(self) -> None:
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()


def request(
    peer: Peer,
    method: str,
    *,
    call_id: str | None,
    body: bytes = b"",
    content_type: str | None = None,
    siprec: bool = True,
    content_length: str | None = None,
    to_tag: str | None = None,
    cseq: int = 1,
    branch: str | None = None,
    extra: tuple[str, ...] = (),
) -> bytes:
    """A request written by hand; ``call_id=None`` leaves the Call-ID out."""
    host, port = peer.server
    transport = peer.transport.upper()
    lines = [
        f"{method} sip:srs@{host}:{port};transport={peer.transport} SIP/2.0",
        f"Via: SIP/2.0/{transport} 127.0.0.1:{peer.port};branch="
        f"{branch or 'z9hG4bK' + secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: <sip:src@127.0.0.1>;tag={secrets.token_hex(4)}",
        f"To: <sip:srs@{host}>" + (f";tag={to_tag}" if to_tag else ""),
        f"CSeq: {cseq} {method}",
    ]
    if call_id is not None:
        lines.append(f"Call-ID: {call_id}")
    contact = f"<sip:src@127.0.0.1:{peer.port};transport={peer.transport}>"
    if siprec:
        lines += [f"Contact: {contact};+sip.src", "Require: siprec"]
    else:
        lines.append(f"Contact: {contact}")
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    lines += list(extra)
    lines.append(f"Content-Length: {content_length or len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def ack_for(peer: Peer, invite: bytes, reply: Reply) -> bytes:
    """The ACK for a non-2xx final response (RFC 3261 section 17.1.1.3)."""
    head = invite.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    keep = {"via", "from", "call-id", "max-forwards"}
    lines = [head[0].replace("INVITE", "ACK", 1)]
    lines += [line for line in head[1:] if line.split(":", 1)[0].lower() in keep]
    cseq = next(line for line in head if line.lower().startswith("cseq:"))
    lines += [f"To: {reply.header('to')}", cseq.replace("INVITE", "ACK"), "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def sdp(port: int = 40000, codecs: str = "0 101", extra: str = "") -> bytes:
    rtpmaps = {
        "0": "a=rtpmap:0 PCMU/8000",
        "3": "a=rtpmap:3 GSM/8000",
        "96": "a=rtpmap:96 AMR/8000",
        "101": "a=rtpmap:101 telephone-event/8000",
    }
    lines = [
        "v=0",
        "o=src 1 1 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio {port} RTP/AVP {codecs}",
        *(rtpmaps[pt] for pt in codecs.split()),
        "a=label:1",
        "a=sendonly",
    ]
    return ("\r\n".join(lines) + "\r\n" + extra).encode()


METADATA = (
    b'<?xml version="1.0" encoding="UTF-8"?>\r\n'
    b'<recording xmlns="urn:ietf:params:xml:ns:recording:1">'
    b"<datamode>complete</datamode>"
    b'<participant participant_id="p1"><nameID aor="sip:carol@acme.example"/></participant>'
    b"</recording>\r\n"
)

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\r\n'
    b"<!DOCTYPE recording [\r\n"
    b' <!ENTITY lol "lol">\r\n'
    + b"".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\r\n'.encode()
        for i in range(1, 10)
    )
    + b"]>\r\n"
    b'<recording xmlns="urn:ietf:params:xml:ns:recording:1">'
    b'<participant participant_id="p1"><nameID aor="sip:alice@acme.example">'
    b"<name>&lol9;</name></nameID></participant></recording>\r\n"
)


def multipart(*parts: tuple[str, bytes], boundary: str = "xyz", close: bool = True) -> bytes:
    out = b""
    for content_type, body in parts:
        out += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + body + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if close else b"")


MIXED = "multipart/mixed;boundary=xyz"


@dataclass
class Case:
    """One bad INVITE and the answer it must get (None: dropped without answer)."""

    name: str
    build: Callable[[Peer, str], bytes]
    status: int | None
    warning: str | None = None  # a substring of the Warning header
    transports: tuple[str, ...] = ("udp", "tcp")
    tcp_closes: bool = False  # the stream cannot be framed: the server drops the connection


CASES = [
    Case(
        "garbage",
        lambda p, cid: b"\x00\xff\x13 this is no SIP at all " + cid.encode() + b"\r\n\r\n",
        None,
        tcp_closes=True,
    ),
    Case(
        "missing Call-ID",  # a response could not even be addressed
        lambda p, cid: request(
            p, "INVITE", call_id=None, body=sdp(), content_type="application/sdp"
        ),
        None,
    ),
    Case(
        "non-numeric Content-Length",
        lambda p, cid: request(
            p, "INVITE", call_id=cid, body=sdp(), content_type="application/sdp",
            content_length="12abc",
        ),
        400,
        "Content-Length",
        tcp_closes=True,
    ),
    Case(
        "Content-Length beyond the datagram",
        lambda p, cid: request(
            p, "INVITE", call_id=cid, body=sdp(), content_type="application/sdp",
            content_length=str(len(sdp()) + 100),
        ),
        400,
        "Content-Length",
        transports=("udp",),  # on TCP it only means "more to come"
    ),
    Case(
        "multipart without its boundary",
        lambda p, cid: request(
            p, "INVITE", call_id=cid, content_type=MIXED,
            body=multipart(("application/sdp", sdp()), boundary="other"),
        ),
        400,
        "boundary",
    ),
    Case(
        "multipart truncated inside the SDP",
        lambda p, cid: request(
            p, "INVITE", call_id=cid, content_type=MIXED,
            body=multipart(("application/sdp", sdp()), close=False).split(b" RTP/AVP")[0],
        ),
        400,
        "m=",
    ),
    Case(
        "SDP garbage",
        lambda p, cid: request(
            p, "INVITE", call_id=cid, content_type="application/sdp",
            body=b"hello\r\nthis is not SDP\r\n",
        ),
        400,
        "bad SDP",
    ),
    Case(
        "billion laughs in the metadata",
        lambda p, cid: request(
            p, "INVITE", call_id=cid, content_type=MIXED,
            body=multipart(
                ("application/sdp", sdp()), ("application/rs-metadata+xml", BILLION_LAUGHS)
            ),
        ),
        400,
        "forbidden XML construct",
    ),
    Case(
        "no SIPREC markers",
        lambda p, cid: request(
            p, "INVITE", call_id=cid, body=sdp(), content_type="application/sdp", siprec=False
        ),
        488,
        "not a SIPREC session",
    ),
    Case(
        "only unrecordable codecs",
        lambda p, cid: request(
            p, "INVITE", call_id=cid, content_type=MIXED,
            body=multipart(
                ("application/sdp", sdp(codecs="3 96")),
                ("application/rs-metadata+xml", METADATA),
            ),
        ),
        488,
        "no recordable audio stream: offered codecs audio GSM, audio AMR",
    ),
    Case(
        "unusable body type",
        lambda p, cid: request(
            p, "INVITE", call_id=cid, content_type="text/plain", body=b"record me, please\r\n"
        ),
        415,
        "text/plain",
    ),
]  # fmt: skip


async def _options_ok(rec: Recorder, transport: str) -> None:
    peer = await Peer.open(transport, rec.sip)
    try:
        call_id = f"options-{uuid.uuid4().hex}"
        peer.send(request(peer, "OPTIONS", call_id=call_id, siprec=False))
        reply = await peer.final(call_id)
        assert reply.code == 200, (transport, reply.code, reply.reason)
        assert "INVITE" in reply.header("allow")
    finally:
        await peer.close()


async def _check_case(rec: Recorder, case: Case, transport: str) -> None:
    label = f"{case.name} over {transport}"
    peer = await Peer.open(transport, rec.sip)
    try:
        call_id = f"bad-{uuid.uuid4().hex}"
        data = case.build(peer, call_id)
        peer.send(data)
        if transport == "tcp" and case.tcp_closes:
            assert await peer.closed_by_server(), f"{label}: connection left open"
            return
        if case.status is None:
            await peer.silence()
            if transport == "tcp":  # the connection still serves requests
                ok = f"options-{uuid.uuid4().hex}"
                peer.send(request(peer, "OPTIONS", call_id=ok, siprec=False))
                assert (await peer.final(ok)).code == 200, label
            return
        reply = await peer.final(call_id)
        assert reply.code == case.status, (label, reply.code, reply.reason, reply.headers)
        warning = reply.header("warning")
        assert warning.startswith("399 "), (label, reply.headers)
        assert case.warning is not None and case.warning in warning, (label, warning)
        assert reply.header("to").count("tag=") == 1, (label, reply.header("to"))
        if data.startswith(b"INVITE"):
            peer.send(ack_for(peer, data, reply))
    finally:
        await peer.close()
    assert call_id not in rec.app.calls.calls, f"{label}: a call was created"


def _good_plan(seconds: float) -> CallPlan:
    return CallPlan(
        caller=Participant("sip:alice@acme.example", "Alice", sine(USER_HZ, seconds)),
        callee=Participant("sip:+31612345678@pstn.example", "Customer", sine(OTHER_HZ, seconds)),
        duration_s=seconds,
    )


async def _assert_good_recording(rec: Recorder, recording_id: str | None, seconds: float) -> None:
    assert recording_id is not None
    pcm, rate, _ = await rec.audio(recording_id)
    left, right = pcm[0], pcm[1]
    duration = left.shape[0] / rate
    assert seconds - 0.5 < duration < seconds + 1.5, duration
    assert _covered(tone_spans(left, rate, USER_HZ), 0.2, duration - 0.2) > duration - 1.0
    assert _covered(tone_spans(right, rate, OTHER_HZ), 0.2, duration - 0.2) > duration - 1.0
    assert _covered(tone_spans(left, rate, OTHER_HZ), 0, duration) < 0.1
    assert _covered(tone_spans(right, rate, USER_HZ), 0, duration) < 0.1


async def test_malformed_requests_get_precise_answers_during_a_good_call(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        seconds = 8.0
        good = asyncio.ensure_future(rec.client.place(_good_plan(seconds)))
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while not rec.app.calls.calls and loop.time() < deadline:
                await asyncio.sleep(0.05)  # the good call is up: the bad traffic meets it
            assert rec.app.calls.calls, "the good call was not answered"
            for case in CASES:
                for transport in case.transports:
                    await _check_case(rec, case, transport)
            for transport in ("udp", "tcp"):
                await _options_ok(rec, transport)
            result = await asyncio.wait_for(good, seconds + 30)
        finally:
            if not good.done():
                good.cancel()
        assert result.status == 200, result
        [(_call, recording_id)] = await rec.wait_finished(timeout=60)
        await _assert_good_recording(rec, recording_id, seconds)
        assert rec.app.calls.calls == {}


async def test_bye_and_cancel_outside_a_dialog_get_481(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        for transport in ("udp", "tcp"):
            peer = await Peer.open(transport, rec.sip)
            try:
                for method in ("BYE", "CANCEL"):
                    call_id = f"nodialog-{uuid.uuid4().hex}"
                    tag = secrets.token_hex(4) if method == "BYE" else None
                    peer.send(request(peer, method, call_id=call_id, to_tag=tag, siprec=False))
                    reply = await peer.final(call_id)
                    assert reply.code == 481, (transport, method, reply.code, reply.reason)
            finally:
                await peer.close()
        await _options_ok(rec, "udp")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_cancel_of_a_pending_invite(tmp_path: Path, transport: str) -> None:
    """INVITE and CANCEL back to back: the CANCEL is handled while the INVITE is.

    RFC 3261 section 9.2: CANCEL gets 200, the INVITE 487, and the session
    must not exist afterwards (no call, no RTP ports, no recording).
    """
    async with running_recorder(tmp_path) as rec:
        peer = await Peer.open(transport, rec.sip)
        try:
            call_id = f"cancel-{uuid.uuid4().hex}"
            branch = "z9hG4bK" + secrets.token_hex(8)
            body = multipart(("application/sdp", sdp()), ("application/rs-metadata+xml", METADATA))
            invite = request(
                peer, "INVITE", call_id=call_id, content_type=MIXED, body=body, branch=branch
            )
            head = invite.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
            keep = {"via", "from", "to", "call-id", "max-forwards"}
            cancel_lines = [head[0].replace("INVITE", "CANCEL", 1)]
            cancel_lines += [line for line in head[1:] if line.split(":")[0].lower() in keep]
            cancel_lines += ["CSeq: 1 CANCEL", "Content-Length: 0"]
            cancel = ("\r\n".join(cancel_lines) + "\r\n\r\n").encode()
            if transport == "tcp":
                peer.send(invite + cancel)  # one segment: both framed in one read
            else:
                peer.send(invite)
                peer.send(cancel)
            replies: list[Reply] = []
            while len([r for r in replies if r.code >= 200]) < 2:
                reply = await peer._next(15)
                assert reply is not None
                replies.append(reply)
            finals = {r.header("cseq"): r.code for r in replies if r.code >= 200}
            if finals.get("1 INVITE") == 200:
                pytest.fail(f"INVITE answered 200 although cancelled: {finals}")
            assert finals == {"1 CANCEL": 200, "1 INVITE": 487}, finals
            invite_final = next(r for r in replies if r.header("cseq") == "1 INVITE")
            peer.send(ack_for(peer, invite, invite_final))
            # no stray 200 for the INVITE may follow the 487
            with contextlib.suppress(TimeoutError):
                while True:
                    late = await peer._next(1.0)
                    assert late is None or late.code != 200, (late.code, late.header("cseq"))
        finally:
            await peer.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3
        while rec.app.calls.calls and loop.time() < deadline:
            await asyncio.sleep(0.1)
        assert rec.app.calls.calls == {}, "the cancelled INVITE left a live call behind"


async def test_415_lists_the_accepted_body_types(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        peer = await Peer.open("udp", rec.sip)
        try:
            call_id = f"415-{uuid.uuid4().hex}"
            invite = request(
                peer, "INVITE", call_id=call_id, content_type="text/plain", body=b"hello\r\n"
            )
            peer.send(invite)
            reply = await peer.final(call_id)
            peer.send(ack_for(peer, invite, reply))
        finally:
            await peer.close()
    assert reply.code == 415
    accepted = {t.strip() for t in reply.header("accept").split(",")}
    assert {"application/sdp", "multipart/mixed"} <= accepted, reply.headers


async def test_rtp_port_held_by_another_process_is_skipped(tmp_path: Path) -> None:
    """The RTP range is shared with the rest of the host: a busy port must not hang the INVITE.

    Either the recorder takes the next free port and records (best), or it
    answers 503 at once; it must never leave the INVITE unanswered.
    """
    async with running_recorder(tmp_path) as rec:
        first_port = rec.app.calls.ports.start  # the port the next call's first stream gets
        squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            squatter.bind((rec.app.settings.media_address, first_port))
            result = await asyncio.wait_for(rec.client.place(_good_plan(2.0)), 8)
        finally:
            squatter.close()
        assert result.status in (200, 503), result
        if result.status == 200:
            [(_call, recording_id)] = await rec.wait_finished(timeout=60)
            await _assert_good_recording(rec, recording_id, 2.0)
        assert rec.app.calls.calls == {}


async def test_hold_by_null_connection_address_is_cut_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 3264 section 8.4 hold, old style: a re-INVITE with ``c=IN IP4 0.0.0.0``.

    The demo client pauses with ``a=inactive``; here its SDP builder is
    wrapped so that the pause re-INVITE keeps ``sendonly`` and nulls the
    connection address instead. The SRC stops sending while on hold.
    """
    original = demo_client.sdp_offer

    def null_address_hold(
        local_ip: str,
        ports: tuple[int, int],
        pt: int,
        direction: str,
        version: int,
        keys: tuple[bytes, ...] = (),
    ) -> str:
        if direction != "inactive":
            return original(local_ip, ports, pt, direction, version, keys)
        body = original(local_ip, ports, pt, "sendonly", version, keys)
        return body.replace(f"c=IN IP4 {local_ip}", "c=IN IP4 0.0.0.0")

    monkeypatch.setattr(demo_client, "sdp_offer", null_address_hold)
    async with running_recorder(tmp_path) as rec:
        plan = _good_plan(6.0)
        plan.pause = (2.0, 4.0)
        result = await rec.client.place(plan)
        assert result.status == 200, result
        [(_call, recording_id)] = await rec.wait_finished(timeout=60)
        assert recording_id is not None
        meta = await rec.recording(recording_id)
        pcm, rate, _ = await rec.audio(recording_id)

    segments = meta["segments"]
    assert len(segments) == 2, segments
    first, second = segments
    gap = second["call_start_ms"] - first["call_end_ms"]
    assert 1400 <= gap <= 2800, segments  # the 2 s hold, give or take signalling
    assert first["file_end_ms"] == second["file_start_ms"], segments  # cut, not silence
    duration = pcm.shape[1] / rate
    assert 3.4 < duration < 5.0, duration  # 6 s call less the 2 s hold
    left, right = pcm[0], pcm[1]
    assert _covered(tone_spans(left, rate, USER_HZ), 0.2, duration - 0.2) > duration - 1.2
    assert _covered(tone_spans(right, rate, OTHER_HZ), 0.2, duration - 0.2) > duration - 1.2
