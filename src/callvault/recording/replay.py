"""One replay of a call's journal into its facts, for the finisher and the store.

``replay(events)`` walks the typed journal (``journal.py``) once, in call time
(equal times in the order written), and returns ``CallFacts``: the call's ids
and clock, who took part over time, each stream's codecs, sides, senders and
pauses, the whole-recording pauses, the key presses (and which audio the live
key listener already searched for in-band keys), the live gate's capture
windows, LiveCenter's record-now stretches, each recording key's users and
presence (SPEC section 2, "Matching parties") and the end. The finisher
(``finisher.py``) cuts and mixes from these facts; the store (``store.py``)
writes the rows from the same facts, so both always agree on the call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from callvault.media.codec import Codec
from callvault.policy.live import CaptureGate
from callvault.recording.journal import (
    Answer,
    Capture,
    Channel,
    Dtmf,
    End,
    InbandListened,
    JournalEvent,
    Parties,
    Party,
    PartyState,
    Pause,
    PolicySnapshot,
    RecordNow,
    Resume,
    Start,
    StreamLayout,
    Streams,
)

Interval = tuple[int, int]
FOREVER_MS = 2**62
MAX_LISTENED = 256  # listened stretches believed per stream


@dataclass
class StreamPlan:
    """What the journal says about one stream over the call."""

    index: int
    codecs: list[tuple[int, dict[int, Codec]]] = field(default_factory=list)
    channels: list[tuple[int, Channel]] = field(default_factory=list)
    senders: list[tuple[int, str | None]] = field(default_factory=list)  # participant sending
    paused: list[Interval] = field(default_factory=list)


@dataclass
class RecordingPlan:
    """What the journal says about one recording (one ``recordings`` key) over the call."""

    key: str
    tenant_id: int
    users: list[tuple[int, int]]  # (t, user) changes: a transfer keeps the key
    participants: list[tuple[int, str]]  # (t, the user's participant) changes
    policy: PolicySnapshot  # merged snapshots of the user's tenant
    present: list[list[int | None]]  # [since, until or None]: while the user is in the call

    def presence(self) -> list[Interval]:
        return [(int(a or 0), FOREVER_MS if b is None else b) for a, b in self.present]

    @property
    def user_ids(self) -> set[int]:
        return {user for _t, user in self.users}

    @property
    def participant_ids(self) -> set[str]:
        return {pid for _t, pid in self.participants}


@dataclass
class CallFacts:
    """A call as its journal tells it, independent of its audio."""

    call_uuid: str = ""
    sip_call_id: str = ""
    recording_session_id: str | None = None
    started_at_ms: int = 0  # wall clock (unix epoch ms) of call time 0
    start_ms: int = 0
    answered_ms: int | None = None
    end_ms: int | None = None  # None: no end event (a crash)
    end_reason: str | None = None
    last_event_ms: int = 0
    plans: dict[int, StreamPlan] = field(default_factory=dict)  # per stream
    paused: list[Interval] = field(default_factory=list)  # whole-recording pauses
    dtmf: list[Dtmf] = field(default_factory=list)
    # stream -> ((from_ms, to_ms) of arrival, detector): audio the live listener analysed
    listened: dict[int, list[tuple[Interval, str]]] = field(default_factory=dict)
    # the one-recording format: the first recorded user's tenant, and their policy
    tenant_id: int | None = None
    recorded_user_id: int | None = None
    not_recorded_reason: str | None = None
    policy: PolicySnapshot | None = None  # merged snapshots (modes of every user)
    users: list[tuple[int, int]] = field(default_factory=list)  # (t, recorded user) changes
    party_changes: list[tuple[int, list[Party]]] = field(default_factory=list)
    party_tenants: list[int] = field(default_factory=list)  # every party's tenant, in order
    multi: bool = False  # the journal lists ``recordings``: one recording per key
    recordings: dict[str, RecordingPlan] = field(default_factory=dict)  # in order of appearance
    captured: CaptureGate | None = None  # the live gate; None: an old spool (all captured)
    record_now: dict[int, list[list[int]]] = field(default_factory=dict)  # tenant -> [on, off]
    has_start: bool = False

    @property
    def everyone(self) -> list[Party]:
        """Everyone who took part, as each change listed them."""
        return [party for _t, parties in self.party_changes for party in parties]

    @property
    def parties(self) -> list[Party]:
        """Who was in the call last."""
        return self.party_changes[-1][1] if self.party_changes else []


class _Replay:
    """The state one walk through the journal keeps."""

    def __init__(self) -> None:
        self.facts = CallFacts()
        self.layouts: dict[int, StreamLayout] = {}
        self.global_pause: int | None = None
        self.stream_pause: dict[int, int] = {}  # stream -> paused since (pause events)
        self.inactive: dict[int, int] = {}  # stream -> inactive since (streams events)
        self.all_paused_since: int | None = None
        self.party_ids: set[str] = set()  # participants named so far

    def plan(self, index: int) -> StreamPlan:
        return self.facts.plans.setdefault(index, StreamPlan(index))

    def close(self, index: int, since: int, t: int) -> None:
        if t > since:
            self.plan(index).paused.append((since, t))

    def feed(self, event: JournalEvent) -> None:
        facts, t = self.facts, event.t
        facts.last_event_ms = max(facts.last_event_ms, t)
        if isinstance(event, Start | Parties):
            self.parties(event)
        if isinstance(event, Start):
            self.start(event)
        elif isinstance(event, Answer):
            if facts.answered_ms is None:
                facts.answered_ms = t
        elif isinstance(event, Streams):
            self.layout(t, event.streams, event.channels_from)
        elif isinstance(event, Pause):
            if event.stream is None:
                if self.global_pause is None:
                    self.global_pause = t
            else:
                self.stream_pause.setdefault(event.stream, t)
        elif isinstance(event, Resume):
            if event.stream is None:
                self.global_pause = None
                for index, since in self.stream_pause.items():
                    self.close(index, since, t)
                self.stream_pause.clear()
            elif event.stream in self.stream_pause:
                self.close(event.stream, self.stream_pause.pop(event.stream), t)
        elif isinstance(event, Dtmf):
            facts.dtmf.append(event)
        elif isinstance(event, InbandListened):
            spans = facts.listened.setdefault(event.stream, [])
            if len(spans) < MAX_LISTENED:  # beyond: searched again, which is never wrong
                spans.append(((event.from_ms, event.to_ms), event.detector))
        elif isinstance(event, Capture):
            if facts.captured is None:
                facts.captured = CaptureGate()
            facts.captured.set(t, event.open)
        elif isinstance(event, RecordNow):
            self.record_now(event)
        elif isinstance(event, End) and facts.end_ms is None:
            facts.end_ms, facts.end_reason = t, event.reason
        # One place decides whether the whole recording is paused.
        now_paused = self.all_paused()
        if now_paused and self.all_paused_since is None:
            self.all_paused_since = t
        elif not now_paused and self.all_paused_since is not None:
            if t > self.all_paused_since:
                facts.paused.append((self.all_paused_since, t))
            self.all_paused_since = None

    def start(self, event: Start) -> None:
        facts = self.facts
        if facts.has_start:
            return  # a second start is a journal bug: the first one holds
        facts.has_start = True
        facts.call_uuid, facts.sip_call_id = event.call_uuid, event.sip_call_id
        facts.recording_session_id = event.recording_session_id
        facts.start_ms, facts.started_at_ms = event.t, event.started_at
        facts.tenant_id, facts.recorded_user_id = event.tenant_id, event.recorded_user_id
        facts.not_recorded_reason = event.not_recorded_reason
        self.layout(event.t, event.streams, None)

    def all_paused(self) -> bool:
        if self.global_pause is not None:
            return True
        return bool(self.layouts) and all(
            i in self.stream_pause or i in self.inactive for i in self.layouts
        )

    def layout(self, t: int, streams: Iterable[StreamLayout], channels_from: int | None) -> None:
        # ``channels_from``: the sides became known only now (the recorded user was
        # named late, e.g. by a metadata UPDATE) but hold since that time (0: all call)
        since = t if channels_from is None else channels_from
        for layout in streams:
            previous = self.layouts.get(layout.index)
            self.layouts[layout.index] = layout
            p = self.plan(layout.index)
            if previous is None or previous.codecs != layout.codecs:
                p.codecs.append((t, layout.codecs))
            if previous is None or previous.channel != layout.channel:
                p.channels = [(at, ch) for at, ch in p.channels if at < since]
                p.channels.append((since, layout.channel))
            if previous is None or previous.participant_id != layout.participant_id:
                p.senders = [(at, pid) for at, pid in p.senders if at < since]
                p.senders.append((since, layout.participant_id))
            if not layout.active:
                self.inactive.setdefault(layout.index, t)
            elif layout.index in self.inactive:
                self.close(layout.index, self.inactive.pop(layout.index), t)

    def record_now(self, event: RecordNow) -> None:
        """LiveCenter's record now (and stop) of one tenant: windows that tenant's
        recordings keep whatever their user's mode would (``policy_apply.decide``)."""
        windows = self.facts.record_now.setdefault(event.tenant_id, [])
        recording = bool(windows) and windows[-1][1] == FOREVER_MS
        if event.on and not recording:
            windows.append([event.t, FOREVER_MS])
        elif not event.on and recording:
            windows[-1][1] = event.t

    def parties(self, event: PartyState) -> None:
        facts, t = self.facts, event.t
        facts.party_tenants += event.party_tenants()
        if event.policy is not None:
            facts.policy = (
                event.policy if facts.policy is None else facts.policy.merged(event.policy)
            )
        user = event.recorded_user_id
        if user is not None and (not facts.users or facts.users[-1][1] != user):
            # named late (no user before): the first user's policy holds from the start
            facts.users.append((0 if not facts.users else t, user))
        if isinstance(event, Start):
            facts.party_changes.insert(0, (0, list(event.parties)))
        else:
            facts.party_changes.append((t, list(event.parties)))
            # the one-recording format belongs to the first recorded user
            if facts.recorded_user_id is None:
                facts.tenant_id, facts.recorded_user_id = event.tenant_id, user
                facts.not_recorded_reason = event.not_recorded_reason
        self.recordings(event)
        self.party_ids.update(p.participant_id for p in event.parties)

    def recordings(self, event: PartyState) -> None:
        """Follow each recording key: its user, their participant, their policy and
        while they are in the call. A key seen first later in the call holds from the
        start when its participant was already in the call (named late, as Avaya
        does) or when no recording existed yet; a participant who joined later (a
        transfer to another tenant's user) is recorded from their arrival only."""
        if event.recordings is None:
            return
        facts, t = self.facts, event.t
        facts.multi = True
        listed = set()
        for ref in event.recordings:
            listed.add(ref.key)
            plan = facts.recordings.get(ref.key)
            if plan is None:
                joined_late = bool(facts.recordings) and ref.participant_id not in self.party_ids
                since = t if joined_late else 0
                facts.recordings[ref.key] = RecordingPlan(
                    key=ref.key,
                    tenant_id=ref.tenant_id,
                    users=[(since, ref.user_id)],
                    participants=[(since, ref.participant_id)],
                    policy=ref.policy,
                    present=[[since, None]],
                )
                continue
            if plan.users[-1][1] != ref.user_id:
                plan.users.append((t, ref.user_id))
            if plan.participants[-1][1] != ref.participant_id:
                plan.participants.append((t, ref.participant_id))
            plan.policy = plan.policy.merged(ref.policy)
            if plan.present[-1][1] is not None:  # back in the call
                plan.present.append([t, None])
        for key, plan in facts.recordings.items():
            if key not in listed and plan.present[-1][1] is None:
                plan.present[-1][1] = t  # the user left the call: their recording ends

    def done(self) -> CallFacts:
        facts = self.facts
        if self.all_paused_since is not None:
            end = FOREVER_MS if facts.end_ms is None else facts.end_ms
            facts.paused.append((self.all_paused_since, end))
        for index, since in [*self.stream_pause.items(), *self.inactive.items()]:
            self.plan(index).paused.append((since, FOREVER_MS))
        return facts


def replay(events: Iterable[JournalEvent]) -> CallFacts:
    """The call's facts from its journal, in call time (stable for equal times)."""
    walk = _Replay()
    for event in sorted(events, key=lambda e: e.t):
        walk.feed(event)
    return walk.done()
