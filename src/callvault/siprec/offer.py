"""Reading a SIPREC offer: is it one, what it carries, who sends which stream.

RFC 7866 section 6.1 marks a recording session with the ``+sip.src`` Contact
feature tag (older clients: ``;src``) and often ``Require: siprec``; its body
(section 9) is SDP plus recording metadata (RFC 7865). ``associate_streams``
maps each m-line to the participant sending it: by ``a=label`` and the
metadata's stream association (RFC 7865 section 6.7), else by order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import sipmessage

from callvault.errors import RemoteProtocolError
from callvault.sip.sdp import SessionDescription, parse_sdp
from callvault.siprec.metadata import MetaParticipant, RecordingMetadata, parse_metadata
from callvault.siprec.multipart import BodyPart, body_parts

SDP_TYPE: Final = "application/sdp"
METADATA_TYPES: Final = frozenset({"application/rs-metadata+xml", "application/rs-metadata"})

_SRC_TAG = re.compile(r";\s*(?:\+sip\.src|src)\s*(?=[;>,=\s]|$)", re.IGNORECASE)


def _has_siprec_option(values: list[str]) -> bool:
    return any(token.strip().lower() == "siprec" for v in values for token in v.split(","))


def is_siprec_request(message: sipmessage.Request) -> bool:
    """True for an RFC 7866 section 6.1 recording session request.

    ``Require: siprec``, a Contact with ``+sip.src`` or ``;src``, or a body
    part of type ``application/rs-metadata(+xml)`` each suffice.
    """
    headers = message.headers
    if _has_siprec_option(headers.getlist("Require")):
        return True
    if any(_SRC_TAG.search(contact) for contact in headers.getlist("Contact")):
        return True
    try:
        parts = body_parts(headers.get("Content-Type"), bytes(message.body or b""))
    except RemoteProtocolError:
        return False  # the offer parser will say what is wrong
    return any(part.content_type in METADATA_TYPES for part in parts)


@dataclass
class SiprecOffer:
    """The SDP and metadata of one SIPREC request body; either may be absent."""

    sdp: SessionDescription | None
    metadata: RecordingMetadata | None


def _first(parts: list[BodyPart], types: frozenset[str]) -> BodyPart | None:
    return next((part for part in parts if part.content_type in types), None)


def parse_offer(content_type_header: str | None, body: bytes) -> SiprecOffer:
    """Parse an INVITE, re-INVITE or UPDATE body (RFC 7866 section 9).

    Parts may come in any order; other parts (``application/gtd``) are ignored.
    A non-empty body with neither SDP nor metadata is answered 415.
    """
    parts = body_parts(content_type_header, body)
    sdp_part = _first(parts, frozenset({SDP_TYPE}))
    metadata_part = _first(parts, METADATA_TYPES)
    if parts and sdp_part is None and metadata_part is None:
        offered = ", ".join(sorted({part.content_type for part in parts}))
        raise RemoteProtocolError(
            f"body carries neither SDP nor recording metadata: {offered}",
            status=415,
            warning=f"unsupported body types {offered}",
        )
    return SiprecOffer(
        sdp=parse_sdp(sdp_part.body) if sdp_part is not None else None,
        metadata=parse_metadata(metadata_part.body) if metadata_part is not None else None,
    )


def _sender_by_label(metadata: RecordingMetadata) -> dict[str, str]:
    """``a=label`` -> id of the participant sending that stream."""
    senders: dict[str, str] = {}
    for participant in metadata.participants:
        for stream_id in participant.sends:
            senders.setdefault(stream_id, participant.id)
    # A stream only declared as received by one of exactly two parties is sent by the other.
    if len(metadata.participants) == 2:
        first, second = metadata.participants
        for receiver, other in ((first, second), (second, first)):
            for stream_id in receiver.receives:
                senders.setdefault(stream_id, other.id)
    by_label: dict[str, str] = {}
    for stream in metadata.streams:
        if stream.label is not None and stream.id in senders:
            by_label.setdefault(stream.label, senders[stream.id])
    for stream_id, participant_id in senders.items():
        by_label.setdefault(stream_id, participant_id)  # some clients label with the stream id
    return by_label


def _with_aor(participants: tuple[MetaParticipant, ...]) -> list[str]:
    return [p.id for p in participants if p.aors]


def associate_streams(
    sdp: SessionDescription, metadata: RecordingMetadata | None
) -> dict[int, str | None]:
    """m-line index -> id of the participant sending it, or None when unknown or mixed.

    Matches ``a=label`` to the metadata stream and its sender; m-lines left
    over take, in order, the participants with an AOR not yet matched. A
    single audio m-line carries both directions and maps to None.
    """
    result: dict[int, str | None] = dict.fromkeys(range(len(sdp.media)))
    audio = [i for i, media in enumerate(sdp.media) if media.media == "audio"]
    if metadata is None or len(audio) < 2:
        return result
    by_label = _sender_by_label(metadata)
    for index in audio:
        label = sdp.media[index].label
        if label is not None and label in by_label:
            result[index] = by_label[label]
    used = {pid for pid in result.values() if pid is not None}
    spare = iter([pid for pid in _with_aor(metadata.participants) if pid not in used])
    for index in audio:
        if result[index] is None:
            result[index] = next(spare, None)
    return result
