"""The session journal: what capture tells the finisher about a call.

A call being recorded is a spool directory (see ``spool.py``) holding an
append-only ``journal.jsonl`` of these events plus one binary file of raw RTP
per stream. Every ``t`` is milliseconds since the session started (the INVITE
was accepted); RTP arrival times in the stream files use the same clock, so
the finisher can lay every stream on one call timeline.

Both integration modes (SIPREC and, later, the in-path B2BUA) write the same
journal, so the finisher and the policy engine never see SIP.
"""

from __future__ import annotations

import json
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

    type: Literal["start", "answer", "streams", "parties", "pause", "resume", "dtmf", "end"]
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


def party_to_dict(party: Party) -> dict[str, Any]:
    return asdict(party)


def party_from_dict(raw: dict[str, Any]) -> Party:
    return Party(**raw)
