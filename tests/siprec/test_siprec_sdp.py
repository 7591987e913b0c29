"""SDP parsing and the recorder's answer (RFC 4566, RFC 3264)."""

from __future__ import annotations

import pytest

from callvault.errors import LocalProtocolError, RemoteProtocolError
from callvault.media.codec import Codec
from callvault.sip.sdp import (
    build_recording_answer,
    choose_codecs,
    parse_sdp,
    recording_answer_error,
)

HEAD = "v=0\r\no=src 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"


def sdp(*lines: str, head: str = HEAD) -> bytes:
    return (head + "".join(line + "\r\n" for line in lines)).encode()


def test_static_payload_types_fill_rtpmap() -> None:
    (media,) = parse_sdp(sdp("m=audio 4000 RTP/AVP 0 8 9 18 96")).media
    assert media.rtpmap == {
        0: Codec("PCMU", 8000),
        8: Codec("PCMA", 8000),
        9: Codec("G722", 8000),
        18: Codec("G729", 8000),
    }
    assert media.formats == [0, 8, 9, 18, 96]


def test_media_fields_and_attributes() -> None:
    session = parse_sdp(
        sdp(
            "m=audio 4000/2 RTP/SAVP 111 101",
            "c=IN IP4 198.51.100.7/127",
            "a=rtpmap:111 opus/48000/2",
            "a=fmtp:111 minptime=10;useinbandfec=1",
            "a=rtpmap:101 telephone-event/48000",
            "a=ptime:20",
            "a=label:7",
            "a=recvonly",
            "a=x-unknown",
        )
    )
    assert session.origin == "src 1 1 IN IP4 192.0.2.1"
    assert session.connection == "192.0.2.1"
    (media,) = session.media
    assert (media.media, media.port, media.proto) == ("audio", 4000, "RTP/SAVP")
    assert media.rtpmap[111] == Codec("opus", 48000, 2)
    assert media.fmtp == {111: "minptime=10;useinbandfec=1"}
    assert (media.ptime, media.label, media.direction) == (20, "7", "recvonly")
    assert media.connection == "198.51.100.7"
    assert ("x-unknown", None) in media.attributes
    assert ("label", "7") in media.attributes


def test_tolerant_of_lf_trailing_blanks_and_unknown_lines() -> None:
    body = b"v=0\no=- 1 1 IN IP4 0.0.0.0   \ns=-\nt=0 0\nx=whatever\n\nm=audio 5 RTP/AVP 0  \n"
    (media,) = parse_sdp(body).media
    assert media.port == 5
    assert media.connection is None  # no c= anywhere: latch on the source address


def test_session_level_direction_and_connection_apply_to_media() -> None:
    session = parse_sdp(sdp("a=sendonly", "m=audio 4000 RTP/AVP 0", "m=audio 4002 RTP/AVP 0",
                            "a=inactive"))  # fmt: skip
    assert [m.direction for m in session.media] == ["sendonly", "inactive"]
    assert [m.connection for m in session.media] == ["192.0.2.1", "192.0.2.1"]


@pytest.mark.parametrize(
    ("lines", "paused"),
    [
        (("m=audio 4000 RTP/AVP 0", "a=sendonly"), False),
        (("m=audio 4000 RTP/AVP 0", "a=inactive"), True),
        (("m=audio 4000 RTP/AVP 0", "c=IN IP4 0.0.0.0", "a=sendonly"), True),
        (("m=audio 4000 RTP/AVP 0", "c=IN IP6 ::"), True),
        (("m=audio 0 RTP/AVP 0",), True),
    ],
    ids=["active", "inactive", "c=0.0.0.0", "c=::", "port-0"],
)
def test_paused(lines: tuple[str, ...], paused: bool) -> None:
    (media,) = parse_sdp(sdp(*lines)).media
    assert media.paused is paused


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "missing v="),
        (b"\r\n\r\n", "missing v="),
        (b"o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n", "first line must be v="),
        (b"v=1\r\n", "unsupported version"),
        (b"v=0\r\nhello world\r\n", "line 2 is not"),
        (sdp("m=audio port RTP/AVP 0"), "bad port"),
        (sdp("m=audio 70000 RTP/AVP 0"), "bad port"),
        (sdp("m=audio 4000 RTP/AVP"), "needs media, port, proto and formats"),
        (sdp("m=audio 4000 RTP/AVP 0 PCMU"), "bad RTP payload type"),
        (sdp("m=audio 4000 RTP/AVP 200"), "bad RTP payload type"),
        (sdp("m=audio 4000 RTP/AVP 0", "a=rtpmap:0 PCMU"), "malformed a=rtpmap"),
        (sdp("m=audio 4000 RTP/AVP 0", "c=IN IP4"), "malformed c="),
        (sdp(*["m=audio 4000 RTP/AVP 0"] * 33), "more than 32"),
        (b"v=0\r\n" + b"a=x\r\n" * 20_000, "exceeds"),
    ],
)
def test_garbage_is_a_precise_400(body: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message) as info:
        parse_sdp(body)
    assert info.value.status == 400


def test_non_rtp_media_keeps_raw_formats() -> None:
    (media,) = parse_sdp(sdp("m=application 9 TCP/BFCP *")).media
    assert (media.formats, media.raw_formats) == ([], ["*"])


