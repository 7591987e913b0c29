"""SIPREC offers as real clients vary them (RFC 7866 sections 6.1 and 9)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sipmessage

from callvault.errors import RemoteProtocolError
from callvault.sip.sdp import build_recording_answer, parse_sdp
from callvault.siprec.metadata import MetaParticipant, MetaStream, RecordingMetadata
from callvault.siprec.offer import associate_streams, is_siprec_request, parse_offer

Body = tuple[str, bytes]

SDP_TWO = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n"
    b"m=audio 4002 RTP/AVP 0\r\na=sendonly\r\n"
)
XML = (
    b'<recording xmlns="urn:ietf:params:xml:ns:recording:1"><session session_id="s"/>'
    b'<participant participant_id="a"><nameID aor="sip:a@x"/></participant>'
    b'<participant participant_id="b"><nameID aor="sip:b@x"/></participant></recording>'
)


def multipart(*parts: tuple[str, bytes], close: bytes = b"--\r\n") -> bytes:
    out = b""
    for content_type, body in parts:
        out += f"--XX\r\nContent-Type: {content_type}\r\n\r\n".encode() + body + b"\r\n"
    return out + b"--XX" + close


MULTIPART = "multipart/mixed; boundary=XX"


def test_metadata_before_sdp_and_mixed_stream(fixture_body: Callable[..., Body]) -> None:
    offer = parse_offer(*fixture_body("broadworks_mixed_body.txt"))
    assert offer.sdp is not None and offer.metadata is not None
    (media,) = offer.sdp.media
    assert (media.label, media.direction) == ("1", "sendonly")
    assert [c.name for c in media.rtpmap.values()] == [
        "PCMU", "G722", "PCMA", "G729", "telephone-event"
    ]  # fmt: skip
    assert associate_streams(offer.sdp, offer.metadata) == {0: None}
    answer = parse_sdp(
        build_recording_answer(offer.sdp, "192.0.2.9", [30000], session_id=1, version=1)
    )
    assert answer.media[0].formats == [8, 101, 0, 9, 18]


def test_lf_only_body_without_trailing_crlf(fixture_body: Callable[..., Body]) -> None:
    content_type, body = fixture_body("broadworks_mixed_body.txt", crlf=False)
    offer = parse_offer(content_type, body.rstrip(b"\n"))
    assert offer.sdp is not None and offer.metadata is not None
    assert len(offer.metadata.participants) == 2


@pytest.mark.parametrize("close", [b"--\r\n", b"--", b""], ids=["crlf", "no-crlf", "no-close"])
def test_close_delimiter_forms(close: bytes) -> None:
    offer = parse_offer(
        MULTIPART,
        multipart(("application/rs-metadata", XML), ("application/sdp", SDP_TWO), close=close),
    )
    assert offer.sdp is not None and len(offer.sdp.media) == 2
    assert offer.metadata is not None and offer.metadata.session_id == "s"


def test_extra_parts_are_ignored() -> None:
    body = multipart(
        ("application/gtd", b"IAM,\r\nGCI,abc"),
        ("application/sdp", SDP_TWO),
        ("application/pidf+xml", b"<presence/>"),
        ("application/rs-metadata+xml", XML),
    )
    offer = parse_offer(MULTIPART, body)
    assert offer.sdp is not None and offer.metadata is not None


def test_metadata_only_and_sdp_only_and_empty_bodies() -> None:
    assert parse_offer("application/rs-metadata+xml", XML).sdp is None
    sdp_only = parse_offer("application/sdp", SDP_TWO)
    assert sdp_only.metadata is None and sdp_only.sdp is not None
    empty = parse_offer(None, b"")
    assert (empty.sdp, empty.metadata) == (None, None)


def test_body_with_nothing_usable_is_415() -> None:
    with pytest.raises(RemoteProtocolError, match="neither SDP nor recording metadata") as info:
        parse_offer(MULTIPART, multipart(("application/gtd", b"IAM")))
    assert info.value.status == 415


def test_bad_parts_raise_400() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_offer(
            MULTIPART,
            multipart(("application/sdp", b"garbage"), ("application/rs-metadata+xml", XML)),
        )
    assert info.value.status == 400


def test_no_labels_fall_back_to_participant_order() -> None:
    offer = parse_offer(MULTIPART, multipart(("application/sdp", SDP_TWO),
                                            ("application/rs-metadata+xml", XML)))  # fmt: skip
    assert offer.sdp is not None
    assert associate_streams(offer.sdp, offer.metadata) == {0: "a", 1: "b"}


def media_with_labels(*labels: str | None, kinds: tuple[str, ...] = ()) -> bytes:
    out = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    for index, label in enumerate(labels):
        kind = kinds[index] if kinds else "audio"
        out += f"m={kind} {4000 + 2 * index} RTP/AVP 0\r\n".encode()
        if label is not None:
            out += f"a=label:{label}\r\n".encode()
    return out


def party(pid: str, aor: str | None, sends: tuple[str, ...] = (),
          receives: tuple[str, ...] = ()) -> MetaParticipant:  # fmt: skip
    return MetaParticipant(pid, (aor,) if aor else (), None, sends, receives, bool(sends))


def test_association_by_label_then_leftovers_by_order() -> None:
    sdp = parse_sdp(media_with_labels("L1", "L2", "L3", kinds=("audio", "audio", "video")))
    metadata = RecordingMetadata(
        "s",
        (party("p1", "sip:1@x"), party("p2", "sip:2@x", sends=("s2",))),
        (MetaStream("s1", "L1"), MetaStream("s2", "L2")),
    )
    assert associate_streams(sdp, metadata) == {0: "p1", 1: "p2", 2: None}


def test_association_from_receive_only_with_two_parties() -> None:
    sdp = parse_sdp(media_with_labels("L1", "L2"))
    metadata = RecordingMetadata(
        "s",
        (party("p1", "sip:1@x", receives=("s2",)), party("p2", "sip:2@x", receives=("s1",))),
        (MetaStream("s1", "L1"), MetaStream("s2", "L2")),
    )
    assert associate_streams(sdp, metadata) == {0: "p1", 1: "p2"}


def test_label_equal_to_stream_id_is_matched() -> None:
    sdp = parse_sdp(media_with_labels("s2", "s1"))
    metadata = RecordingMetadata(
        "s", (party("p1", "sip:1@x", sends=("s1",)), party("p2", "sip:2@x", sends=("s2",))), ()
    )
    assert associate_streams(sdp, metadata) == {0: "p2", 1: "p1"}


def test_order_fallback_skips_placeholders_without_aor() -> None:
    sdp = parse_sdp(media_with_labels(None, None))
    metadata = RecordingMetadata(
        "s", (party("ph", None), party("p1", "sip:1@x"), party("p2", "sip:2@x")), ()
    )
    assert associate_streams(sdp, metadata) == {0: "p1", 1: "p2"}


def test_no_metadata_or_single_stream_gives_no_sender() -> None:
    two = parse_sdp(media_with_labels("1", "2"))
    assert associate_streams(two, None) == {0: None, 1: None}
    one = parse_sdp(media_with_labels("1"))
    metadata = RecordingMetadata("s", (party("p1", "sip:1@x", sends=("s1",)),),
                                 (MetaStream("s1", "1"),))  # fmt: skip
    assert associate_streams(one, metadata) == {0: None}


def test_pause_by_reinvite_with_null_connection(reference: Callable[..., Body]) -> None:
    content_type, body = reference("02")
    held = body.replace(b"c=IN IP4 172.31.93.236", b"c=IN IP4 0.0.0.0")
    offer = parse_offer(content_type, held)
    assert offer.sdp is not None
    assert [m.paused for m in offer.sdp.media] == [True, True]
    answer = parse_sdp(
        build_recording_answer(offer.sdp, "192.0.2.9", [30000, 30002], session_id=1, version=2)
    )
    assert [m.direction for m in answer.media] == ["recvonly", "recvonly"]


def request(*headers: tuple[str, str], body: bytes = b"") -> sipmessage.Request:
    message = sipmessage.Request("INVITE", sipmessage.URI.parse("sip:srs@192.0.2.9"), body)
    for name, value in headers:
        message.headers.add(name, value)
    return message


@pytest.mark.parametrize(
    "headers",
    [
        (("Require", "siprec"),),
        (("Require", "timer, SIPREC"),),
        (("Contact", "<sip:src@192.0.2.1>;+sip.src"),),
        (("Contact", '<sip:src@192.0.2.1:5060;transport=tcp>;+sip.src;+sip.instance="x"'),),
        (("Contact", "<sip:src@192.0.2.1>;src"),),
        (("Contact", "<sip:src@192.0.2.1;src>"),),
    ],
    ids=["require", "require-list", "+sip.src", "+sip.src-params", ";src", "uri-src"],
)
def test_siprec_requests_by_header(headers: tuple[tuple[str, str], ...]) -> None:
    assert is_siprec_request(request(*headers))


def test_siprec_request_by_metadata_part_only() -> None:
    body = multipart(("application/sdp", SDP_TWO), ("application/rs-metadata", XML))
    assert is_siprec_request(request(("Content-Type", MULTIPART), body=body))


@pytest.mark.parametrize(
    "message",
    [
        request(("Contact", "<sip:alice@192.0.2.1>;expires=60"), ("Require", "timer")),
        request(("Contact", "<sip:srcuser@192.0.2.1;source=1>")),
        request(("Content-Type", "application/sdp"), body=SDP_TWO),
        request(("Content-Type", "multipart/mixed"), body=b"garbage"),
    ],
    ids=["plain", "src-lookalike", "sdp-only", "broken-body"],
)
def test_ordinary_requests_are_not_siprec(message: sipmessage.Request) -> None:
    assert not is_siprec_request(message)
