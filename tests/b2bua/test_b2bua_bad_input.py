"""Bad input to the B2BUA gets a precise SIP error at once, and other calls go on (issue 10).

- an INVITE from an address no source was registered for: one 403 (nothing
  else: no 100 Trying, no dialog);
- an INVITE from a registered PBX whose number no route matches: 404 or 480
  with a Warning saying why, at once (well under a second);
- a codec mismatch: the far phone (baresip, PCMA only) cannot take the
  caller's PCMU-only offer: the caller gets 488;
- then a normal call (sipp UAC and UAS) through the same server succeeds.

The bad calls are sent by a few lines of UDP here: their answers are what
is checked, so no SIP stack is needed to send them.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from pathlib import Path

import pytest

from tests.b2bua.harness import (
    SIPP_PBX_ADDRESS,
    SIPP_TRUNK_ADDRESS,
    STRANGER_ADDRESS,
    TRUNK_ADDRESS,
    Leg,
    running_b2bua,
)
from tests.b2bua.phones import TONE_B_HZ, Phone, tone
from tests.b2bua.sippx import pair, start, uas

pytestmark = [
    pytest.mark.peer("sipp", why="Debian package sip-tester"),
    pytest.mark.peer("baresip", why="Debian package baresip-core: the phones"),
]

B_NUMBER = "+31612345678"
NOWHERE = "+4930123456"


def _invite(local: tuple[str, int], server: tuple[str, int], user: str, codec: str) -> bytes:
    branch = f"z9hG4bK{random.getrandbits(48):x}"
    pt, name = {"PCMU": (0, "PCMU/8000"), "PCMA": (8, "PCMA/8000")}[codec]
    sdp = (
        f"v=0\r\no=- 1 1 IN IP4 {local[0]}\r\ns=-\r\nc=IN IP4 {local[0]}\r\nt=0 0\r\n"
        f"m=audio {local[1] + 2} RTP/AVP {pt}\r\na=rtpmap:{pt} {name}\r\na=sendrecv\r\n"
    )
    return (
        f"INVITE sip:{user}@{server[0]}:{server[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={branch};rport\r\n"
        f"From: <sip:alice@acme.example>;tag={random.getrandbits(32):x}\r\n"
        f"To: <sip:{user}@{server[0]}>\r\n"
        f"Call-ID: bad-{random.getrandbits(64):x}@{local[0]}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:alice@{local[0]}:{local[1]}>\r\n"
        "Max-Forwards: 70\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(sdp)}\r\n\r\n{sdp}"
    ).encode()


def _ack(invite: bytes, final: bytes) -> bytes:
    """The ACK of a non-2xx final answer (RFC 3261 17.1.1.3: same branch, the answer's To)."""
    head = invite.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    to = next(h for h in final.split(b"\r\n") if h.lower().startswith(b"to:"))
    lines = [head[0].replace(b"INVITE", b"ACK", 1)]
    for h in head[1:]:
        if h.lower().startswith(b"to:"):
            lines.append(to)
        elif h.lower().startswith(b"cseq:"):
            lines.append(b"CSeq: 1 ACK")
        elif h.lower().startswith((b"via:", b"from:", b"call-id:", b"max-forwards:")):
            lines.append(h)
    return b"\r\n".join([*lines, b"Content-Length: 0", b"", b""])


def _call(address: str, server: tuple[str, int], user: str, codec: str = "PCMU") -> list[bytes]:
    """Send one INVITE from ``address``; every answer until a final one (or 8 s)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 0))
    sock.settimeout(0.5)
    invite = _invite(sock.getsockname(), server, user, codec)
    answers: list[bytes] = []
    deadline = time.monotonic() + 8
    sock.sendto(invite, server)
    try:
        while time.monotonic() < deadline:
            try:
                data, _peer = sock.recvfrom(65536)
            except TimeoutError:
                if not answers:  # UDP: retransmit as Timer A would (stateless 403 included)
                    sock.sendto(invite, server)
                continue
            answers.append(data)
            code = int(data.split(b" ", 2)[1])
            if code >= 200:
                sock.sendto(_ack(invite, data), server)
                break
    finally:
        sock.close()
    return answers


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _header(answer: bytes, name: str) -> str:
    for line in answer.decode(errors="replace").split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return ""


async def test_bad_calls_get_precise_errors_and_good_ones_go_on(tmp_path: Path) -> None:
    b = Phone(
        tmp_path / "b", f"sip:{B_NUMBER}@pstn.example", TRUNK_ADDRESS, tone(TONE_B_HZ, 20),
        codecs="PCMA",
    )  # fmt: skip
    b.configure()
    far = await uas(tmp_path, "uas_ring_answer", SIPP_TRUNK_ADDRESS)
    legs = [
        # the PBX: calls to B's number go to the PCMA-only phone, "+31" to sipp, nothing else
        Leg("pbx", "pbx", SIPP_PBX_ADDRESS, {B_NUMBER: b.contact, "+3162": far.contact}),
        Leg("trunk-b", "trunk", TRUNK_ADDRESS, {}),
        Leg("trunk-sipp", "trunk", SIPP_TRUNK_ADDRESS, {}),
    ]
    async with running_b2bua(tmp_path, legs) as cv, b:
        server = cv.sip

        stranger = await asyncio.to_thread(_call, STRANGER_ADDRESS, server, B_NUMBER)
        assert [_status(a) for a in stranger] == [403], stranger

        started = time.monotonic()
        nowhere = await asyncio.to_thread(_call, SIPP_PBX_ADDRESS, server, NOWHERE)
        elapsed = time.monotonic() - started
        final = nowhere[-1]
        assert _status(final) in (404, 480), nowhere
        assert _header(final, "Warning"), final  # says why: no route for the number
        assert elapsed < 1.0, elapsed

        mismatch = await asyncio.to_thread(_call, SIPP_PBX_ADDRESS, server, B_NUMBER, "PCMU")
        assert _status(mismatch[-1]) == 488, (mismatch, b.log())

        # other calls are undisturbed: a normal call to "+3162..." through the same server
        client = await start(
            tmp_path, "uac_call", SIPP_PBX_ADDRESS, remote=server, service="+31620000000"
        )
        codes, report = await pair(client, far)
        assert codes == [0, 0], report
