"""The session journal: what capture tells the finisher about a call.

A call being recorded is a spool directory (see ``spool.py``) holding an
append-only ``journal.jsonl`` of these events plus one binary file of raw RTP
per stream. Every ``t`` is milliseconds since the session started (the INVITE
was accepted); RTP arrival times in the stream files use the same clock, so
the finisher can lay every stream on one call timeline.

Both integration modes (SIPREC and the in-path B2BUA) write the same journal,
so the finisher and the policy engine never see SIP.

Each event type is one frozen dataclass with ``parse(raw)`` and ``to_dict()``;
a line is ``{"type": ..., "t": ..., <the event's keys>}`` as compact JSON, the
keys in the order the recorder has always written them, so a spool written by
an older version reads back and an event written now is the same bytes.
``read_lines`` is the one reader: a spool left by a crashed process must never
crash the finisher, so a malformed line is skipped and counted
(``MalformedEvent``), as is an event of a type this version does not know
(``UnknownEventType``, counted by type).

One call can hold several recordings (SPEC section 2, "Matching parties"):
``start`` and every ``parties`` event carry ``recordings``, one
``RecordingRef`` per recorded user of an active tenant present at that time.
Its ``key`` (``"<tenant_id>.<rank>"``) names the recording for the whole
call: a transfer keeps the key and changes ``user_id``/``participant_id``; a
key missing from a later ``parties`` event means that user left. The older
keys (``tenant_id``, ``recorded_user_id``, ``policy``) describe the first
recording only; a journal without ``recordings`` is finished as one.
``replay.py`` turns the events into the call's facts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

from callvault.media.codec import Codec

Channel = Literal["left", "right", "mix"]
"""Where a stream goes in a stereo file: left is the recorded user's side,
right the other party's; ``mix`` is a stream carrying both directions."""

Side = Literal["user", "other"]

MAX_RECORDINGS = 32
"""More recorded users than this in one call are not believed (a journal bug)."""
MAX_TENANTS = 16  # tenants of one call read from one event
MAX_PARTIES = 256  # participants of one event (metadata is bounded far below)
MAX_STREAMS = 64  # m-lines of one event
MAX_TEXT = 1024  # any one string of the journal


class JournalError(ValueError):
    """A journal line this version cannot use."""


class MalformedEvent(JournalError):
    """A line that is not JSON, or an event whose keys have the wrong types."""


