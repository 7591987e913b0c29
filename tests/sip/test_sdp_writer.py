"""The SDP writer (RFC 4566) and the B2BUA's relayed SDP (issue 10, section 1)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.siprec.conftest import FIXTURE_DIR, REFERENCE_DIR, load_body

from callvault.errors import LocalProtocolError, RemoteProtocolError
from callvault.sip.sdp import SessionDescription, parse_sdp
from callvault.sip.sdp_writer import format_sdp, relay_sdp
from callvault.siprec.offer import parse_offer

SIPREC_BODIES = [  # the reference offers and our own, less the metadata-only UPDATE body
    path
    for path in sorted(REFERENCE_DIR.glob("*_body.txt")) + sorted(FIXTURE_DIR.glob("*_body.txt"))
    if "\nv=0\n" in path.read_text("utf-8")
]


def crlf(text: str) -> bytes:
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


# baresip 1.x/3.x (Debian) with the srtp and ice modules off: what it offers by default
BARESIP = crlf("""
v=0
o=- 1702387541 3207464839 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 10952 RTP/AVP 9 0 8 101
b=AS:64
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp-mux
a=sendrecv
a=label:1
a=ssrc:2745209103 cname:9bd3e1c8-5cd1-4b39-8c4c-5bbd0f3e0c34
a=rtcp-rsize
a=ptime:20
""")

# baresip with mediaenc=srtp-mand and medianat=ice: SDES keys and ICE candidates
BARESIP_SRTP_ICE = crlf("""
v=0
o=- 2236371926 1851299474 IN IP4 192.0.2.20
s=-
c=IN IP4 192.0.2.20
t=0 0
a=ice-lite
a=ice-ufrag:4Zsq
a=ice-pwd:8d5d3b1f4e0ad26dd1c0fe0a
m=audio 10002 RTP/SAVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp:10003
a=sendrecv
a=label:1
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd
a=candidate:1 1 UDP 2113929471 192.0.2.20 10002 typ host
a=candidate:1 2 UDP 2113929470 192.0.2.20 10003 typ host
a=end-of-candidates
a=ptime:20
""")

# sipp's built-in uac scenario (its [media_ip] and [media_port] filled in) and uac_pcap
SIPP_UAC = crlf("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
""")
SIPP_PCAP = crlf("""
v=0
o=user1 53655765 2353687637 IN IP6 ::1
s=-
c=IN IP6 ::1
t=0 0
m=audio 6002 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-11,16
""")

# a browser-like offer: BUNDLE, rtcp-mux, media-level c=, a video line, DTLS attributes
BROWSER = crlf("""
v=0
o=mozilla...THIS_IS_SDPARTA-99.0 4744279584410413556 0 IN IP4 0.0.0.0
s=-
t=0 0
a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB
a=group:BUNDLE 0 1
a=ice-options:trickle
a=msid-semantic:WMS *
m=audio 9 UDP/TLS/RTP/SAVPF 109 0 101
c=IN IP4 198.51.100.7
b=TIAS:64000
a=sendrecv
a=mid:0
a=rtpmap:109 opus/48000/2
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=rtcp:9 IN IP4 0.0.0.0
a=rtcp-mux
a=setup:actpass
a=ice-ufrag:8d7e
a=ice-pwd:7e4b2ff3fa0a04f4a1a0e
a=candidate:0 1 UDP 2122252543 198.51.100.7 51000 typ host
a=end-of-candidates
m=video 9 UDP/TLS/RTP/SAVPF 120
c=IN IP4 198.51.100.7
a=recvonly
a=mid:1
a=rtpmap:120 VP8/90000
a=rtcp-fb:120 nack
a=rtcp-mux
""")

WRITTEN = {"baresip": BARESIP, "baresip-srtp-ice": BARESIP_SRTP_ICE, "sipp-uac": SIPP_UAC,
           "sipp-pcap": SIPP_PCAP, "browser": BROWSER}  # fmt: skip


