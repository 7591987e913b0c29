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

Bounds (SPEC section 7, "Metadata length"): RFC 7865 sets no length on names,
AORs or ids and no count of participants or streams, but they end up in
fixed-size columns (``CallParty``, ``Call``). A document that exceeds them is
not refused, since the call must still be recorded: names are cut to
``MAX_NAME_LENGTH`` characters, an AOR too long even without its URI
parameters is dropped (it can match no user and fits no column), an over-long
id is shortened to a unique digest form, and participants or streams beyond
the count limits are left out. Each such change is logged and listed in
``RecordingMetadata.trimmed``.
"""

from __future__ import annotations

import hashlib
import logging
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
# Column sizes of what the metadata fills (db/models.py; a test keeps them equal).
MAX_NAME_LENGTH: Final = 200  # CallParty.name, Call.from_name / to_name
MAX_AOR_LENGTH: Final = 255  # CallParty.aor, Call.from_aor / to_aor, UserAor.aor
MAX_ID_LENGTH: Final = 255  # CallParty.participant_id, Call.recording_session_id
# Counts per document (or per merged snapshot): far above any real call or
# conference leg, low enough that one INVITE cannot create thousands of rows.
MAX_PARTICIPANTS: Final = 64
MAX_STREAMS: Final = 64
MAX_AORS: Final = 8  # per participant
MAX_TRIM_NOTES: Final = 16  # lines in RecordingMetadata.trimmed (and the log) per document

log = logging.getLogger(__name__)

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
    # What the parser cut or left out to stay within the bounds above, one
    # line each (empty for every document a real client sends).
    trimmed: tuple[str, ...] = ()

    def participant(self, participant_id: str) -> MetaParticipant | None:
        return next((p for p in self.participants if p.id == participant_id), None)

    def merged(self, update: RecordingMetadata) -> RecordingMetadata:
        """Apply ``update`` to this snapshot (RFC 7865 section 6.1, RFC 7866 section 8.3).

        A complete update replaces everything. A partial one adds or replaces
        participants and streams by id, keeping what it does not restate.
        """
        if update.complete:
            return update
        trimmed = list(update.trimmed)
        participants = {p.id: p for p in self.participants}
        for new in update.participants:
            old = participants.get(new.id)
            if old is None and len(participants) >= MAX_PARTICIPANTS:
                _note(trimmed, f"participants beyond {MAX_PARTICIPANTS} left out")
                continue
            participants[new.id] = new if old is None else _merge_participant(old, new)
        streams = {s.id: s for s in self.streams}
        for stream in update.streams:
            old_stream = streams.get(stream.id)
            if old_stream is None and len(streams) >= MAX_STREAMS:
                _note(trimmed, f"streams beyond {MAX_STREAMS} left out")
                continue
            if stream.label is None and old_stream is not None:
                stream = old_stream
            streams[stream.id] = stream
        return RecordingMetadata(
            session_id=update.session_id or self.session_id,
            participants=tuple(participants.values()),
            streams=tuple(streams.values()),
            complete=self.complete,
            trimmed=tuple(trimmed),
        )


def _merge_participant(old: MetaParticipant, new: MetaParticipant) -> MetaParticipant:
    # Each side is already within the per-participant bounds, and neither list
    # is concatenated, so the merge stays within them too.
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


def _note(trimmed: list[str], text: str) -> None:
    """Add ``text`` to ``trimmed`` once; past ``MAX_TRIM_NOTES``, one closing line."""
    if text in trimmed or len(trimmed) > MAX_TRIM_NOTES:
        return
    trimmed.append(text if len(trimmed) < MAX_TRIM_NOTES else "further trims not listed")


def _shown(value: str) -> str:
    """A value for a log line: its start and its length, never all of a hostile string."""
    return repr(value) if len(value) <= 40 else f"{value[:32]!r}... ({len(value)} characters)"


def bound_name(name: str | None, trimmed: list[str]) -> str | None:
    """``name`` cut to ``MAX_NAME_LENGTH`` characters, ending in "…" when cut.

    Python strings slice by code point, so the cut never falls inside a
    character's UTF-8 bytes; the column counts characters too (PostgreSQL).
    """
    if name is None or len(name) <= MAX_NAME_LENGTH:
        return name
    _note(trimmed, f"name {_shown(name)} cut to {MAX_NAME_LENGTH} characters")
    return name[: MAX_NAME_LENGTH - 1].rstrip() + "…"


def bound_aor(aor: str, trimmed: list[str]) -> str | None:
    """``aor`` if it fits ``MAX_AOR_LENGTH``, else without URI parameters, else None.

    Parameters and headers (``;transport=tcp``, ``?X=y``) take no part in
    matching a party to a user (``tenants.numbers.split_aor``), so dropping
    them keeps what matters. An AOR still too long is dropped: it can match
    no user (their AORs are at most as long) and fits no column.
    """
    if len(aor) <= MAX_AOR_LENGTH:
        return aor
    user, at, host = aor.rpartition("@")
    bare = user + at + re.split(r"[;?]", host, maxsplit=1)[0] if at else re.split(r"[;?]", aor)[0]
    if len(bare) <= MAX_AOR_LENGTH:
        _note(trimmed, f"AOR {_shown(aor)}: URI parameters dropped to fit {MAX_AOR_LENGTH}")
        return bare
    _note(
        trimmed,
        f"AOR {_shown(aor)} dropped: longer than {MAX_AOR_LENGTH} characters, it matches no user",
    )
    return None


def bound_id(value: str, trimmed: list[str]) -> str:
    """``value`` if it fits ``MAX_ID_LENGTH``, else its start and a digest of all of it.

    The same long id always gives the same short one, so references to it
    (``<send>``, ``participantstreamassoc``) still meet, and two long ids
    sharing a prefix stay apart.
    """
    if len(value) <= MAX_ID_LENGTH:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    short = f"{value[: MAX_ID_LENGTH - len(digest) - 1]}~{digest}"
    _note(trimmed, f"id {_shown(value)} shortened to {MAX_ID_LENGTH} characters")
    return short


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
    trimmed: list[str]  # the reader's: where bounds applied are noted
    aors: list[str] = field(default_factory=list)
    name: str | None = None
    sends: list[str] = field(default_factory=list)
    receives: list[str] = field(default_factory=list)
    associated: bool = False

    def add_aor(self, raw: str | None) -> None:
        aor = normalise_aor(raw or "")
        if aor is None:
            return
        aor = bound_aor(aor, self.trimmed)
        if aor is None or aor in self.aors:
            return
        if len(self.aors) >= MAX_AORS:
            _note(self.trimmed, f"participant {_shown(self.id)}: AORs beyond {MAX_AORS} left out")
            return
        self.aors.append(aor)

    def set_name(self, name: str | None) -> None:
        """The first name the document gives wins (nameID's, then the attribute)."""
        if self.name is None:
            self.name = bound_name(name, self.trimmed)

    def add_streams(self, element: Element) -> None:
        """Read ``<send>``/``<recv>`` children, plain or with ``<id>`` inside (BroadWorks)."""
        for child in element:
            kind = _local(child.tag)
            if kind not in ("send", "recv", "receive"):
                continue
            self.associated = True
            ids = [_text(sub) for sub in _children(child, "id")] or [_text(child)]
            target = self.sends if kind == "send" else self.receives
            for stream_id in (bound_id(i, self.trimmed) for i in ids if i is not None):
                if stream_id in target:
                    continue
                if len(target) >= MAX_STREAMS:
                    note = f"participant {_shown(self.id)}: streams beyond {MAX_STREAMS} left out"
                    _note(self.trimmed, note)
                    break
                target.append(stream_id)

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
        self.trimmed: list[str] = []

    def party(self, participant_id: str) -> _PartyDraft | None:
        """The draft of ``participant_id``; None (and noted) once the count is reached."""
        participant_id = bound_id(participant_id, self.trimmed)
        party = self.parties.get(participant_id)
        if party is None:
            if len(self.parties) >= MAX_PARTICIPANTS:
                _note(self.trimmed, f"participants beyond {MAX_PARTICIPANTS} left out")
                return None
            party = self.parties[participant_id] = _PartyDraft(participant_id, self.trimmed)
        return party

    def read_participant(self, element: Element) -> None:
        participant_id = _attr(element, "participant_id", "id") or f"#{len(self.parties)}"
        party = self.party(participant_id)
        if party is None:
            return
        for child in element:
            kind = _local(child.tag)
            if kind == "nameid":
                party.add_aor(_attr(child, "aor"))
                for name in _children(child, "name"):
                    party.set_name(_text(name))
            elif kind == "aor":
                party.add_aor(_text(child))
            elif kind == "name":
                party.set_name(_text(child))
        party.set_name(_attr(element, "name"))
        party.add_streams(element)

    def read_stream(self, element: Element) -> None:
        stream_id = _attr(element, "stream_id", "id")
        if stream_id is None:
            return  # unusable without an id to associate
        stream_id = bound_id(stream_id, self.trimmed)
        if stream_id not in self.streams and len(self.streams) >= MAX_STREAMS:
            _note(self.trimmed, f"streams beyond {MAX_STREAMS} left out")
            return
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
                found = _attr(element, "session_id", "id")
                if self.session_id is None and found is not None:
                    self.session_id = bound_id(found, self.trimmed)
                stack.extend(reversed(list(element)))
            elif kind == "participant":
                self.read_participant(element)
            elif kind == "stream":
                self.read_stream(element)
            elif kind == "participantstreamassoc":
                participant_id = _attr(element, "participant_id", "id")
                party = None if participant_id is None else self.party(participant_id)
                if party is not None:
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
    for note in reader.trimmed:
        log.warning("recording metadata of session %s trimmed: %s", reader.session_id, note)
    return RecordingMetadata(
        session_id=reader.session_id,
        participants=tuple(party.freeze() for party in reader.parties.values()),
        streams=tuple(reader.streams.values()),
        complete=reader.complete,
        trimmed=tuple(reader.trimmed),
    )
