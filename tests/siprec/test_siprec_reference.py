"""Every real SIPREC body in tests/fixtures/siprec/reference parses into the right call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sipmessage

from callvault.sip.sdp import build_recording_answer, choose_codecs, parse_sdp
from callvault.siprec.offer import associate_streams, is_siprec_request, parse_offer

Body = tuple[str, bytes]


@dataclass(frozen=True)
class Expected:
    session_id: str
    aors: tuple[str, ...]  # participants, in document order
    labels: tuple[str, ...]  # a=label of each m-line
    codecs: tuple[tuple[str, ...], ...]  # recordable codec names of each m-line
    direction: str
    senders: tuple[str, ...]  # AOR of the participant sending each m-line


EXPECTED: dict[str, Expected] = {
    "01": Expected(
        "AavRXwIIQj1Q39eJulTipQ==",
        ("sip:9000@192.168.50.102", "sip:1002@192.168.50.10"),
        ("16777227", "16777228"),
        (("PCMU",), ("PCMU",)),
        "sendonly",
        ("sip:9000@192.168.50.102", "sip:1002@192.168.50.10"),
    ),
    "02": Expected(
        "kQNhKFdEEeeJ9tD/VsPGWA==",
        ("sip:7301@35.162.237.204", "sip:7300@35.162.237.204"),
        ("1", "2"),
        (("PCMU", "telephone-event"), ("PCMU", "telephone-event")),
        "sendonly",
        ("sip:7301@35.162.237.204", "sip:7300@35.162.237.204"),
    ),
    "03": Expected(  # the association crosses the document order
        "MTQ3YzA3YzEtNjdkNy0xMA==",
        ("sip:2249888500@172.16.198.55", "sip:2249888012@172.16.195.72"),
        ("1", "2"),
        (("PCMU",), ("PCMU",)),
        "sendonly",
        ("sip:2249888012@172.16.195.72", "sip:2249888500@172.16.198.55"),
    ),
    "04": Expected(  # no association at all: by order
        "2+hKdGY+QvCKu8HYTdBouQ==",
        ("sip:0771121212@52.57.92.239", "sip:0760516936@sip-cust1.connectel.io"),
        ("1", "2"),
        (("PCMU", "PCMA", "telephone-event"), ("PCMA", "PCMU", "telephone-event")),
        "sendonly",
        ("sip:0771121212@52.57.92.239", "sip:0760516936@sip-cust1.connectel.io"),
    ),
    "05": Expected(
        "00FA0800705D4C5DCAAC41",
        ("sip:9878942259@212.188.68.145", "sip:ASBCE@asbce.com"),
        ("10", "20"),
        (("PCMA", "telephone-event"), ("PCMA", "telephone-event")),
        "sendonly",
        ("sip:9878942259@212.188.68.145", "sip:ASBCE@asbce.com"),
    ),
    "07": Expected(
        "ho9aUhEQTRS+31th7sHStA==",
        ("sip:016190200@87.252.209.116", "sip:Extension-016190619@speechpath.ie"),
        ("a_leg", "b_leg"),
        (("PCMA",), ("PCMA",)),
        "sendonly",
        ("sip:016190200@87.252.209.116", "sip:Extension-016190619@speechpath.ie"),
    ),
    "08": Expected(  # empty associations: by order; starts paused
        "GZBIusaXEeuxxK1dFIaIyA==",
        ("sip:0733165805@192.168.40.34", "sip:+972546136443@192.168.10.140"),
        ("1", "2"),
        (("PCMU", "telephone-event"), ("PCMU", "telephone-event")),
        "inactive",
        ("sip:0733165805@192.168.40.34", "sip:+972546136443@192.168.10.140"),
    ),
}


def test_every_reference_file_is_covered(reference_dir: Path) -> None:
    prefixes = {path.name[:2] for path in reference_dir.glob("*.txt")}
    assert prefixes == set(EXPECTED)


@pytest.mark.parametrize("crlf", [True, False], ids=["crlf", "lf"])
@pytest.mark.parametrize("prefix", sorted(EXPECTED))
def test_reference_offer(reference: Callable[..., Body], prefix: str, crlf: bool) -> None:
    expected = EXPECTED[prefix]
    content_type, body = reference(prefix, crlf=crlf)
    offer = parse_offer(content_type, body)
    assert offer.sdp is not None and offer.metadata is not None
    metadata, sdp = offer.metadata, offer.sdp

    assert metadata.session_id == expected.session_id
    assert metadata.complete
    assert tuple(p.aors[0] for p in metadata.participants) == expected.aors
    assert tuple(m.label for m in sdp.media) == expected.labels
    assert tuple(tuple(c.name for c in choose_codecs(m).values()) for m in sdp.media) == (
        expected.codecs
    )
    assert {m.direction for m in sdp.media} == {expected.direction}
    assert all(m.paused == (expected.direction == "inactive") for m in sdp.media)

    aor_of = {p.id: p.aors[0] for p in metadata.participants}
    senders = associate_streams(sdp, metadata)
    assert tuple(aor_of[pid] for pid in senders.values() if pid is not None) == expected.senders


@pytest.mark.parametrize("prefix", sorted(EXPECTED))
def test_reference_answer(reference: Callable[..., Body], prefix: str) -> None:
    offer = parse_offer(*reference(prefix))
    assert offer.sdp is not None
    answer = parse_sdp(
        build_recording_answer(offer.sdp, "203.0.113.5", [40000, 40002], session_id=7, version=1)
    )
    assert answer.connection == "203.0.113.5"
    assert [m.port for m in answer.media] == [40000, 40002]
    assert [m.label for m in answer.media] == list(EXPECTED[prefix].labels)
    want = "inactive" if EXPECTED[prefix].direction == "inactive" else "recvonly"
    assert {m.direction for m in answer.media} == {want}
    for offered, answered in zip(offer.sdp.media, answer.media, strict=True):
        assert answered.rtpmap == choose_codecs(offered)


@pytest.mark.parametrize("prefix", sorted(EXPECTED))
def test_reference_body_marks_a_siprec_request(reference: Callable[..., Body], prefix: str) -> None:
    content_type, body = reference(prefix)
    request = sipmessage.Request("INVITE", sipmessage.URI.parse("sip:srs@198.51.100.1"), body)
    request.headers.add("Content-Type", content_type)
    assert is_siprec_request(request)
