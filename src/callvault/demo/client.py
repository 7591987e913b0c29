"""A SIPREC recording client (SRC) for the demo, the tests and the benchmarks.

Plays the part of an SBC: sends a SIPREC INVITE (multipart SDP + RFC 7865
metadata) to callvault, streams one G.711 RTP stream per participant, can
pause and resume by re-INVITE (``a=inactive``), update the metadata by
UPDATE, send RFC 4733 digits, and hangs up with BYE. Uses callvault's own
SIP endpoint as the UAC, so it also exercises the client transactions.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from sipmessage import URI, CSeq, Request

from callvault.media.sender import Impairments, RtpSender
from callvault.media.srtp import SrtpStreamEncryptor
from callvault.sip.dialog import Dialog
from callvault.sip.endpoint import SipEndpoint
from callvault.sip.sdp import new_srtp_key, parse_sdp
from callvault.siprec.multipart import body_parts

BOUNDARY = "callvault-src-boundary"


@dataclass
class Participant:
    aor: str
    name: str
    audio: npt.NDArray[np.int16]
    digits: list[tuple[float, str]] = field(default_factory=list)  # (seconds, digit)
    impairments: Impairments | None = None
    participant_id: str = field(default_factory=lambda: secrets.token_hex(6))
    stream_id: str = field(default_factory=lambda: secrets.token_hex(6))


@dataclass
class CallPlan:
    caller: Participant
    callee: Participant
    duration_s: float
    pause: tuple[float, float] | None = None  # (start, end) seconds: a=inactive re-INVITE
    payload_type: int = 0  # 0 PCMU, 8 PCMA
    transport: str = "udp"
    # (seconds, caller, callee): a metadata-only UPDATE naming new participants
    metadata_update: tuple[float, Participant, Participant] | None = None
    info_digits: list[tuple[float, str]] = field(default_factory=list)  # SIP INFO dtmf-relay
    srtp: bool = False  # RTP/SAVP with SDES keys (RFC 4568), each stream encrypted


@dataclass
class CallResult:
    call_id: str
    status: int
    packets_sent: int = 0
    reason: str = ""
    declined: int = 0  # m-lines the recorder answered with port 0


def metadata_xml(session_id: str, caller: Participant, callee: Participant) -> str:
    def party(p: Participant) -> str:
        return (
            f'  <participant participant_id="{p.participant_id}">\n'
            f'    <nameID aor="{p.aor}"><name>{p.name}</name></nameID>\n'
            f"  </participant>\n"
        )

    def stream(p: Participant, label: int) -> str:
        return (
            f'  <stream stream_id="{p.stream_id}" session_id="{session_id}">'
            f"<label>{label}</label></stream>\n"
        )

    def assoc(p: Participant, other: Participant) -> str:
        return (
            f'  <participantstreamassoc participant_id="{p.participant_id}">'
            f"<send>{p.stream_id}</send><recv>{other.stream_id}</recv>"
            f"</participantstreamassoc>\n"
        )

    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<recording xmlns="urn:ietf:params:xml:ns:recording:1">\n'
        "  <datamode>complete</datamode>\n"
        f'  <session session_id="{session_id}"></session>\n'
        + party(caller)
        + party(callee)
        + stream(caller, 1)
        + stream(callee, 2)
        + assoc(caller, callee)
        + assoc(callee, caller)
        + "</recording>\n"
    )


SRTP_SUITE = "AES_CM_128_HMAC_SHA1_80"


def sdp_offer(
    local_ip: str,
    ports: tuple[int, int],
    pt: int,
    direction: str,
    version: int,
    keys: tuple[bytes, ...] = (),
) -> str:
    """The SRC's offer; with ``keys`` (one per stream) the streams are SRTP (SDES)."""
    codec = "PCMU" if pt == 0 else "PCMA"
    lines = [
        "v=0",
        f"o=src 4242 {version} IN IP4 {local_ip}",
        "s=SIPREC",
        f"c=IN IP4 {local_ip}",
        "t=0 0",
    ]
    for label, port in enumerate(ports, start=1):
        proto = "RTP/SAVP" if keys else "RTP/AVP"
        lines += [
            f"m=audio {port} {proto} {pt} 101",
            f"a=rtpmap:{pt} {codec}/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            f"a=label:{label}",
            f"a={direction}",
        ]
        if keys:
            inline = base64.b64encode(keys[label - 1]).decode("ascii")
            lines.append(f"a=crypto:1 {SRTP_SUITE} inline:{inline}")
    return "\r\n".join(lines) + "\r\n"


def multipart(sdp: str, metadata: str) -> bytes:
    return (
        f"--{BOUNDARY}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"
        f"--{BOUNDARY}\r\nContent-Type: application/rs-metadata+xml\r\n"
        f"Content-Disposition: recording-session\r\n\r\n{metadata}\r\n"
        f"--{BOUNDARY}--\r\n"
    ).encode()


