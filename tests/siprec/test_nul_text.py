"""SIP and SIPREC text holding NUL (U+0000) is refused with a precise 400.

PostgreSQL's text columns cannot hold NUL, and what a SIPREC client sends ends up
in them: the Call-ID (``calls.sip_call_id``), the metadata's names, AORs and ids
(``call_parties``, ``calls.recording_session_id``). Each way in refuses it where
it is read: the SIP header block and the Call-ID (``sip/message.py``; only an
escaped NUL in a quoted string is valid SIP, and it is dropped from a display
name stored as a party's name), the SDP (``sip/sdp.py``),
the metadata XML (expat: a raw NUL is not well-formed, ``&#0;`` names no XML
character). Against a running recorder on SQLite, none of the refused calls
leaves a row, and the good call after them is stored without NUL.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.e2e.harness import running_recorder
from tests.e2e.test_robustness import MIXED, Peer, ack_for, multipart, request, sdp

from callvault.b2bua.legs import aor_of
from callvault.db.engine import make_engine, make_sessionmaker
from callvault.db.models import Call, CallParty
from callvault.demo.client import CallPlan, Participant
from callvault.errors import RemoteProtocolError
from callvault.media.tones import sine
from callvault.sip.message import parse_message
from callvault.sip.sdp import parse_sdp
from callvault.siprec.metadata import parse_metadata

NUL = "\x00"


def _invite(call_id: str = "abc@src", display: str = "Alice", call_id_line: str = "") -> bytes:
    return (
        "INVITE sip:srs@192.0.2.10 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
        f'From: "{display}" <sip:src@192.0.2.1>;tag=1\r\n'
        "To: <sip:srs@192.0.2.10>\r\n"
        f"Call-ID: {call_id}\r\n{call_id_line}"
        "CSeq: 1 INVITE\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _metadata(name: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        '<recording xmlns="urn:ietf:params:xml:ns:recording:1">'
        "<datamode>complete</datamode>"
        '<participant participant_id="p1"><nameID aor="sip:carol@acme.example">'
        f"<name>{name}</name></nameID></participant></recording>\r\n"
    ).encode()


def test_the_same_message_without_nul_parses() -> None:
    message = parse_message(_invite())
    assert message.headers["Call-ID"] == "abc@src"


@pytest.mark.parametrize(
    "data",
    [
        _invite(call_id=f"abc{NUL}@src"),
        _invite(call_id=f"abc\\{NUL}@src"),  # escaped: still not a Call-ID character
        _invite(display=f"Al{NUL}ice"),
        _invite(call_id_line=f"Subject: a{NUL}b\r\n"),
    ],
    ids=["call-id", "escaped-in-call-id", "display-name", "other-header"],
)
def test_nul_in_the_header_block_is_a_400(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_message(data)
    assert caught.value.status == 400
    assert "NUL" in str(caught.value)


def test_an_escaped_nul_in_a_display_name_is_dropped_from_the_party_name() -> None:
    """RFC 4475 3.1.1.3: a quoted-pair may escape NUL, so the message is valid; the
    B2BUA stores display names as party names, without it."""
    message = parse_message(_invite(display=f"Al\\{NUL}ice"))
    assert aor_of(message.headers["From"]) == ("sip:src@192.0.2.1", "Alice")
    assert aor_of('"Bob" <sip:bob@192.0.2.1>') == ("sip:bob@192.0.2.1", "Bob")


def test_nul_in_the_sdp_is_a_400() -> None:
    assert parse_sdp(sdp()).media[0].label == "1"
    with pytest.raises(RemoteProtocolError) as caught:
        parse_sdp(sdp().replace(b"a=label:1", b"a=label:1\x00x"))
    assert caught.value.status == 400
    assert "NUL" in str(caught.value)


@pytest.mark.parametrize("name", ["Car\x00ol", "Car&#0;ol", "Car&#x0;ol"])
def test_nul_in_the_metadata_is_a_400(name: str) -> None:
    assert parse_metadata(_metadata("Carol")).participants[0].name == "Carol"
    with pytest.raises(RemoteProtocolError) as caught:
        parse_metadata(_metadata(name))
    assert caught.value.status == 400


async def _refused(rec_sip: tuple[str, int], call_id: str, body: bytes, content_type: str) -> str:
    """Send one INVITE over UDP; the Warning of its final answer (which must be 400)."""
    peer = await Peer.open("udp", rec_sip)
    try:
        data = request(peer, "INVITE", call_id=call_id, body=body, content_type=content_type)
        peer.send(data)
        reply = await peer.final(call_id)
        assert reply.code == 400, (reply.code, reply.reason)
        peer.send(ack_for(peer, data, reply))
        return reply.header("warning")
    finally:
        await peer.close()


async def test_nul_never_reaches_the_database(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        offer = multipart(
            ("application/sdp", sdp()), ("application/rs-metadata+xml", _metadata("Carol"))
        )
        nul_call_id = f"nul-{uuid.uuid4().hex}{NUL}x"
        warning = await _refused(rec.sip, nul_call_id, offer, MIXED)
        assert "NUL" in warning
        for bad in (
            multipart(
                ("application/sdp", sdp()), ("application/rs-metadata+xml", _metadata("C&#0;"))
            ),
            multipart(
                ("application/sdp", sdp(extra="a=x:\x00\r\n")),
                ("application/rs-metadata+xml", _metadata("Carol")),
            ),
        ):
            await _refused(rec.sip, f"bad-{uuid.uuid4().hex}", bad, MIXED)
        assert rec.app.calls.calls == {}

        plan = CallPlan(  # the good call after them is recorded and stored
            caller=Participant("sip:alice@acme.example", "Alice", sine(440.0, 1.0)),
            callee=Participant("sip:+31612345678@pstn.example", "Customer", sine(1000.0, 1.0)),
            duration_s=1.0,
        )
        result = await rec.client.place(plan)
        assert result.status == 200, result
        await rec.wait_finished(timeout=60)

        engine = make_engine(rec.app.settings.db_url)
        try:
            with make_sessionmaker(engine)() as session:
                calls = session.scalars(select(Call)).all()
                parties = session.scalars(select(CallParty)).all()
        finally:
            engine.dispose()
        assert [c.sip_call_id for c in calls] == [result.call_id]
        texts = [c.sip_call_id for c in calls] + [
            value for p in parties for value in (p.name, p.aor, p.participant_id) if value
        ]
        assert {"Alice", "Customer"} <= set(texts)
        assert not any(NUL in text for text in texts)
