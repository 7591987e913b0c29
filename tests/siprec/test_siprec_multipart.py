"""multipart/mixed splitting (RFC 2046 section 5.1) as SIPREC clients send it."""

from __future__ import annotations

import pytest

from callvault.errors import RemoteProtocolError
from callvault.siprec.multipart import MAX_PARTS, body_parts, parse_content_type, parse_multipart

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
XML = b'<recording xmlns="urn:ietf:params:xml:ns:recording:1"/>'


def multipart(*parts: tuple[str, bytes], boundary: str = "b1", close: bytes = b"--\r\n") -> bytes:
    out = b""
    for content_type, body in parts:
        out += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + body + b"\r\n"
    return out + f"--{boundary}".encode() + close


def test_two_parts_in_order() -> None:
    body = multipart(("application/sdp", SDP), ("application/rs-metadata+xml", XML))
    parts = parse_multipart("multipart/mixed;boundary=b1", body)
    assert [p.content_type for p in parts] == ["application/sdp", "application/rs-metadata+xml"]
    assert parts[0].body == SDP
    assert parts[1].body == XML
    assert parts[0].headers == {"content-type": "application/sdp"}


def test_quoted_boundary_with_special_characters() -> None:
    boundary = "=_Part 1:a+b?"
    body = multipart(("application/sdp", SDP), boundary=boundary)
    parts = parse_multipart(f'Multipart/Mixed; charset=utf-8; boundary="{boundary}"', body)
    assert [p.body for p in parts] == [SDP]


def test_preamble_and_epilogue_are_ignored() -> None:
    body = b"This is a preamble.\r\n" + multipart(("application/sdp", SDP)) + b"epilogue\r\n"
    assert [p.body for p in parse_multipart("multipart/mixed;boundary=b1", body)] == [SDP]


@pytest.mark.parametrize("close", [b"--", b"-- ", b"--\r\n\r\n", b""], ids=repr)
def test_close_delimiter_variants(close: bytes) -> None:
    body = multipart(("application/sdp", SDP), ("text/plain", b"x"), close=close)
    parts = parse_multipart("multipart/mixed;boundary=b1", body)
    assert [p.body for p in parts] == [SDP, b"x"]


def test_missing_close_delimiter_is_tolerated() -> None:
    body = b"--b1\r\nContent-Type: application/sdp\r\n\r\n" + SDP + b"\r\n"
    assert [p.body for p in parse_multipart("multipart/mixed;boundary=b1", body)] == [SDP]


def test_lf_only_line_ends() -> None:
    body = multipart(("application/sdp", SDP)).replace(b"\r\n", b"\n")
    (part,) = parse_multipart("multipart/mixed;boundary=b1", body)
    assert part.content_type == "application/sdp"
    assert part.body == SDP.replace(b"\r\n", b"\n")


def test_boundary_prefix_inside_body_is_not_a_delimiter() -> None:
    body = multipart(("text/plain", b"--b1x is not a delimiter\r\n--b1 nor this"))
    (part,) = parse_multipart("multipart/mixed;boundary=b1", body)
    assert part.body == b"--b1x is not a delimiter\r\n--b1 nor this"


def test_part_headers_params_and_folding() -> None:
    body = (
        b'--b1\r\nContent-Type: application/sdp;  Charset="utf-8"\r\n'
        b"Content-Disposition: session;\r\n handling=required\r\n\r\n" + SDP + b"\r\n--b1--"
    )
    (part,) = parse_multipart("multipart/mixed;boundary=b1", body)
    assert part.params == {"charset": "utf-8"}
    assert part.headers["content-disposition"] == "session; handling=required"


def test_part_without_headers_defaults_to_text_plain() -> None:
    (part,) = parse_multipart("multipart/mixed;boundary=b1", b"--b1\r\n\r\nhello\r\n--b1--")
    assert part.content_type == "text/plain"
    assert part.body == b"hello"


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("multipart/mixed", b"--b1\r\n\r\nx\r\n--b1--", "without a boundary"),
        ('multipart/mixed; boundary=""', b"--b1\r\n\r\nx\r\n--b1--", "without a boundary"),
        ("multipart/mixed;boundary=zz", b"--b1\r\n\r\nx\r\n--b1--", "never contains"),
        ("multipart/mixed;boundary=b1", b"--b1--\r\n", "no parts"),
        ("application/sdp", b"v=0", "not multipart"),
        ("multipart/mixed;boundary=b1", b"--b1\r\nno colon\r\n\r\nx", "malformed header"),
    ],
)
def test_unusable_bodies_are_400(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message) as info:
        parse_multipart(content_type, body)
    assert info.value.status == 400


def test_limits() -> None:
    many = multipart(*[("text/plain", b"x")] * (MAX_PARTS + 1))
    with pytest.raises(RemoteProtocolError, match="more than 16 parts"):
        parse_multipart("multipart/mixed;boundary=b1", many)
    huge = multipart(("text/plain", b"x" * 300_000))
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        parse_multipart("multipart/mixed;boundary=b1", huge)


def test_body_parts_for_single_and_empty_bodies() -> None:
    assert body_parts(None, b"") == []
    assert body_parts("application/sdp", b"\r\n") == []
    (single,) = body_parts("Application/SDP", SDP)
    assert (single.content_type, single.body) == ("application/sdp", SDP)
    (sniffed,) = body_parts(None, SDP)
    assert sniffed.content_type == "application/sdp"
    with pytest.raises(RemoteProtocolError, match="without Content-Type"):
        body_parts(None, XML)


def test_parse_content_type() -> None:
    assert parse_content_type('multipart/mixed;boundary="a;b\\"c"; x=1') == (
        "multipart/mixed",
        {"boundary": 'a;b"c', "x": "1"},
    )