class UnknownEventType(JournalError):
    """An event of a type this version does not know (skipped, counted)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown journal event type {kind!r}")
        self.kind = kind


# -- checked reading of raw values ---------------------------------------------------


def _int(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key)
    if type(value) is not int:
        raise MalformedEvent(f"{key}: an integer is required, not {value!r:.40}")
    return value


def _opt_int(raw: Mapping[str, Any], key: str) -> int | None:
    return None if raw.get(key) is None else _int(raw, key)


def _str(raw: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise MalformedEvent(f"{key}: a string is required, not {value!r:.40}")
    return value


def _opt_str(raw: Mapping[str, Any], key: str) -> str | None:
    return None if raw.get(key) is None else _str(raw, key)


def _bool(raw: Mapping[str, Any], key: str) -> bool:
    value = raw.get(key)
    if not isinstance(value, bool):
        raise MalformedEvent(f"{key}: true or false is required, not {value!r:.40}")
    return value


def _list(raw: Mapping[str, Any], key: str, limit: int) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise MalformedEvent(f"{key}: a list is required")
    return value[:limit]


# -- the parts of events ------------------------------------------------------------------


@dataclass(frozen=True)
class StreamLayout:
    """One recorded m-line: its index in the SDP, label, codecs and channel."""

    index: int
    label: str | None
    codecs: dict[int, Codec]
    channel: Channel
    participant_id: str | None = None  # who sends this stream, when known
    active: bool = True  # False while paused (a=inactive or c=0.0.0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "label": self.label,
            "codecs": {
                str(pt): [c.name, c.clock_rate, c.channels] for pt, c in self.codecs.items()
            },
            "channel": self.channel,
            "participant_id": self.participant_id,
            "active": self.active,
        }

    @classmethod
    def parse(cls, raw: Any) -> Self:
        if not isinstance(raw, dict):
            raise MalformedEvent("a stream must be an object")
        codecs_raw = raw.get("codecs")
        if not isinstance(codecs_raw, dict):
            raise MalformedEvent("stream codecs must be an object")
        codecs: dict[int, Codec] = {}
        for pt, value in list(codecs_raw.items())[:128]:
            if not (isinstance(pt, str) and pt.isdigit() and isinstance(value, list)):
                raise MalformedEvent(f"stream codec {pt!r:.20} is malformed")
            if len(value) != 3 or not isinstance(value[0], str):
                raise MalformedEvent(f"stream codec {pt} is malformed")
            if type(value[1]) is not int or type(value[2]) is not int:
                raise MalformedEvent(f"stream codec {pt} is malformed")
            codecs[int(pt)] = Codec(value[0][:64], value[1], value[2])
        channel = raw.get("channel")
        if channel not in ("left", "right", "mix"):
            raise MalformedEvent(f"stream channel {channel!r:.20} is unknown")
        active = raw.get("active", True)
        return cls(
            index=_int(raw, "index"),
            label=_opt_str(raw, "label"),
            codecs=codecs,
            channel=channel,
            participant_id=_opt_str(raw, "participant_id"),
            active=active if isinstance(active, bool) else True,
        )


@dataclass(frozen=True)
class Party:
    """A participant as the journal keeps it (already matched to a user or not)."""

    participant_id: str
    aor: str | None
    name: str | None
    number: str | None = None  # E.164 when it could be derived
    user_id: int | None = None  # the matched user of the tenant, if any
    side: Side = "other"

    def to_dict(self) -> dict[str, Any]:
        return {
            "participant_id": self.participant_id,
            "aor": self.aor,
            "name": self.name,
            "number": self.number,
            "user_id": self.user_id,
            "side": self.side,
        }

    @classmethod
    def parse(cls, raw: Any) -> Self:
        if not isinstance(raw, dict):
            raise MalformedEvent("a party must be an object")
        side = raw.get("side", "other")
        if side not in ("user", "other"):
            raise MalformedEvent(f"party side {side!r:.20} is unknown")
        return cls(
            participant_id=_str(raw, "participant_id"),
            aor=_opt_str(raw, "aor"),
            name=_opt_str(raw, "name"),
            number=_opt_str(raw, "number"),
            user_id=_opt_int(raw, "user_id"),
            side=side,
        )


ContactLists = dict[str, list[str]]  # "blacklist"/"whitelist" -> numbers and AORs


@dataclass(frozen=True)
class PolicySnapshot:
    """The recording settings of a recording's tenant and user when journalled, so
    the finisher needs no database (SPEC section 3). The defaults, here only, are
    what a journal without a key means: short code ``*1``, cut pauses, both channels.

    ``modes``: ``{str(user_id): mode}``; ``contacts``: ``{str(user_id): lists}``.
    """

    short_code: str = "*1"
    pause_mode: Literal["cut", "silence"] = "cut"
    channels: Literal["both", "user", "other", "mix"] = "both"
    modes: dict[str, str] = field(default_factory=dict)
    contacts: dict[str, ContactLists] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        short_code: str,
        pause_mode: str,
        channels: str,
        modes: dict[str, str],
        contacts: dict[str, ContactLists],
    ) -> Self:
        """A snapshot of a tenant's settings as the directory holds them (plain
        strings: a value this version does not know is read as the default)."""
        return cls.parse(
            {
                "short_code": short_code,
                "pause_mode": pause_mode if pause_mode in ("cut", "silence") else "cut",
                "channels": channels if channels in ("both", "user", "other", "mix") else "both",
                "modes": modes,
                "contacts": contacts,
            }
        )

    def mode_of(self, user_id: int) -> str | None:
        return self.modes.get(str(user_id))

    def contacts_of(self, user_id: int) -> ContactLists:
        return self.contacts.get(str(user_id), {})

    def merged(self, later: PolicySnapshot) -> PolicySnapshot:
        """These settings with a later snapshot's users added (a transfer's new user)."""
        return PolicySnapshot(
            self.short_code,
            self.pause_mode,
            self.channels,
            {**self.modes, **later.modes},
            {**self.contacts, **later.contacts},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "short_code": self.short_code,
            "pause_mode": self.pause_mode,
            "channels": self.channels,
            "modes": dict(self.modes),
            "contacts": {user: dict(lists) for user, lists in self.contacts.items()},
        }

    @classmethod
    def parse(cls, raw: Any) -> Self:
        if not isinstance(raw, dict):
            raise MalformedEvent("a policy snapshot must be an object")
        default = cls()
        pause_mode = raw.get("pause_mode", default.pause_mode)
        channels = raw.get("channels", default.channels)
        if pause_mode not in ("cut", "silence") or channels not in ("both", "user", "other", "mix"):
            raise MalformedEvent("a policy snapshot's pause mode or channels are unknown")
        modes_raw = raw.get("modes", {})
        contacts_raw = raw.get("contacts", {})
        if not isinstance(modes_raw, dict) or not isinstance(contacts_raw, dict):
            raise MalformedEvent("a policy snapshot's modes and contacts must be objects")
        modes = {str(u): m for u, m in modes_raw.items() if isinstance(m, str)}
        contacts: dict[str, ContactLists] = {}
        for user, lists in contacts_raw.items():
            if not isinstance(lists, dict):
                raise MalformedEvent("a user's contact lists must be an object")
            contacts[str(user)] = {
                str(name): [str(entry) for entry in entries]
                for name, entries in lists.items()
                if isinstance(entries, list)
            }
        return cls(
            _str(raw, "short_code", default.short_code), pause_mode, channels, modes, contacts
        )


@dataclass(frozen=True)
class RecordingRef:
    """One recording of the call as a ``start``/``parties`` event lists it."""

    key: str  # "<tenant_id>.<rank>": rank orders the tenant's recorded users in the call
    tenant_id: int
    user_id: int
    participant_id: str
    policy: PolicySnapshot

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "tenant_id": self.tenant_id,
            "user_id": self.user_id,
            "participant_id": self.participant_id,
            "policy": self.policy.to_dict(),
        }

    @classmethod
    def parse(cls, raw: Any) -> Self:
        if not isinstance(raw, dict):
            raise MalformedEvent("a recording must be an object")
        key = _str(raw, "key")
        if not 0 < len(key) <= 64:
            raise MalformedEvent("a recording key must have 1 to 64 characters")
        policy = raw.get("policy")
        return cls(
            key=key,
            tenant_id=_int(raw, "tenant_id"),
            user_id=_int(raw, "user_id"),
            participant_id=_str(raw, "participant_id"),
            policy=PolicySnapshot.parse(policy) if isinstance(policy, dict) else PolicySnapshot(),
        )


def _recordings(raw: Mapping[str, Any]) -> tuple[RecordingRef, ...] | None:
    """An event's ``recordings``; None when it has none (the one-recording format).
    A malformed entry is skipped: one bad entry must not cost the call's others."""
    if not isinstance(raw.get("recordings"), list):
        return None
    refs: list[RecordingRef] = []
    for entry in _list(raw, "recordings", MAX_RECORDINGS):
        try:
            ref = RecordingRef.parse(entry)
        except JournalError:
            continue
        if all(ref.key != known.key for known in refs):
            refs.append(ref)
    return tuple(refs)


