"""The recording policy while the call runs (SPEC section 3, "the policy runs live").

A recorder may write audio only while the policy may keep it. ``LivePolicy``
holds one ``PolicyEngine`` per recording of the call (each recorded user of
an active tenant gets their own recording, keyed ``"<tenant>.<rank>"``) and is
fed the call's events as they happen: the answer, key presses (RFC 4733, SIP
INFO, in-band tones heard live), changes of the recorded parties, LiveCenter's
record-now, hang-up. ``CaptureGate`` is the union of the recordings' capture
windows on the call timeline; the spool writes only what arrived while the
gate was open (``recording/spool.py``).

What opens the gate, per recording:

* *always*, *always with pause*, *on demand (keep if asked)*, *playback*:
  from the answer (they may be kept), closed while paused by the code;
* *on demand, started by user*: from the press of the code to the next
  (the code in either form of ``ShortCode``: with a single key, each press
  of it);
* *never*, a blacklisted contact: never; a whitelisted contact: always.

The hang-up decision is not taken here: the finisher replays the journal
through the same ``PolicyEngine`` and cuts what was captured (the code's
tones, pauses). This class only decides what may reach the disk, and it is
the interface LiveCenter's record-now and the B2BUA's announcements drive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from callvault.policy.engine import (
    CAPTURING,
    Answer,
    CallState,
    Capture,
    Digit,
    Hangup,
    PartyChange,
    PolicyEngine,
    PolicyEvent,
)
from callvault.policy.modes import Mode, ShortCode

log = logging.getLogger(__name__)

ContactRule = Literal["blacklist", "whitelist"] | None

SAME_KEY_MS = 200
"""A key heard twice (RFC 4733 and in-band tones, or SIP INFO and RFC 4733): the same
key of the same sender starting within this many ms is one press."""

CODE_MODES = frozenset({Mode.ALWAYS_PAUSE, Mode.ON_DEMAND_KEEP, Mode.ON_DEMAND_USER, Mode.PLAYBACK})
"""Modes in which the short code changes what is captured."""


@dataclass(frozen=True)
class RecordingSlot:
    """One recorded user's recording of the call, as matched now."""

    key: str  # "<tenant_id>.<rank>": stable across a transfer of that user's side
    tenant_id: int
    user_id: int
    participant_id: str
    mode: Mode
    code: ShortCode
    contact_rule: ContactRule = None

    @property
    def may_record(self) -> bool:
        """Whether anything of the call may ever be kept for this user."""
        if self.contact_rule == "blacklist":
            return False
        return self.mode is not Mode.NEVER or self.contact_rule == "whitelist"


class CaptureGate:
    """Where on the call timeline audio may be written: a list of changes.

    Closed before the first change. Changes only move forward in time: a
    change reported for an earlier time than the last one takes effect at the
    last one (audio already flushed cannot be unwritten).
    """

    __slots__ = ("_changes",)

    def __init__(self) -> None:
        self._changes: list[tuple[int, bool]] = []

    @property
    def is_open(self) -> bool:
        return bool(self._changes) and self._changes[-1][1]

    @property
    def last_change_ms(self) -> int:
        return self._changes[-1][0] if self._changes else 0

    def set(self, t: int, is_open: bool) -> None:
        if self.is_open == is_open:
            return
        if self._changes and t < self._changes[-1][0]:
            t = self._changes[-1][0]
        if self._changes and self._changes[-1][0] == t:
            self._changes.pop()  # opened and closed at one instant: nothing between
            if self.is_open == is_open:
                return
        self._changes.append((t, is_open))

    def open_since(self, t: int) -> bool:
        """Open now and since ``t`` at least: the common case, checked per flush."""
        changes = self._changes
        return bool(changes) and changes[-1][1] and changes[-1][0] <= t

    def open_at(self, t: int) -> bool:
        for since, is_open in reversed(self._changes):
            if since <= t:
                return is_open
        return False

    def _steady(self, start: int, end: int, value: bool) -> bool:
        if self.open_at(start) != value:
            return False
        return not any(start < since <= end for since, _ in reversed(self._changes))

    def open_throughout(self, start_ms: int, end_ms: int) -> bool:
        return self._steady(start_ms, end_ms, True)

    def closed_throughout(self, start_ms: int, end_ms: int) -> bool:
        return self._steady(start_ms, end_ms, False)

    def windows(self, end_ms: int) -> list[tuple[int, int]]:
        """The open stretches up to ``end_ms`` (for tests and logs)."""
        out: list[tuple[int, int]] = []
        opened: int | None = None
        for since, is_open in self._changes:
            if is_open and opened is None:
                opened = since
            elif not is_open and opened is not None:
                out.append((opened, since))
                opened = None
        if opened is not None and end_ms > opened:
            out.append((opened, end_ms))
        return out


class _LiveRecording:
    def __init__(self, slot: RecordingSlot) -> None:
        self.slot = slot
        self.engine = PolicyEngine(slot.mode, slot.code, user_id=slot.user_id)
        self.last_t = 0

    def feed(self, event: PolicyEvent) -> None:
        # events of different sources (RFC 4733 now, in-band at the next flush) can
        # arrive slightly out of order: live, they count at the latest time seen
        if event.t < self.last_t:
            event = replace(event, t=self.last_t)
        self.last_t = event.t
        self.engine.feed(event)

    @property
    def capturing(self) -> bool:
        if self.engine.state is not CallState.ANSWERED:
            return False
        if self.slot.contact_rule == "blacklist":
            return False
        if self.slot.contact_rule == "whitelist":
            return True
        return self.engine.capture in CAPTURING


