"""Metadata bounds (SPEC section 7, "Metadata length"): over-long values never lose the call.

A real client never sends a 200-character name; a broken or hostile one may
send 64 KB. Such a document still parses into a call (names cut, AORs
stripped of parameters or dropped, ids shortened, counts capped), and every
value fits the column it is stored in.
"""

from __future__ import annotations

import pytest
from sqlalchemy import String

from callvault.db.models import Call, CallParty, UserAor
from callvault.sip.sdp import parse_sdp
from callvault.siprec.metadata import (
    MAX_AOR_LENGTH,
    MAX_AORS,
    MAX_ID_LENGTH,
    MAX_METADATA_BYTES,
    MAX_NAME_LENGTH,
    MAX_PARTICIPANTS,
    MAX_STREAMS,
    MAX_TRIM_NOTES,
    RecordingMetadata,
    parse_metadata,
)
from callvault.siprec.offer import associate_streams

RFC = "urn:ietf:params:xml:ns:recording:1"
KB64 = 64_000  # characters: with the rest of the document, just under MAX_METADATA_BYTES


def document(
    *parties: tuple[str, str, str],
    streams: int = 2,
    session: str = "s1",
    datamode: str = "complete",
) -> bytes:
    """An RFC 7865 document: ``(participant_id, aor, name)`` each sending stream ``st<i>``."""
    body = [f'<recording xmlns="{RFC}"><datamode>{datamode}</datamode>']
    body.append(f'<session session_id="{session}"/>')
    for pid, aor, name in parties:
        body.append(f'<participant participant_id="{pid}"><nameID aor="{aor}">')
        body.append(f"<name>{name}</name></nameID></participant>")
    body.extend(f'<stream stream_id="st{i}" session_id="{session}"><label>{i + 1}</label></stream>'
                for i in range(streams))  # fmt: skip
    for i, (pid, _aor, _name) in enumerate(parties[:streams]):
        body.append(f'<participantstreamassoc participant_id="{pid}"><send>st{i}</send>')
        body.append("</participantstreamassoc>")
    body.append("</recording>")
    xml = "".join(body).encode()
    assert len(xml) <= MAX_METADATA_BYTES  # accepted as a whole: only its values are too long
    return xml


ALICE = ("p1", "sip:alice@acme.example", "Alice")
SDP = parse_sdp(
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n"
    b"m=audio 4002 RTP/AVP 0\r\na=label:2\r\na=sendonly\r\n"
)


def column_length(column: object) -> int:
    kind = getattr(column, "type", None)
    assert isinstance(kind, String) and kind.length is not None, column
    return kind.length


def test_bounds_are_the_column_sizes() -> None:
    assert column_length(CallParty.__table__.c.name) == MAX_NAME_LENGTH
    assert column_length(Call.__table__.c.from_name) >= MAX_NAME_LENGTH
    assert column_length(Call.__table__.c.to_name) >= MAX_NAME_LENGTH
    assert column_length(CallParty.__table__.c.aor) == MAX_AOR_LENGTH
    assert column_length(Call.__table__.c.from_aor) >= MAX_AOR_LENGTH
    assert column_length(Call.__table__.c.to_aor) >= MAX_AOR_LENGTH
    assert column_length(UserAor.__table__.c.aor) <= MAX_AOR_LENGTH  # so a dropped one matches none
    assert column_length(CallParty.__table__.c.participant_id) == MAX_ID_LENGTH
    assert column_length(Call.__table__.c.recording_session_id) >= MAX_ID_LENGTH


def test_a_64_kb_name_is_cut_on_a_character_and_the_call_kept() -> None:
    name = "Ä" + "€" * 21_000  # 3 bytes a character: the cut must not split one
    other = ("p2", "sip:+31612345678@pstn.example", name)
    metadata = parse_metadata(document(ALICE, other))
    cut = metadata.participants[1].name
    assert cut is not None and len(cut) == MAX_NAME_LENGTH
    assert cut == name[: MAX_NAME_LENGTH - 1] + "…"
    assert cut.encode("utf-8").decode("utf-8") == cut
    assert metadata.participants[1].aors == ("sip:+31612345678@pstn.example",)
    assert metadata.participants[0].name == "Alice"
    assert [line for line in metadata.trimmed if "name" in line and "cut to 200" in line]
    assert all(len(line) < 200 for line in metadata.trimmed)  # the log never holds the 64 KB
    assert list(associate_streams(SDP, metadata).values()) == ["p1", "p2"]


def test_a_plain_64_kb_name() -> None:
    other = ("p2", "sip:bob@acme.example", "B" * KB64)
    [_alice, bob] = parse_metadata(document(ALICE, other)).participants
    assert bob.name == "B" * (MAX_NAME_LENGTH - 1) + "…"