def _parties(raw: Mapping[str, Any]) -> tuple[Party, ...]:
    """An event's ``parties``; a malformed party is skipped, as with recordings."""
    parties = []
    for entry in _list(raw, "parties", MAX_PARTIES):
        try:
            parties.append(Party.parse(entry))
        except JournalError:
            continue
    return tuple(parties)


# -- the events ----------------------------------------------------------------------------


class _Line:
    """What every event does with its line."""

    type: ClassVar[str]
    t: int

    def body(self) -> dict[str, Any]:
        """The event's own keys, in the order they are written."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "t": self.t, **self.body()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


@dataclass(frozen=True, kw_only=True)
class PartyState(_Line):
    """Who is in the call and who is recorded: the keys ``start`` and ``parties`` share.

    ``tenants``: every tenant a party belongs to (each lists the call, recorded or
    not); ``recordings`` None: a journal of the one-recording format."""

    parties: tuple[Party, ...] = ()
    tenant_id: int | None = None
    recorded_user_id: int | None = None
    policy: PolicySnapshot | None = None
    not_recorded_reason: str | None = None
    tenants: tuple[int, ...] | None = None
    recordings: tuple[RecordingRef, ...] | None = None

    def party_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "parties": [p.to_dict() for p in self.parties],
            "tenant_id": self.tenant_id,
            "recorded_user_id": self.recorded_user_id,
            "policy": None if self.policy is None else self.policy.to_dict(),
            "not_recorded_reason": self.not_recorded_reason,
        }
        if self.tenants is not None:
            body["tenants"] = list(self.tenants)
        if self.recordings is not None:
            body["recordings"] = [r.to_dict() for r in self.recordings]
        return body

    @staticmethod
    def parse_party_state(raw: Mapping[str, Any]) -> dict[str, Any]:
        tenants = raw.get("tenants")
        policy = raw.get("policy")
        return {
            "parties": _parties(raw),
            "tenant_id": raw["tenant_id"] if type(raw.get("tenant_id")) is int else None,
            "recorded_user_id": _opt_int(raw, "recorded_user_id"),
            # an empty snapshot is no snapshot (the recorder wrote {} for "none")
            "policy": PolicySnapshot.parse(policy) if isinstance(policy, dict) and policy else None,
            "not_recorded_reason": _opt_str(raw, "not_recorded_reason"),
            "tenants": tuple(t for t in tenants[:MAX_TENANTS] if type(t) is int)
            if isinstance(tenants, list)
            else None,
            "recordings": _recordings(raw),
        }

    def party_tenants(self) -> list[int]:
        """The tenants this event's parties belong to: ``tenant_id`` and ``tenants``
        (a journal of an older version has only the former)."""
        tenants = list(self.tenants or ())
        return tenants if self.tenant_id is None else [self.tenant_id, *tenants]


@dataclass(frozen=True, kw_only=True)
class Start(PartyState):
    """The call was accepted: its ids, wall clock, first streams and parties."""

    type: ClassVar[str] = "start"
    t: int
    call_uuid: str
    started_at: int  # wall clock (unix epoch ms) of call time 0
    sip_call_id: str = ""
    recording_session_id: str | None = None
    streams: tuple[StreamLayout, ...] = ()

    def body(self) -> dict[str, Any]:
        return {
            "call_uuid": self.call_uuid,
            "sip_call_id": self.sip_call_id,
            "recording_session_id": self.recording_session_id,
            "started_at": self.started_at,
            "streams": [s.to_dict() for s in self.streams],
            **self.party_body(),
        }

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        return cls(
            t=_int(raw, "t"),
            call_uuid=_str(raw, "call_uuid"),
            started_at=_int(raw, "started_at"),
            sip_call_id=_str(raw, "sip_call_id", ""),
            recording_session_id=_opt_str(raw, "recording_session_id"),
            streams=tuple(StreamLayout.parse(s) for s in _list(raw, "streams", MAX_STREAMS)),
            **cls.parse_party_state(raw),
        )


@dataclass(frozen=True, kw_only=True)
class Parties(PartyState):
    """The metadata changed who is in the call (a transfer, a user named late)."""

    type: ClassVar[str] = "parties"
    t: int

    def body(self) -> dict[str, Any]:
        return self.party_body()

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        return cls(t=_int(raw, "t"), **cls.parse_party_state(raw))


@dataclass(frozen=True, kw_only=True)
class Answer(_Line):
    """The call was answered (SIPREC: the recording's 200; B2BUA: leg b's 200)."""

    type: ClassVar[str] = "answer"
    t: int

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        return cls(t=_int(raw, "t"))


@dataclass(frozen=True, kw_only=True)
class Streams(_Line):
    """The streams after a re-offer. ``channels_from``: the sides became known
    only now (the recorded user was named late) but hold since then (0: all call)."""

    type: ClassVar[str] = "streams"
    t: int
    streams: tuple[StreamLayout, ...]
    channels_from: int | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"streams": [s.to_dict() for s in self.streams]}
        if self.channels_from is not None:
            body["channels_from"] = self.channels_from
        return body

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        return cls(
            t=_int(raw, "t"),
            streams=tuple(StreamLayout.parse(s) for s in _list(raw, "streams", MAX_STREAMS)),
            channels_from=_opt_int(raw, "channels_from"),
        )


@dataclass(frozen=True, kw_only=True)
class _StreamChange(_Line):
    """A change of one stream (``stream``), or of the whole recording when None."""

    t: int
    stream: int | None = None

    def body(self) -> dict[str, Any]:
        return {"stream": self.stream}

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        return cls(t=_int(raw, "t"), stream=_opt_int(raw, "stream"))


@dataclass(frozen=True, kw_only=True)
class Pause(_StreamChange):
    """The SRC paused a stream (``a=inactive``, ``c=0.0.0.0``), or the whole
    recording when ``stream`` is None."""

    type: ClassVar[str] = "pause"


@dataclass(frozen=True, kw_only=True)
class Resume(_StreamChange):
    """The SRC resumed a stream (or, ``stream`` None, everything)."""

    type: ClassVar[str] = "resume"


@dataclass(frozen=True, kw_only=True)
class Dtmf(_Line):
    """A key press: RFC 4733 or in-band on ``stream``, or SIP INFO (``stream`` None,
    with the ``side`` it counts for). ``participant_id``: whose keypad, when known."""

    type: ClassVar[str] = "dtmf"
    t: int
    stream: int | None
    digit: str
    duration_ms: int = 0
    source: str = "rfc4733"
    side: Side | None = None
    participant_id: str | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "stream": self.stream,
            "digit": self.digit,
            "duration_ms": self.duration_ms,
            "source": self.source,
        }
        if self.side is not None:
            body["side"] = self.side
        if self.participant_id is not None:
            body["participant_id"] = self.participant_id
        return body

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        digit = _str(raw, "digit")
        if not 0 < len(digit) <= 2:
            raise MalformedEvent("a key press's digit must have 1 or 2 characters")
        side = raw.get("side")
        return cls(
            t=_int(raw, "t"),
            stream=_opt_int(raw, "stream"),
            digit=digit,
            duration_ms=_opt_int(raw, "duration_ms") or 0,
            source=_str(raw, "source", "rfc4733")[:16],
            side=side if side in ("user", "other") else None,
            participant_id=_opt_str(raw, "participant_id"),
        )


@dataclass(frozen=True, kw_only=True)
class InbandListened(_Line):
    """The live key listener (``media/live_keys.py``) analysed the audio of
    ``stream`` that arrived from ``from_ms`` to ``to_ms`` with in-band detector
    ``detector`` (``media/inband_dtmf.py`` ``DETECTOR_VERSION``), and journalled
    every key it heard there as a ``dtmf`` event of source ``inband``. Written
    when the listener stops (the call ends, the stream goes, keys stop mattering),
    so the finisher need not search that audio again. A journal without it (an
    older recorder, a mode without live keys) is searched whole, as always."""

    type: ClassVar[str] = "inband_listened"
    t: int
    stream: int
    from_ms: int
    to_ms: int
    detector: str

    def body(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "detector": self.detector,
        }

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        from_ms, to_ms = _int(raw, "from_ms"), _int(raw, "to_ms")
        if not 0 <= from_ms <= to_ms:
            raise MalformedEvent("a listened stretch must run forward from call time 0")
        detector = _str(raw, "detector")
        if not 0 < len(detector) <= 64:
            raise MalformedEvent("a detector's name must have 1 to 64 characters")
        return cls(
            t=_int(raw, "t"),
            stream=_int(raw, "stream"),
            from_ms=from_ms,
            to_ms=to_ms,
            detector=detector,
        )


@dataclass(frozen=True, kw_only=True)
class Capture(_Line):
    """The live policy's capture gate opened or closed (``policy/live.py``)."""

    type: ClassVar[str] = "capture"
    t: int
    open: bool

    def body(self) -> dict[str, Any]:
        return {"open": self.open}

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        return cls(t=_int(raw, "t"), open=_bool(raw, "open"))