def test_choose_codecs_keeps_recordable_in_offer_order() -> None:
    (media,) = parse_sdp(
        sdp(
            "m=audio 4000 RTP/AVP 3 9 97 0 101 13",
            "a=rtpmap:97 OPUS/48000/2",
            "a=rtpmap:101 telephone-event/8000",
        )
    ).media
    assert list(choose_codecs(media)) == [9, 97, 0, 101]


def test_choose_codecs_needs_a_voice_codec_on_an_audio_line() -> None:
    only_dtmf, video, rejected = parse_sdp(
        sdp(
            "m=audio 4000 RTP/AVP 101",
            "a=rtpmap:101 telephone-event/8000",
            "m=video 4002 RTP/AVP 0",
            "m=audio 0 RTP/AVP 0",
        )
    ).media
    assert choose_codecs(only_dtmf) == {}
    assert choose_codecs(video) == {}
    assert choose_codecs(rejected) == {}


def answer_for(offer: bytes, ports: list[int | None]) -> str:
    return build_recording_answer(
        parse_sdp(offer), "203.0.113.5", ports, session_id=42, version=3
    ).decode()


def test_g722_answer() -> None:
    offer = sdp(
        "m=audio 4000 RTP/AVP 9 0 101",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=label:1",
        "a=sendonly",
    )
    assert answer_for(offer, [30000]) == (
        "v=0\r\n"
        "o=callvault 42 3 IN IP4 203.0.113.5\r\n"
        "s=callvault\r\n"
        "c=IN IP4 203.0.113.5\r\n"
        "t=0 0\r\n"
        "m=audio 30000 RTP/AVP 9 0 101\r\n"
        "a=rtpmap:9 G722/8000\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        "a=ptime:20\r\n"
        "a=label:1\r\n"
        "a=recvonly\r\n"
    )


def test_g729_answer_drops_unrecordable_codecs() -> None:
    offer = sdp("m=audio 4000 RTP/AVP 18 3 4 101", "a=rtpmap:101 telephone-event/8000",
                "a=fmtp:18 annexb=no", "a=sendrecv")  # fmt: skip
    answer = parse_sdp(answer_for(offer, [30000]).encode())
    (media,) = answer.media
    assert media.formats == [18, 101]
    assert media.fmtp == {18: "annexb=no"}
    assert media.direction == "recvonly"
    assert media.label is None


def test_opus_stereo_answer_and_rejected_lines() -> None:
    offer = sdp(
        "m=audio 4000 RTP/AVP 111 101",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 useinbandfec=1",
        "a=rtpmap:101 telephone-event/48000",
        "a=label:a",
        "a=sendonly",
        "m=audio 4002 RTP/AVP 111",
        "a=rtpmap:111 opus/48000/2",
        "a=label:b",
        "a=sendonly",
        "m=video 4004 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
        "m=audio 4006 RTP/AVP 3",
    )
    text = answer_for(offer, [30000, None, 30004, 30006])
    assert "a=rtpmap:111 opus/48000/2\r\n" in text
    answer = parse_sdp(text.encode())
    assert [(m.media, m.port, m.formats) for m in answer.media] == [
        ("audio", 30000, [111, 101]),
        ("audio", 0, [111]),
        ("video", 0, [96]),
        ("audio", 0, [3]),
    ]
    assert answer.media[0].fmtp == {111: "useinbandfec=1"}
    assert recording_answer_error(parse_sdp(offer)) is None


def test_inactive_and_recvonly_offers_are_answered_inactive() -> None:
    offer = sdp("m=audio 4000 RTP/AVP 0", "a=inactive", "m=audio 4002 RTP/AVP 0", "a=recvonly")
    answer = parse_sdp(answer_for(offer, [30000, 30002]).encode())
    assert [m.direction for m in answer.media] == ["inactive", "inactive"]


def test_ipv6_local_address() -> None:
    offer = parse_sdp(sdp("m=audio 4000 RTP/AVP 0"))
    text = build_recording_answer(offer, "2001:db8::5", [30000], session_id=1, version=1)
    assert b"c=IN IP6 2001:db8::5\r\n" in text


def test_ports_must_match_the_offer() -> None:
    with pytest.raises(LocalProtocolError):
        build_recording_answer(parse_sdp(sdp("m=audio 4000 RTP/AVP 0")), "192.0.2.9", [],
                               session_id=1, version=1)  # fmt: skip


@pytest.mark.parametrize(
    ("lines", "offered"),
    [
        (("m=video 4000 RTP/AVP 96", "a=rtpmap:96 H264/90000"), "video H264"),
        (("m=audio 4000 RTP/AVP 3 97", "a=rtpmap:97 AMR/8000"), "audio GSM, audio AMR"),
        (("m=audio 4000 RTP/AVP 101", "a=rtpmap:101 telephone-event/8000"),
         "audio telephone-event"),
        (("m=audio 4000 RTP/AVP 96",), "audio pt 96"),
        (("m=audio 0 RTP/AVP 0",), "audio PCMU"),
        ((), "none"),
    ],
    ids=["video-only", "unsupported-codecs", "dtmf-only", "unknown-dynamic", "port-0", "no-media"],
)  # fmt: skip
def test_unrecordable_offers_get_488(lines: tuple[str, ...], offered: str) -> None:
    error = recording_answer_error(parse_sdp(sdp(*lines)))
    assert error is not None
    assert error.status == 488
    assert str(error) == f"no recordable audio stream: offered codecs {offered}"
    assert error.warning == str(error)