def siprec_sdp(path: Path, *, as_crlf: bool) -> SessionDescription:
    sdp = parse_offer(*load_body(path, crlf=as_crlf)).sdp
    assert sdp is not None
    return sdp


def round_trip(sdp: SessionDescription) -> SessionDescription:
    return parse_sdp(format_sdp(sdp))


# -- round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize("as_crlf", [True, False], ids=["crlf", "lf"])
@pytest.mark.parametrize("path", SIPREC_BODIES, ids=lambda p: p.name.removesuffix("_body.txt"))
def test_siprec_reference_offers_round_trip(path: Path, as_crlf: bool) -> None:
    sdp = siprec_sdp(path, as_crlf=as_crlf)
    assert round_trip(sdp) == sdp


@pytest.mark.parametrize("name", sorted(WRITTEN))
def test_written_offers_round_trip(name: str) -> None:
    sdp = parse_sdp(WRITTEN[name])
    assert round_trip(sdp) == sdp


def test_a_canonical_body_is_written_back_byte_for_byte() -> None:
    assert format_sdp(parse_sdp(BARESIP)) == BARESIP
    assert format_sdp(parse_sdp(SIPP_PCAP)) == SIPP_PCAP


def test_the_model_keeps_what_writing_needs() -> None:
    sdp = parse_sdp(BROWSER)
    assert sdp.attributes[:2] == [
        ("fingerprint", "sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB"),
        ("group", "BUNDLE 0 1"),
    ]
    audio, video = sdp.media
    assert audio.bandwidth == ["TIAS:64000"]
    assert audio.connection == "198.51.100.7"
    assert [name for name, _ in audio.attributes][:3] == ["sendrecv", "mid", "rtpmap"]
    assert video.direction == "recvonly"
    assert parse_sdp(BARESIP).media[0].bandwidth == ["AS:64"]


def test_order_is_canonical_whatever_the_input_order() -> None:
    # s= before o=, t= before c=, b= after a=: written v o s c b t a, then m c b a
    body = crlf("""
v=0
s=call
o=- 1 1 IN IP4 192.0.2.1
t=0 0
c=IN IP4 192.0.2.1
a=sendonly
b=AS:80
m=audio 4000 RTP/AVP 0
a=ptime:20
b=AS:64
c=IN IP4 192.0.2.2
""")
    assert format_sdp(parse_sdp(body)) == crlf("""
v=0
o=- 1 1 IN IP4 192.0.2.1
s=call
c=IN IP4 192.0.2.1
b=AS:80
t=0 0
a=sendonly
m=audio 4000 RTP/AVP 0
c=IN IP4 192.0.2.2
b=AS:64
a=ptime:20
""")


def test_session_level_direction_stays_at_session_level() -> None:
    body = crlf("""
v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
a=inactive
m=audio 4000 RTP/AVP 0
""")
    sdp = parse_sdp(body)
    assert sdp.media[0].direction == "inactive"
    assert format_sdp(sdp) == body


def test_a_changed_direction_is_written() -> None:
    sdp = parse_sdp(BARESIP)
    held = dataclasses.replace(sdp, media=[dataclasses.replace(sdp.media[0], direction="sendonly")])
    text = format_sdp(held).decode()
    assert "a=sendrecv" not in text
    assert text.endswith("a=sendonly\r\n")
    assert parse_sdp(text.encode()).media[0].direction == "sendonly"


def test_an_empty_session_name_is_written_as_one_space() -> None:
    sdp = parse_sdp(SIPP_UAC)
    text = format_sdp(dataclasses.replace(sdp, session_name=""))
    assert b"\r\ns= \r\n" in text  # RFC 4566 section 5.3
    assert round_trip(dataclasses.replace(sdp, session_name="")).session_name == ""


