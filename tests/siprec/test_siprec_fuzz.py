"""Fuzzing: the body parsers reject bad input only with RemoteProtocolError."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callvault.errors import RemoteProtocolError
from callvault.sip.sdp import build_recording_answer, parse_sdp, recording_answer_error
from callvault.siprec.metadata import parse_metadata
from callvault.siprec.multipart import parse_multipart
from callvault.siprec.offer import associate_streams, parse_offer

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
Body = tuple[str, bytes]

SDP_ALPHABET = st.sampled_from(
    [*"vocstmabk=0123456789 /:.-\r\n", "IN IP4 ", "RTP/AVP ", "audio ", "a=rtpmap:", "\xff"]
)
XML_ALPHABET = st.sampled_from(
    [
        *"<>/=\"' &;#!?[]-:abcdepr0",
        "recording",
        "participant",
        "send",
        "<!DOCTYPE ",
        "<!ENTITY ",
        'xmlns="urn:ietf:params:xml:ns:recording:1"',
    ]
)


def mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for position, delete, insert in edits:
        at = position % (len(data) + 1)
        data = data[:at] + insert + data[at + delete :]
    return data


EDITS = st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 40), st.binary(max_size=12)), max_size=6
)


def only_remote_errors(call: Callable[[], object]) -> None:
    try:
        call()
    except RemoteProtocolError as exc:
        assert exc.status in (400, 415, 488)


@FUZZ
@given(st.binary(max_size=2000))
def test_sdp_random_bytes(data: bytes) -> None:
    only_remote_errors(lambda: parse_sdp(data))


@FUZZ
@given(st.lists(SDP_ALPHABET, max_size=300).map("".join))
def test_sdp_sdp_like_text(text: str) -> None:
    def run() -> None:
        session = parse_sdp(("v=0\r\n" + text).encode("utf-8", "surrogatepass"))
        if recording_answer_error(session) is None:
            ports = [30000 + 2 * i for i in range(len(session.media))]
            parse_sdp(build_recording_answer(session, "192.0.2.9", ports, session_id=1, version=1))
        associate_streams(session, None)

    only_remote_errors(run)


@FUZZ
@given(st.text(max_size=80), st.binary(max_size=2000))
def test_multipart_random(content_type: str, body: bytes) -> None:
    only_remote_errors(lambda: parse_multipart(content_type, body))


@FUZZ
@given(
    st.text(st.characters(codec="ascii"), min_size=1, max_size=20),
    st.lists(st.tuples(st.text(max_size=30), st.binary(max_size=100)), max_size=20),
    st.sampled_from([b"--\r\n", b"--", b"", b"\r\n"]),
)
def test_multipart_structured(boundary: str, parts: list[tuple[str, bytes]], close: bytes) -> None:
    encoded = boundary.encode("latin-1")
    body = b"".join(
        b"--" + encoded + b"\r\nContent-Type: " + ct.encode("utf-8", "replace") + b"\r\n\r\n" + raw
        + b"\r\n"
        for ct, raw in parts
    ) + b"--" + encoded + close  # fmt: skip
    only_remote_errors(lambda: parse_multipart(f'multipart/mixed;boundary="{boundary}"', body))


@FUZZ
@given(st.binary(max_size=2000))
def test_metadata_random_bytes(data: bytes) -> None:
    only_remote_errors(lambda: parse_metadata(data))


@FUZZ
@given(st.lists(XML_ALPHABET, max_size=200).map("".join))
def test_metadata_xml_like_text(text: str) -> None:
    only_remote_errors(lambda: parse_metadata(text.encode()))


@pytest.mark.parametrize("prefix", ["01", "02", "03", "04", "05", "07", "08"])
@FUZZ
@given(edits=EDITS)
def test_mutated_reference_offers(
    reference: Callable[..., Body], prefix: str, edits: list[tuple[int, int, bytes]]
) -> None:
    content_type, body = reference(prefix)

    def run() -> None:
        offer = parse_offer(content_type, mutate(body, edits))
        if offer.sdp is not None:
            associate_streams(offer.sdp, offer.metadata)
            recording_answer_error(offer.sdp)
        if offer.metadata is not None:
            offer.metadata.merged(offer.metadata)

    only_remote_errors(run)