@dataclass(frozen=True, kw_only=True)
class RecordNow(_Line):
    """LiveCenter's record now (``on``) or stop for ``tenant_id``'s recordings, ``by`` whom."""

    type: ClassVar[str] = "record_now"
    t: int
    on: bool
    tenant_id: int
    by: int | None = None

    def body(self) -> dict[str, Any]:
        return {"on": self.on, "tenant_id": self.tenant_id, "by": self.by}

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        return cls(
            t=_int(raw, "t"),
            on=_bool(raw, "on"),
            tenant_id=_int(raw, "tenant_id"),
            by=_opt_int(raw, "by"),
        )


@dataclass(frozen=True, kw_only=True)
class End(_Line):
    """The call ended (``reason``: bye, cancel, timeout, ...)."""

    type: ClassVar[str] = "end"
    t: int
    reason: str = "bye"

    def body(self) -> dict[str, Any]:
        return {"reason": self.reason}

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Self:
        return cls(t=_int(raw, "t"), reason=_str(raw, "reason", "bye")[:64])


JournalEvent = (
    Start
    | Parties
    | Answer
    | Streams
    | Pause
    | Resume
    | Dtmf
    | InbandListened
    | Capture
    | RecordNow
    | End
)

EVENT_TYPES: dict[str, type[JournalEvent]] = {
    kind.type: kind
    for kind in (
        Start,
        Parties,
        Answer,
        Streams,
        Pause,
        Resume,
        Dtmf,
        InbandListened,
        Capture,
        RecordNow,
        End,
    )
}