@pytest.mark.parametrize(
    "change",
    [
        {"origin": ""},
        {"origin": "- 1 1 IN IP4 192.0.2.1\r\na=injected"},
        {"session_name": "x\nm=audio 1 RTP/AVP 0"},
        {"attributes": [("tool", "x\r\ny")]},
    ],
)
def test_unwritable_sessions_are_our_bug(change: dict[str, object]) -> None:
    sdp = dataclasses.replace(parse_sdp(SIPP_UAC), **change)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        format_sdp(sdp)


@pytest.mark.parametrize(
    "change",
    [{"port": 70000}, {"port": -1}, {"formats": [128], "raw_formats": ["128"]},
     {"formats": [], "raw_formats": []}, {"attributes": [("label", "a\nb")]}],
)  # fmt: skip
def test_unwritable_media_are_our_bug(change: dict[str, object]) -> None:
    sdp = parse_sdp(SIPP_UAC)
    media = dataclasses.replace(sdp.media[0], **change)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        format_sdp(dataclasses.replace(sdp, media=[media]))


def test_changed_formats_are_written_from_the_numbers() -> None:
    sdp = parse_sdp(BARESIP)
    media = dataclasses.replace(sdp.media[0], formats=[0, 101])
    assert b"m=audio 10952 RTP/AVP 0 101\r\n" in format_sdp(dataclasses.replace(sdp, media=[media]))


# -- relay_sdp -----------------------------------------------------------------------------
def relayed(body: bytes, ports: list[int | None], address: str = "203.0.113.9") -> bytes:
    sdp = relay_sdp(parse_sdp(body), address=address, ports=ports, session_id=77, version=2)
    return format_sdp(sdp)


def test_relay_of_a_baresip_offer() -> None:
    assert relayed(BARESIP, [40000]) == crlf("""
v=0
o=callvault 77 2 IN IP4 203.0.113.9
s=callvault
c=IN IP4 203.0.113.9
t=0 0
m=audio 40000 RTP/AVP 9 0 8 101
b=AS:64
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=ssrc:2745209103 cname:9bd3e1c8-5cd1-4b39-8c4c-5bbd0f3e0c34
a=rtcp-rsize
a=ptime:20
""")


def test_relay_keeps_crypto_and_drops_rtcp_and_ice() -> None:
    offer = parse_sdp(BARESIP_SRTP_ICE)
    sdp = relay_sdp(offer, address="203.0.113.9", ports=[40002], session_id=1, version=1)
    (media,) = sdp.media
    assert sdp.attributes == []  # ice-lite, ice-ufrag, ice-pwd
    assert [name for name, _ in media.attributes] == [
        "rtpmap", "rtpmap", "fmtp", "sendrecv", "label", "crypto", "crypto", "ptime",
    ]  # fmt: skip
    assert media.crypto == offer.media[0].crypto
    assert media.proto == "RTP/SAVP"
    assert media.port == 40002
    assert round_trip(sdp) == sdp


def test_relay_of_a_browser_offer() -> None:
    sdp = relay_sdp(
        parse_sdp(BROWSER), address="2001:db8::9", ports=[40004, None], session_id=5, version=9
    )
    text = format_sdp(sdp).decode()
    assert text.startswith("v=0\r\no=callvault 5 9 IN IP6 2001:db8::9\r\ns=callvault\r\n")
    assert "c=IN IP6 2001:db8::9\r\n" in text
    assert text.count("\nc=") == 1  # the media-level c= lines are gone
    for gone in ("a=rtcp:", "a=rtcp-mux", "a=ice-", "a=candidate", "a=end-of-candidates",
                 "a=group:BUNDLE", "198.51.100.7"):  # fmt: skip
        assert gone not in text, gone
    for kept in ("a=fingerprint:", "a=msid-semantic:WMS *", "a=setup:actpass", "b=TIAS:64000",
                 "a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1"):  # fmt: skip
        assert kept in text, kept
    assert "m=audio 40004 UDP/TLS/RTP/SAVPF 109 0 101\r\n" in text
    # the declined video line: port 0, its formats, nothing else
    assert text.endswith("m=video 0 UDP/TLS/RTP/SAVPF 120\r\n")
    assert round_trip(sdp) == sdp