class LivePolicy:
    """The live recording policy of one call (see the module doc)."""

    def __init__(self, on_gate: Callable[[int, bool], None] | None = None) -> None:
        self.gate = CaptureGate()
        self._on_gate = on_gate  # told each change of the gate, to journal it
        self._recordings: dict[str, _LiveRecording] = {}
        self._answered_at: int | None = None
        self._ended = False
        self._record_now = False
        self._recent_keys: list[tuple[int, str, str | None]] = []  # (t, key, sender)

    # -- queries --

    @property
    def slots(self) -> list[RecordingSlot]:
        return [r.slot for r in self._recordings.values()]

    @property
    def may_record(self) -> bool:
        """Whether any recording of the call may keep audio, now or after a key."""
        return self._record_now or any(r.slot.may_record for r in self._recordings.values())

    def listens_for_keys(self, participant_id: str | None) -> bool:
        """Whether keys sent by ``participant_id`` (None: unknown / mixed) can change
        what is captured: the in-band detector runs only for those streams."""
        return any(
            r.slot.mode in CODE_MODES
            and r.slot.contact_rule is None
            and (r.slot.participant_id == participant_id if participant_id else n == 0)
            for n, r in enumerate(self._recordings.values())
        )

    def capturing(self, key: str) -> bool:
        recording = self._recordings.get(key)
        return recording is not None and recording.capturing

    @property
    def paused_by_code(self) -> bool:
        """Whether a recording of the call is paused by its user's code (LiveCenter)."""
        return any(
            r.engine.state is CallState.ANSWERED and r.engine.capture is Capture.PAUSED
            for r in self._recordings.values()
        )

    @property
    def recording_now(self) -> bool:
        """Whether LiveCenter's record-now is on."""
        return self._record_now

    # -- events --

    def set_slots(self, t: int, slots: list[RecordingSlot]) -> None:
        """The recordings as the latest metadata names them (call start, transfer)."""
        seen = set()
        for slot in slots:
            seen.add(slot.key)
            current = self._recordings.get(slot.key)
            if current is None:
                recording = self._recordings[slot.key] = _LiveRecording(slot)
                if self._answered_at is not None:
                    recording.feed(Answer(max(t, self._answered_at)))
            elif current.slot != slot:
                if (current.slot.user_id, current.slot.mode) != (slot.user_id, slot.mode):
                    current.feed(PartyChange(t, slot.user_id, slot.mode))
                current.slot = slot
        for key, recording in self._recordings.items():
            if key not in seen and recording.slot.mode is not Mode.NEVER:
                # the user left the call: nothing more is captured for them
                recording.feed(PartyChange(t, None, Mode.NEVER))
                recording.slot = replace(recording.slot, mode=Mode.NEVER)
        self._update(t, "parties")

    def answer(self, t: int) -> None:
        if self._answered_at is not None:
            return
        self._answered_at = t
        for recording in self._recordings.values():
            recording.feed(Answer(t))
        self._update(t, "answer")

    def key(self, t: int, digit: str, sender: str | None) -> None:
        """A key press sent by participant ``sender``. None: nobody can tell whose
        keypad it was (SIP INFO, a mixed stream): it counts as the first
        recording's user's, as the finisher counts it.

        A key heard twice (RFC 4733 now, its in-band tones at the next flush)
        counts once, as in the finisher: with a single-key code a second
        count would toggle the recording straight back. A key of no known
        sender (SIP INFO) is the same press as one of any sender (an SBC
        relaying a key both ways), as the finisher counts it for the user too."""
        if any(
            key == digit and (who == sender or None in (who, sender)) and abs(t - at) <= SAME_KEY_MS
            for at, key, who in self._recent_keys
        ):
            return
        self._recent_keys = [*self._recent_keys[-7:], (t, digit, sender)]
        for n, recording in enumerate(self._recordings.values()):
            mine = sender == recording.slot.participant_id if sender is not None else n == 0
            side: Literal["user", "other"] = "user" if mine else "other"
            recording.feed(Digit(t, digit, side))
        self._update(t, f"key {digit}")

    def record_now(self, t: int, on: bool) -> None:
        """LiveCenter's record-now (and stop): captures whatever the modes say."""
        self._record_now = on
        self._update(t, "record now" if on else "record now stopped")

    def hangup(self, t: int) -> None:
        if self._ended:
            return
        self._ended = True
        for recording in self._recordings.values():
            recording.feed(Hangup(t))
        self._set_gate(t, False, "hang-up")

    def _update(self, t: int, why: str) -> None:
        if self._ended:
            return
        self._set_gate(
            t, self._record_now or any(r.capturing for r in self._recordings.values()), why
        )

    def _set_gate(self, t: int, is_open: bool, why: str) -> None:
        if is_open == self.gate.is_open:
            return
        log.debug("capture %s at %d ms (%s)", "opens" if is_open else "closes", t, why)
        self.gate.set(t, is_open)
        if self._on_gate is not None:
            self._on_gate(max(t, self.gate.last_change_ms), is_open)