def parse_event(raw: Mapping[str, Any]) -> JournalEvent:
    """One decoded line as its event; ``UnknownEventType`` or ``MalformedEvent``."""
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise MalformedEvent("an event needs a type")
    event_type = EVENT_TYPES.get(kind)
    if event_type is None:
        raise UnknownEventType(kind[:40])
    try:
        return event_type.parse(raw)
    except (KeyError, TypeError, ValueError) as exc:  # anything the checks above missed
        if isinstance(exc, JournalError):
            raise
        raise MalformedEvent(f"{kind}: {exc}") from exc


def parse_line(line: str) -> JournalEvent:
    try:
        raw = json.loads(line)
    except ValueError as exc:
        raise MalformedEvent("a journal line is not JSON") from exc
    if not isinstance(raw, dict):
        raise MalformedEvent("a journal line must be an object")
    return parse_event(raw)


@dataclass
class JournalRead:
    """A journal's events, and what of it was skipped."""

    events: list[JournalEvent] = field(default_factory=list)
    unknown: Counter[str] = field(default_factory=Counter)  # event type -> lines skipped
    malformed: int = 0


def read_lines(lines: Iterable[str]) -> JournalRead:
    """Every event of complete journal lines; none of them can make it raise."""
    read = JournalRead()
    for line in lines:
        try:
            read.events.append(parse_line(line))
        except UnknownEventType as exc:
            read.unknown[exc.kind] += 1
        except JournalError:
            read.malformed += 1
    return read