def test_relay_types_follow_the_kept_attributes() -> None:
    sdp = relay_sdp(parse_sdp(BROWSER), address="203.0.113.9", ports=[1, 2], session_id=1,
                    version=1)  # fmt: skip
    audio, video = sdp.media
    assert audio.connection == video.connection == "203.0.113.9"
    assert audio.rtpmap[109].name == "opus" and audio.rtpmap[109].channels == 2
    assert audio.direction == "sendrecv" and video.direction == "recvonly"
    assert video.attributes == [("recvonly", None), ("mid", "1"), ("rtpmap", "120 VP8/90000"),
                                ("rtcp-fb", "120 nack")]  # fmt: skip


def test_relay_keeps_a_session_level_hold() -> None:
    offer = BARESIP.replace(b"a=sendrecv\r\n", b"")
    offer = offer.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    sdp = relay_sdp(parse_sdp(offer), address="203.0.113.9", ports=[40000], session_id=1,
                    version=3)  # fmt: skip
    assert sdp.attributes == [("sendonly", None)]
    assert sdp.media[0].direction == "sendonly"
    assert parse_sdp(format_sdp(sdp)).media[0].direction == "sendonly"


def test_relay_keeps_a_hold_by_null_address() -> None:
    offer = SIPP_UAC.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0")
    sdp = relay_sdp(parse_sdp(offer), address="203.0.113.9", ports=[40000], session_id=1,
                    version=2)  # fmt: skip
    assert sdp.connection == "203.0.113.9"
    assert sdp.media[0].connection == "0.0.0.0"
    assert sdp.media[0].paused
    assert b"m=audio 40000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n" in format_sdp(sdp)


def test_relay_does_not_change_its_input() -> None:
    offer = parse_sdp(BROWSER)
    before = dataclasses.replace(offer)
    relay_sdp(offer, address="203.0.113.9", ports=[1, None], session_id=1, version=1)
    assert offer == before == parse_sdp(BROWSER)


@pytest.mark.parametrize("ports", [[], [40000, 40002], [0], [65536]])
def test_relay_ports_are_the_callers_bug(ports: list[int | None]) -> None:
    with pytest.raises(LocalProtocolError):
        relay_sdp(parse_sdp(SIPP_UAC), address="203.0.113.9", ports=ports, session_id=1, version=1)


# -- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [b"", b"v=1\r\n", b"o=x\r\n", b"v=0\r\nc=IN IP4 /5\r\n", b"v=0\r\nm=audio x RTP/AVP 0\r\n",
     b"v=0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n", b"v=0\r\nm=audio 4000\r\n"],
)  # fmt: skip
def test_bad_bodies_are_remote_errors(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_sdp(body)
    assert caught.value.status == 400


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EDITS = st.lists(
    st.tuples(st.integers(0, 2_000), st.integers(0, 30), st.binary(max_size=12)), max_size=6
)


@FUZZ
@given(st.sampled_from(sorted(WRITTEN)), EDITS)
def test_mutated_offers_round_trip_or_are_refused(
    name: str, edits: list[tuple[int, int, bytes]]
) -> None:
    data = WRITTEN[name]
    for position, delete, insert in edits:
        at = position % (len(data) + 1)
        data = data[:at] + insert + data[at + delete :]
    try:
        sdp = parse_sdp(data)
    except RemoteProtocolError as exc:
        assert exc.status == 400
        return
    ports: list[int | None] = [40000 + 2 * i for i in range(len(sdp.media))]
    relayed = relay_sdp(sdp, address="203.0.113.9", ports=ports, session_id=1, version=1)
    assert round_trip(relayed) == relayed
    if sdp.origin:  # without an origin only a relayed copy (our origin) can be written
        assert round_trip(sdp) == sdp
