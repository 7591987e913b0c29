"""The session journal: what capture tells the finisher about a call.

A call being recorded is a spool directory (see ``spool.py``) holding an
append-only ``journal.jsonl`` of these events plus one binary file of raw RTP
per stream. Every ``t`` is milliseconds since the session started (the INVITE
was accepted); RTP arrival times in the stream files use the same clock, so
the finisher can lay every stream on one call timeline.

Both integration modes (SIPREC and, later, the in-path B2BUA) write the same
journal, so the finisher and the policy engine never see SIP.

One call can hold several recordings (SPEC section 2, "Matching parties"):
``start`` and every ``parties`` event carry ``recordings``, one
``RecordingRef`` per recorded user of an active tenant present at that time.
Its ``key`` (``"<tenant_id>.<rank>"``) names the recording for the whole
call: a transfer keeps the key and changes ``user_id``/``participant_id``; a
key missing from a later ``parties`` event means that user left. The older
keys (``tenant_id``, ``recorded_user_id``, ``policy``) describe the first
recording only; a journal without ``recordings`` is finished as one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Channel = Literal["left", "right", "mix"]
"""Where a stream goes in a stereo file: left is the recorded user's side,
right the other party's; ``mix`` is a stream carrying both directions."""


@dataclass(frozen=True)
class Codec:
    """One RTP payload type from the SDP (``a=rtpmap``)."""

    name: str  # e.g. "PCMU", "PCMA", "G722", "G729", "opus", "telephone-event"
    clock_rate: int
    channels: int = 1


@dataclass(frozen=True)
class StreamLayout:
    """One recorded m-line: its index in the SDP, label, codecs and channel."""

    index: int
    label: str | None
    codecs: dict[int, Codec]
    channel: Channel
    participant_id: str | None = None  # who sends this stream, when known
    active: bool = True  # False while paused (a=inactive or c=0.0.0.0)


@dataclass(frozen=True)
class Party:
    """A participant as the journal keeps it (already matched to a user or not)."""

    participant_id: str
    aor: str | None
    name: str | None
    number: str | None = None  # E.164 when it could be derived
    user_id: int | None = None  # the matched user of the tenant, if any
    side: Literal["user", "other"] = "other"


@dataclass
class Event:
    """One journal line. ``type`` decides which other keys are meaningful."""

    type: Literal[
        "start",
        "answer",
        "streams",
        "parties",
        "pause",
        "resume",
        "dtmf",
        "capture",
        "record_now",
        "end",
    ]  # capture: the live policy's gate opened or closed ({"open": bool});
    # record_now: LiveCenter's record now or stop ({"on": bool, "tenant_id": int, "by": user})
    t: int
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"type": self.type, "t": self.t, **self.data}, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Event:
        raw = json.loads(line)
        kind = raw.pop("type")
        t = int(raw.pop("t"))
        return cls(type=kind, t=t, data=raw)


def stream_to_dict(stream: StreamLayout) -> dict[str, Any]:
    raw = asdict(stream)
    raw["codecs"] = {str(pt): [c.name, c.clock_rate, c.channels] for pt, c in stream.codecs.items()}
    return raw


def stream_from_dict(raw: dict[str, Any]) -> StreamLayout:
    codecs = {int(pt): Codec(str(v[0]), int(v[1]), int(v[2])) for pt, v in raw["codecs"].items()}
    return StreamLayout(
        index=int(raw["index"]),
        label=raw.get("label"),
        codecs=codecs,
        channel=raw["channel"],
        participant_id=raw.get("participant_id"),
        active=bool(raw.get("active", True)),
    )


@dataclass(frozen=True)
class RecordingRef:
    """One recording of the call as a ``start``/``parties`` event lists it.

    ``policy`` is the snapshot of the user's tenant: ``short_code``,
    ``pause_mode``, ``channels``, ``modes`` ({str(user_id): mode}) and
    ``contacts`` ({str(user_id): {"blacklist": [...], "whitelist": [...]}}).
    """

    key: str  # "<tenant_id>.<rank>": rank orders the tenant's recorded users in the call
    tenant_id: int
    user_id: int
    participant_id: str
    policy: dict[str, Any]


MAX_RECORDINGS = 32
"""More recorded users than this in one call are not believed (a journal bug)."""


def recording_to_dict(ref: RecordingRef) -> dict[str, Any]:
    return asdict(ref)


def recordings_from(data: Mapping[str, Any]) -> list[RecordingRef] | None:
    """The ``recordings`` of a ``start``/``parties`` event; None when the event has
    none (a journal of the one-recording format). Malformed entries are skipped:
    one bad entry must not cost the other recordings of the call."""
    raw = data.get("recordings")
    if not isinstance(raw, list):
        return None
    refs: list[RecordingRef] = []
    for entry in raw[:MAX_RECORDINGS]:
        if not isinstance(entry, dict):
            continue
        key, tenant, user, pid = (
            entry.get("key"),
            entry.get("tenant_id"),
            entry.get("user_id"),
            entry.get("participant_id"),
        )
        policy = entry.get("policy")
        if not (isinstance(key, str) and 0 < len(key) <= 64 and isinstance(pid, str)):
            continue
        if not (type(tenant) is int and type(user) is int):
            continue
        if any(ref.key == key for ref in refs):
            continue
        snapshot = policy if isinstance(policy, dict) else {}
        refs.append(RecordingRef(key, tenant, user, pid, snapshot))
    return refs


def party_to_dict(party: Party) -> dict[str, Any]:
    return asdict(party)


def party_from_dict(raw: dict[str, Any]) -> Party:
    return Party(**raw)
