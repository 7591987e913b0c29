"""Recording metadata: who takes part and who sends which stream (RFC 7865).

Parses the ``application/rs-metadata+xml`` part of a SIPREC offer (RFC 7866
section 9) into plain frozen dataclasses. Three dialects are accepted, since
deployed clients predate the RFC:

* RFC 7865 section 6, namespace ``urn:ietf:params:xml:ns:recording:1``, with
  ``participantstreamassoc`` elements (Cisco, OpenSIPS, Ribbon, Avaya, SEMS);
* the draft namespace ``urn:ietf:params:xml:ns:recording``, any prefix, with
  ``id=``/``session=`` attributes and ``<send>`` inside ``<participant>`` (Acme);
* the pre-RFC BroadWorks ``<recording_metadata>`` in ``urn:ietf:params:xml:ns:siprec``
  with ``<aor>`` children and ``<send><id>..</id></send>``.

Element names are compared case-insensitively (``dataMode`` vs ``datamode``);
elements in other namespaces (``apkt:``, ``callData``) and ``extensiondata``
are skipped. The XML parser is defusedxml with DTDs, entities and external
references forbidden, so hostile input fails fast with a 400.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, cast
from xml.etree.ElementTree import Element, ParseError

import defusedxml  # type: ignore[import-untyped]
import defusedxml.ElementTree as DefusedET  # type: ignore[import-untyped]

from callvault.errors import RemoteProtocolError

MAX_METADATA_BYTES: Final = 64 * 1024
MAX_DEPTH: Final = 32

RECORDING_NAMESPACES: Final = frozenset(
    {
        "urn:ietf:params:xml:ns:recording:1",  # RFC 7865 section 9
        "urn:ietf:params:xml:ns:recording",  # draft-ietf-siprec-metadata
        "urn:ietf:params:xml:ns:siprec",  # pre-RFC BroadWorks
        "",  # no namespace at all
    }
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class MetaParticipant:
    """A ``<participant>`` (RFC 7865 section 6.5) and the streams it sends and receives."""

    id: str
    aors: tuple[str, ...]
    name: str | None
    sends: tuple[str, ...]
    receives: tuple[str, ...]
    # True when the document stated this participant's streams (even as
    # empty); a partial update then replaces them, otherwise it keeps them.
    associated: bool = False


@dataclass(frozen=True)
class MetaStream:
    """A ``<stream>`` (RFC 7865 section 6.6): its id and the SDP ``a=label`` it names."""

    id: str
    label: str | None


@dataclass(frozen=True)
class RecordingMetadata:
    """One metadata document; ``complete`` is the RFC 7865 section 6.1 ``datamode``."""

    session_id: str | None
    participants: tuple[MetaParticipant, ...]
    streams: tuple[MetaStream, ...]
    complete: bool = True

    def participant(self, participant_id: str) -> MetaParticipant | None:
        return next((p for p in self.participants if p.id == participant_id), None)

    def merged(self, update: RecordingMetadata) -> RecordingMetadata:
        """Apply ``update`` to this snapshot (RFC 7865 section 6.1, RFC 7866 section 8.3).

        A complete update replaces everything. A partial one adds or replaces
        participants and streams by id, keeping what it does not restate.
        """
        if update.complete:
            return update
        participants = {p.id: p for p in self.participants}
        for new in update.participants:
            old = participants.get(new.id)
            participants[new.id] = new if old is None else _merge_participant(old, new)
        streams = {s.id: s for s in self.streams}
        for stream in update.streams:
            old_stream = streams.get(stream.id)
            if stream.label is None and old_stream is not None:
                stream = old_stream
            streams[stream.id] = stream
        return RecordingMetadata(
            session_id=update.session_id or self.session_id,
            participants=tuple(participants.values()),
            streams=tuple(streams.values()),
            complete=self.complete,
        )


def _merge_participant(old: MetaParticipant, new: MetaParticipant) -> MetaParticipant:
    return MetaParticipant(
        id=old.id,
        aors=new.aors or old.aors,
        name=new.name if new.name is not None else old.name,
        sends=new.sends if new.associated else old.sends,
        receives=new.receives if new.associated else old.receives,
        associated=old.associated or new.associated,
    )


def normalise_aor(value: str) -> str | None:
    """An AOR as a URI: ``<>`` and blanks dropped, ``sip:`` added when no scheme."""
    aor = value.strip().strip("<>").strip()
    if not aor:
        return None
    return aor if _SCHEME.match(aor) else f"sip:{aor}"


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"bad recording metadata: {message}", status=400)


def _local(tag: object) -> str | None:
    """The lowercased local name of a recording-namespace element, else None."""
    if not isinstance(tag, str):
        return None  # comments and processing instructions
    namespace, _, local = tag[1:].rpartition("}") if tag.startswith("{") else ("", "", tag)
    return local.lower() if namespace in RECORDING_NAMESPACES else None


def _attr(element: Element, *names: str) -> str | None:
    for key, value in element.attrib.items():
        if key.rpartition("}")[2].lower() in names and value.strip():
            return value.strip()
    return None


def _text(element: Element) -> str | None:
    text = "".join(element.itertext()).strip()
    return text or None


def _children(element: Element, *names: str) -> Iterator[Element]:
    return (child for child in element if _local(child.tag) in names)


def _parse_xml(xml: bytes) -> Element:
    if len(xml) > MAX_METADATA_BYTES:
        raise _bad(f"{len(xml)} bytes exceeds {MAX_METADATA_BYTES}")
    try:
        root = DefusedET.fromstring(
            xml.strip(), forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DefusedXmlException as exc:
        raise _bad(f"forbidden XML construct ({type(exc).__name__})") from exc
    except (ParseError, ValueError, LookupError) as exc:
        raise _bad(f"not well-formed XML ({exc})") from exc
    root = cast(Element, root)
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _bad(f"elements nested deeper than {MAX_DEPTH}")
        stack.extend((child, depth + 1) for child in element)
    return root


@dataclass
class _PartyDraft:
    id: str
    aors: list[str] = field(default_factory=list)
    name: str | None = None
    sends: list[str] = field(default_factory=list)
    receives: list[str] = field(default_factory=list)
    associated: bool = False

    def add_aor(self, raw: str | None) -> None:
        aor = normalise_aor(raw or "")
        if aor is not None and aor not in self.aors:
            self.aors.append(aor)

    def add_streams(self, element: Element) -> None:
        """Read ``<send>``/``<recv>`` children, plain or with ``<id>`` inside (BroadWorks)."""
        for child in element:
            kind = _local(child.tag)
            if kind not in ("send", "recv", "receive"):
                continue
            self.associated = True
            ids = [_text(sub) for sub in _children(child, "id")] or [_text(child)]
            target = self.sends if kind == "send" else self.receives
            target.extend(i for i in ids if i is not None and i not in target)

    def freeze(self) -> MetaParticipant:
        return MetaParticipant(
            self.id,
            tuple(self.aors),
            self.name,
            tuple(self.sends),
            tuple(self.receives),
            self.associated,
        )


class _Reader:
    """Walks one document, collecting participants and streams in document order."""

    def __init__(self) -> None:
        self.complete = True
        self.session_id: str | None = None
        self.parties: dict[str, _PartyDraft] = {}
        self.streams: dict[str, MetaStream] = {}

    def party(self, participant_id: str) -> _PartyDraft:
        return self.parties.setdefault(participant_id, _PartyDraft(participant_id))

    def read_participant(self, element: Element) -> None:
        participant_id = _attr(element, "participant_id", "id") or f"#{len(self.parties)}"
        party = self.party(participant_id)
        for child in element:
            kind = _local(child.tag)
            if kind == "nameid":
                party.add_aor(_attr(child, "aor"))
                for name in _children(child, "name"):
                    party.name = party.name or _text(name)
            elif kind == "aor":
                party.add_aor(_text(child))
            elif kind == "name":
                party.name = party.name or _text(child)
        party.name = party.name or _attr(element, "name")
        party.add_streams(element)

    def read_stream(self, element: Element) -> None:
        stream_id = _attr(element, "stream_id", "id")
        if stream_id is None:
            return  # unusable without an id to associate
        label = next((_text(c) for c in _children(element, "label")), None)
        self.streams[stream_id] = MetaStream(stream_id, label or _attr(element, "label"))

    def read(self, root: Element) -> None:
        stack = [root]
        while stack:
            element = stack.pop()
            kind = _local(element.tag)
            if kind == "datamode":
                self.complete = (_text(element) or "").lower() != "partial"
            elif kind == "session":
                self.session_id = self.session_id or _attr(element, "session_id", "id")
                stack.extend(reversed(list(element)))
            elif kind == "participant":
                self.read_participant(element)
            elif kind == "stream":
                self.read_stream(element)
            elif kind == "participantstreamassoc":
                participant_id = _attr(element, "participant_id", "id")
                if participant_id is not None:
                    party = self.party(participant_id)
                    party.associated = True
                    party.add_streams(element)
            elif element is root or kind == "group":
                stack.extend(reversed(list(element)))
            # anything else (extensiondata, foreign namespaces, times) is skipped


def parse_metadata(xml: bytes) -> RecordingMetadata:
    """Parse one recording metadata document (RFC 7865 section 6)."""
    root = _parse_xml(xml)
    if _local(root.tag) not in ("recording", "recording_metadata"):
        raise _bad(f"root element {root.tag!r} is not <recording> (RFC 7865 section 6.1)")
    reader = _Reader()
    reader.read(root)
    return RecordingMetadata(
        session_id=reader.session_id,
        participants=tuple(party.freeze() for party in reader.parties.values()),
        streams=tuple(reader.streams.values()),
        complete=reader.complete,
    )