def test_a_64_kb_aor_is_dropped_with_its_reason_and_the_party_kept() -> None:
    aor = "sip:" + "7" * KB64 + "@pstn.example"
    metadata = parse_metadata(document(ALICE, ("p2", aor, "Customer")))
    customer = metadata.participants[1]
    assert customer.aors == ()
    assert customer.name == "Customer"
    assert customer.sends == ("st1",)  # still associated: its stream is recorded
    [reason] = [line for line in metadata.trimmed if "AOR" in line]
    assert f"longer than {MAX_AOR_LENGTH} characters" in reason and "matches no user" in reason
    assert f"({len(aor)} characters)" in reason  # how long, not the value itself
    assert list(associate_streams(SDP, metadata).values()) == ["p1", "p2"]


def test_a_64_kb_aor_of_uri_parameters_keeps_the_address() -> None:
    aor = "sip:alice@acme.example;x-junk=" + "j" * KB64 + "?X-Header=1"
    metadata = parse_metadata(document(("p1", aor, "Alice")))
    assert metadata.participants[0].aors == ("sip:alice@acme.example",)
    assert any("URI parameters dropped" in line for line in metadata.trimmed)


def test_aors_that_fit_are_kept_verbatim() -> None:
    aor = "sip:alice@acme.example;transport=tcp"
    fits = "sip:" + "a" * (MAX_AOR_LENGTH - len("sip:@x.example")) + "@x.example"
    assert len(fits) == MAX_AOR_LENGTH
    metadata = parse_metadata(document(("p1", aor, "A"), ("p2", fits, "B" * MAX_NAME_LENGTH)))
    assert [p.aors for p in metadata.participants] == [(aor,), (fits,)]
    assert metadata.participants[1].name == "B" * MAX_NAME_LENGTH
    assert metadata.trimmed == ()


def test_long_ids_are_shortened_consistently_and_stay_distinct() -> None:
    long_a, long_b = "x" * 1000 + "a", "x" * 1000 + "b"
    xml = document((long_a, "sip:a@acme.example", "A"), (long_b, "sip:b@acme.example", "B"),
                   session="S" * 5000)  # fmt: skip
    metadata = parse_metadata(xml)
    ids = [p.id for p in metadata.participants]
    assert len(set(ids)) == 2 and all(len(i) <= MAX_ID_LENGTH for i in ids)
    assert metadata.session_id is not None and len(metadata.session_id) <= MAX_ID_LENGTH
    # participantstreamassoc named the same long ids: the association holds
    assert [p.sends for p in metadata.participants] == [("st0",), ("st1",)]
    assert parse_metadata(xml).participants == metadata.participants  # deterministic


def test_participants_and_streams_are_counted() -> None:
    many = [(f"p{i}", f"sip:u{i}@acme.example", f"U{i}") for i in range(MAX_PARTICIPANTS + 40)]
    metadata = parse_metadata(document(*many, streams=MAX_STREAMS + 40))
    assert [p.id for p in metadata.participants] == [p[0] for p in many[:MAX_PARTICIPANTS]]
    assert len(metadata.streams) == MAX_STREAMS
    assert f"participants beyond {MAX_PARTICIPANTS} left out" in metadata.trimmed
    assert f"streams beyond {MAX_STREAMS} left out" in metadata.trimmed
    assert len(metadata.trimmed) <= MAX_TRIM_NOTES + 1


def test_aors_per_participant_are_counted() -> None:
    aors = "".join(f"<aor>sip:a{i}@acme.example</aor>" for i in range(MAX_AORS + 5))
    xml = (
        '<recording_metadata xmlns="urn:ietf:params:xml:ns:siprec">'
        f'<participant id="p1">{aors}</participant></recording_metadata>'
    ).encode()
    [party] = parse_metadata(xml).participants
    assert party.aors == tuple(f"sip:a{i}@acme.example" for i in range(MAX_AORS))


def test_partial_updates_cannot_grow_past_the_count() -> None:
    first = [(f"p{i}", f"sip:u{i}@acme.example", f"U{i}") for i in range(MAX_PARTICIPANTS)]
    snapshot = parse_metadata(document(*first))
    later = [(f"q{i}", f"sip:v{i}@acme.example", f"V{i}") for i in range(10)]
    update = parse_metadata(document(*later, streams=0, datamode="partial"))
    assert not update.complete and update.trimmed == ()
    merged = snapshot.merged(update)
    assert len(merged.participants) == MAX_PARTICIPANTS
    assert merged.participants == snapshot.participants
    assert f"participants beyond {MAX_PARTICIPANTS} left out" in merged.trimmed


@pytest.mark.parametrize("count", [1, MAX_TRIM_NOTES * 3])
def test_trim_notes_are_bounded(count: int) -> None:
    parties = [(f"p{i}", "sip:x@acme.example", f"{i}" + "n" * 300) for i in range(count)]
    metadata = parse_metadata(document(*parties, streams=0))
    assert all(len(p.name or "") == MAX_NAME_LENGTH for p in metadata.participants)
    assert len(metadata.trimmed) == min(count, MAX_TRIM_NOTES + 1)
    if count > MAX_TRIM_NOTES:
        assert metadata.trimmed[-1] == "further trims not listed"


def test_untouched_documents_compare_as_before() -> None:
    metadata = parse_metadata(document(ALICE))
    assert metadata == RecordingMetadata(
        session_id="s1", participants=metadata.participants, streams=metadata.streams
    )