class SiprecClient:
    """Places SIPREC calls against one recording server."""

    def __init__(
        self, endpoint: SipEndpoint, server: tuple[str, int], local_ip: str = "127.0.0.1"
    ) -> None:
        self.endpoint = endpoint
        self.server = server
        self.local_ip = local_ip
        self.tls_server: tuple[str, int] | None = None  # where to send over TLS

    def _request(
        self,
        method: str,
        call_id: str,
        cseq: int,
        from_tag: str,
        to_tag: str | None,
        uri: str,
        transport: str,
        body: bytes = b"",
        content_type: str | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> Request:
        request = Request(method, URI.parse(uri), body)
        h = request.headers
        h.add("Max-Forwards", "70")
        h.add("From", f"<sip:src@{self.local_ip}>;tag={from_tag}")
        h.add("To", f"<sip:srs@{self.server[0]}>" + (f";tag={to_tag}" if to_tag else ""))
        h.add("Call-ID", call_id)
        h.add("CSeq", str(CSeq(cseq, method)))
        port = self.endpoint.tcp_port if transport == "tcp" else self.endpoint.udp_port
        h.add("Contact", f"<sip:src@{self.local_ip}:{port};transport={transport}>;+sip.src")
        for name, value in extra or []:
            h.add(name, value)
        if content_type:
            h.add("Content-Type", content_type)
        return request

    async def place(self, plan: CallPlan) -> CallResult:
        call_id = f"{uuid.uuid4().hex}@{self.local_ip}"
        from_tag = secrets.token_hex(4)
        session_id = secrets.token_hex(8)
        meta = metadata_xml(session_id, plan.caller, plan.callee)
        server = self.tls_server if plan.transport == "tls" and self.tls_server else self.server
        uri = f"sip:srs@{server[0]}:{server[1]};transport={plan.transport}"
        keys = (new_srtp_key(SRTP_SUITE), new_srtp_key(SRTP_SUITE)) if plan.srtp else ()
        offer = sdp_offer(self.local_ip, (40000, 40002), plan.payload_type, "sendonly", 1, keys)
        invite = self._request(
            "INVITE",
            call_id,
            1,
            from_tag,
            None,
            uri,
            plan.transport,
            multipart(offer, meta),
            f"multipart/mixed;boundary={BOUNDARY}",
            [("Require", "siprec"), ("Supported", "timer"), ("Session-Expires", "1800")],
        )
        response = await self.endpoint.request(invite, server, plan.transport)
        if response.code != 200:
            return CallResult(call_id, response.code, reason=response.phrase)
        dialog = Dialog.from_outgoing_invite(invite, response)
        self.endpoint.send_ack(response, dialog)
        parts = body_parts(response.headers.get("Content-Type"), response.body)
        answer = parse_sdp(parts[0].body)
        host = answer.media[0].connection or self.server[0]
        pairs = [  # a declined m-line (port 0) gets no media (RFC 3264 section 6)
            (
                RtpSender(
                    party.audio,
                    host,
                    media.port,
                    plan.payload_type,
                    impairments=party.impairments,
                    protect=SrtpStreamEncryptor(SRTP_SUITE, keys[n]).protect if keys else None,
                ),
                party,
            )
            for n, (media, party) in enumerate(
                zip(answer.media, (plan.caller, plan.callee), strict=False)
            )
            if media.port != 0
        ]
        senders = [sender for sender, _party in pairs]
        declined = len(answer.media) - len(pairs)
        runs = [asyncio.ensure_future(s.run(until_done=False)) for s in senders]
        loop = asyncio.get_running_loop()
        start = loop.time()
        timeline: list[tuple[float, str, RtpSender | None, str]] = []
        for sender, party in pairs:
            timeline += [(at, "digit", sender, digit) for at, digit in party.digits]
        if plan.pause:
            timeline += [(plan.pause[0], "pause", None, ""), (plan.pause[1], "resume", None, "")]
        if plan.metadata_update:
            timeline.append((plan.metadata_update[0], "update", None, ""))
        timeline += [(at, "info", None, digit) for at, digit in plan.info_digits]
        version = 2
        try:
            for at, kind, target, digit in sorted(timeline, key=lambda item: item[0]):
                delay = start + at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if target is not None:
                    target.send_digit(digit)
                    continue
                if kind == "info":
                    info = dialog.create_request(
                        "INFO",
                        f"Signal={digit}\r\nDuration=120\r\n".encode(),
                        "application/dtmf-relay",
                    )
                    await self.endpoint.request(info, server, plan.transport)
                    continue
                if kind == "update" and plan.metadata_update:
                    _at, caller, callee = plan.metadata_update
                    # the streams keep their ids: the new parties take them over
                    caller.stream_id, callee.stream_id = (
                        plan.caller.stream_id,
                        plan.callee.stream_id,
                    )
                    update = dialog.create_request(
                        "UPDATE",
                        metadata_xml(session_id, caller, callee).encode(),
                        "application/rs-metadata+xml",
                        [("Content-Disposition", "recording-session")],
                    )
                    await self.endpoint.request(update, server, plan.transport)
                    continue
                direction = "inactive" if kind == "pause" else "sendonly"
                for sender in senders:
                    (sender.pause if kind == "pause" else sender.resume)()
                body = sdp_offer(
                    self.local_ip, (40000, 40002), plan.payload_type, direction, version, keys
                )
                version += 1
                reinvite = dialog.create_request("INVITE", body.encode(), "application/sdp")
                r = await self.endpoint.request(reinvite, server, plan.transport)
                if r.code == 200:
                    self.endpoint.send_ack(r, dialog)
            delay = start + plan.duration_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        finally:
            for sender in senders:
                sender.stop()
            await asyncio.gather(*runs, return_exceptions=True)
        r = await self.endpoint.request(dialog.create_request("BYE"), server, plan.transport)
        return CallResult(call_id, r.code, sum(s.packets_sent for s in senders), declined=declined)


__all__ = ["CallPlan", "CallResult", "Participant", "SiprecClient"]
