"""The recording policy of one call: which stretches of it are kept (SPEC section 3).

``PolicyEngine`` is a pure synchronous state machine in the h11 style: it is
fed the call's events in time order (answer, key presses of either side, the
SRC pausing and resuming the recording, a change of the recorded user,
hang-up), each carrying its own time in milliseconds on the call timeline,
and after hang-up it answers with a ``Decision``: keep or not, why, the kept
segments, and where the short code's tones are so the recorder can cut them.

Two tables hold every transition: ``CALL_TRANSITIONS`` (ringing, answered,
ended; a move missing from it is a ``LocalProtocolError``) and
``CODE_TRANSITIONS`` (what the short code does in each mode and capture
state). ``PolicyEngine._set_state`` is the one place where state changes; it
opens and closes segments and logs the transition.

Rules where SPEC section 3 is silent, chosen here:

* Only the user's own keys count; the other party's keys are ignored
  altogether, and so are key presses before the answer.
* A ``*`` + digit code is ``*`` then the code's digit, the second key at most
  ``code_timeout_ms`` after the first (inclusive). Another ``*`` restarts the
  entry; any other user key clears it.
* A single-key code (``5``, ``*``, ``#``) is each press of that key: every
  press acts exactly where a completed ``*1`` would (``CODE_TRANSITIONS``), so
  pressing it twice toggles twice. Other keys do nothing; with the key ``*``
  every ``*`` is the code (no digit is awaited).
* The code counts while the SRC has paused the recording (the user can still
  press it; SIP INFO digits arrive without media); the SRC pause only cuts
  audio out of the segments.
* A ``PartyChange`` always starts the new user's policy afresh at its time
  (even for the same user and mode) and clears a half-entered code. Segments
  never span a party change; each carries its regime's user.
* The code's key spans are reported in every mode (also where the code does
  nothing), so the recorder always cuts the user's code tones: from the start
  of the ``*`` to the end of the digit, or the single key's press.
* ``recording`` is true while audio is captured, including the provisional
  capture of ``on_demand_keep`` before the code and unsaved playback.
* ``unsaved`` is true only when everything kept comes from playback regimes
  whose user did not press the code (a whitelisted contact saves them).
* ``keep`` is false when no audio remains (e.g. the SRC paused the whole
  call), whatever the mode.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Literal

from callvault.errors import LocalProtocolError
from callvault.policy.modes import Mode, ShortCode

log = logging.getLogger(__name__)

PLAYBACK_UNSAVED_DAYS = 3
"""How long an unsaved playback recording stays (SPEC section 6)."""


# -- events ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    t: int


@dataclass(frozen=True, slots=True)
class Digit:
    """A key press; ``t`` is when it started, ``duration_ms`` how long it lasted."""

    t: int
    digit: str
    side: Literal["user", "other"]
    duration_ms: int = 0


@dataclass(frozen=True, slots=True)
class SrcPause:
    """The SRC paused the recording (``a=inactive`` and the like)."""

    t: int


@dataclass(frozen=True, slots=True)
class SrcResume:
    t: int


@dataclass(frozen=True, slots=True)
class PartyChange:
    """The recorded user changed (transfer): ``mode`` applies from ``t``."""

    t: int
    user_id: int | None
    mode: Mode


@dataclass(frozen=True, slots=True)
class Hangup:
    t: int


PolicyEvent = Answer | Digit | SrcPause | SrcResume | PartyChange | Hangup


# -- the decision ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    """A kept stretch of the call, in call-timeline milliseconds."""

    start_ms: int
    end_ms: int
    user_id: int | None


@dataclass(frozen=True, slots=True)
class Decision:
    keep: bool
    reason: str
    segments: tuple[Segment, ...]
    code_spans: tuple[tuple[int, int], ...]  # (start of the code's first key, end of its last)
    unsaved: bool
    expires_days: int | None
    users: tuple[int, ...]


# -- the state tables --------------------------------------------------------


class CallState(enum.Enum):
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


class Capture(enum.Enum):
    """What the current user's policy does with the audio right now."""

    OFF = "off"  # nothing is captured (never; on_demand_user before / between presses)
    ON = "on"  # captured and kept
    PAUSED = "paused"  # paused by the code (always_pause, on_demand_keep once kept)
    PROVISIONAL = "provisional"  # on_demand_keep: captured, discarded unless the code comes
    UNSAVED = "unsaved"  # playback: captured, kept unsaved unless the code comes
    SAVED = "saved"  # playback: the code was pressed


CAPTURING = frozenset({Capture.ON, Capture.PROVISIONAL, Capture.UNSAVED, Capture.SAVED})
DISCARDED_AT_HANGUP = frozenset({Capture.PROVISIONAL})

_EventType = type[Answer] | type[Digit] | type[SrcPause] | type[SrcResume]
_AnyEventType = _EventType | type[PartyChange] | type[Hangup]

CALL_TRANSITIONS: dict[CallState, dict[_AnyEventType, CallState]] = {
    CallState.RINGING: {
        Answer: CallState.ANSWERED,
        Digit: CallState.RINGING,  # ignored before the answer
        SrcPause: CallState.RINGING,
        SrcResume: CallState.RINGING,
        PartyChange: CallState.RINGING,  # the new user's mode applies from the answer
        Hangup: CallState.ENDED,
    },
    CallState.ANSWERED: {
        Digit: CallState.ANSWERED,
        SrcPause: CallState.ANSWERED,
        SrcResume: CallState.ANSWERED,
        PartyChange: CallState.ANSWERED,
        Hangup: CallState.ENDED,
    },
    CallState.ENDED: {},
}
"""Every legal call-level move; anything else is a ``LocalProtocolError``."""

INITIAL_CAPTURE: dict[Mode, Capture] = {
    Mode.NEVER: Capture.OFF,
    Mode.ALWAYS: Capture.ON,
    Mode.ALWAYS_PAUSE: Capture.ON,
    Mode.ON_DEMAND_KEEP: Capture.PROVISIONAL,
    Mode.ON_DEMAND_USER: Capture.OFF,
    Mode.PLAYBACK: Capture.UNSAVED,
}
"""The capture state at the answer (or at a party change) for each mode."""

CODE_TRANSITIONS: dict[Mode, dict[Capture, Capture]] = {
    Mode.NEVER: {Capture.OFF: Capture.OFF},
    Mode.ALWAYS: {Capture.ON: Capture.ON},
    Mode.ALWAYS_PAUSE: {Capture.ON: Capture.PAUSED, Capture.PAUSED: Capture.ON},
    Mode.ON_DEMAND_KEEP: {
        Capture.PROVISIONAL: Capture.ON,  # first press keeps the whole call so far
        Capture.ON: Capture.PAUSED,
        Capture.PAUSED: Capture.ON,
    },
    Mode.ON_DEMAND_USER: {Capture.OFF: Capture.ON, Capture.ON: Capture.OFF},
    Mode.PLAYBACK: {Capture.UNSAVED: Capture.SAVED, Capture.SAVED: Capture.SAVED},
}
"""What the short code does, per mode and capture state (SPEC section 3 table)."""


# -- the short code reader ---------------------------------------------------


class _CodeReader:
    """Finds the short code (``*`` + digit, or a single key) in the user's key presses."""

    def __init__(self, code: ShortCode, timeout_ms: int) -> None:
        self.code = code
        self.timeout_ms = timeout_ms
        self._star: Digit | None = None

    def reset(self) -> None:
        self._star = None

    def feed(self, key: Digit) -> tuple[int, int] | None:
        """The code's ``(start, end)`` when ``key`` completes it, else None."""
        if self.code.single:
            # checked first: with the single key "*" a star is the whole code
            if key.digit == self.code.key:
                return (key.t, key.t + key.duration_ms)
            return None
        star, self._star = self._star, None
        if key.digit == "*":
            self._star = key
            return None
        if star is not None and key.digit == self.code.key and key.t - star.t <= self.timeout_ms:
            return (star.t, key.t + key.duration_ms)
        return None


# -- the engine --------------------------------------------------------------


@dataclass
class _Regime:
    """One user's policy over a stretch of the call (the whole call without transfers)."""

    index: int
    start_ms: int
    user_id: int | None
    mode: Mode
    capture: Capture
    presses: list[int] = field(default_factory=list)  # code firing times
    segments: list[tuple[int, int]] = field(default_factory=list)


class _Track:
    """Intervals of the call timeline where a condition held, each tagged with its regime."""

    def __init__(self) -> None:
        self._open: tuple[int, int] | None = None  # (regime index, start)
        self.spans: list[tuple[int, int, int]] = []  # (regime index, start, end)

    @property
    def is_open(self) -> bool:
        return self._open is not None

    @property
    def owners(self) -> list[int]:
        return [index for index, _, _ in self.spans]

    def open(self, t: int, index: int) -> None:
        if self.spans and self.spans[-1][0] == index and self.spans[-1][2] == t:
            # Stopped and restarted at the same instant: one segment.
            self._open = self.spans.pop()[:2]
        else:
            self._open = (index, t)

    def close(self, t: int) -> None:
        if self._open is not None:
            index, start = self._open
            self._open = None
            if t > start:
                self.spans.append((index, start, t))

    def segments(self, regimes: list[_Regime]) -> list[Segment]:
        return [Segment(s, e, regimes[i].user_id) for i, s, e in self.spans]


def _seconds(t: int) -> str:
    return f"{t / 1000:.1f} s"


class PolicyEngine:
    """The recording decision of one call, from its events (see the module doc)."""

    def __init__(
        self,
        mode: Mode,
        code: ShortCode = ShortCode("1"),
        *,
        user_id: int | None = None,
        contact_rule: Literal["blacklist", "whitelist"] | None = None,
        code_timeout_ms: int = 3000,
    ) -> None:
        self.code = code
        self.contact_rule = contact_rule
        self._reader = _CodeReader(code, code_timeout_ms)
        self._call = CallState.RINGING
        self._src_paused = False
        self._user_id = user_id
        self._mode = Mode(mode)
        self._regimes: list[_Regime] = []
        self._kept = _Track()  # where the users' policies captured audio
        self._audio = _Track()  # where any audio flowed (answered, no SRC pause)
        self._code_spans: list[tuple[int, int]] = []
        self._last_t: int | None = None
        self._decision: Decision | None = None

    # -- queries --

    @property
    def state(self) -> CallState:
        return self._call

    @property
    def capture(self) -> Capture:
        """The current user's capture state (``OFF`` before the answer and after hang-up)."""
        if self._call is not CallState.ANSWERED or not self._regimes:
            return Capture.OFF
        return self._regimes[-1].capture

    @property
    def src_paused(self) -> bool:
        return self._src_paused

    @property
    def recording(self) -> bool:
        """Whether audio is being captured right now."""
        return self.capture in CAPTURING and not self._src_paused

    def decision(self) -> Decision:
        if self._decision is None:
            raise LocalProtocolError(f"no decision before hang-up (call is {self._call.value})")
        return self._decision

    # -- input --

    def feed(self, event: PolicyEvent) -> None:
        if self._last_t is not None and event.t < self._last_t:
            raise LocalProtocolError(
                f"{type(event).__name__} at {event.t} ms is earlier than the last event"
                f" ({self._last_t} ms)"
            )
        try:
            next_call = CALL_TRANSITIONS[self._call][type(event)]
        except KeyError:
            raise LocalProtocolError(
                f"{type(event).__name__} is not allowed when the call is {self._call.value}"
            ) from None
        self._last_t = event.t
        ringing = self._call is CallState.RINGING
        match event:
            case Answer(t=t):
                self._set_state(t, call=next_call, regime=self._new_regime(t), why="answer")
            case Digit() if ringing or event.side != "user":
                pass
            case Digit():
                self._on_user_key(event)
            case SrcPause(t=t):
                self._set_state(t, src_paused=True, why="SRC pause")
            case SrcResume(t=t):
                self._set_state(t, src_paused=False, why="SRC resume")
            case PartyChange(t=t, user_id=user_id, mode=mode):
                self._user_id, self._mode = user_id, Mode(mode)
                self._reader.reset()
                if not ringing:
                    why = f"party change to user {user_id} ({self._mode})"
                    self._set_state(t, regime=self._new_regime(t), why=why)
            case Hangup(t=t):
                self._set_state(t, call=next_call, why="hang-up")
                self._decision = self._decide()

    def _new_regime(self, t: int) -> _Regime:
        return _Regime(
            index=len(self._regimes),
            start_ms=t,
            user_id=self._user_id,
            mode=self._mode,
            capture=INITIAL_CAPTURE[self._mode],
        )

    def _on_user_key(self, key: Digit) -> None:
        span = self._reader.feed(key)
        if span is None:
            return
        self._code_spans.append(span)
        regime = self._regimes[-1]
        regime.presses.append(key.t)
        after = CODE_TRANSITIONS[regime.mode][regime.capture]
        self._set_state(key.t, capture=after, why=f"code {self.code} ({regime.mode})")

    # -- the one place where state changes --

    def _set_state(
        self,
        t: int,
        *,
        why: str,
        call: CallState | None = None,
        capture: Capture | None = None,
        src_paused: bool | None = None,
        regime: _Regime | None = None,
    ) -> None:
        before = (self._call, self.capture, self._src_paused, len(self._regimes))
        was = (self.recording, self._audio_flowing)
        if regime is not None:
            self._regimes.append(regime)
        if call is not None:
            self._call = call
        if capture is not None:
            self._regimes[-1].capture = capture
        if src_paused is not None:
            self._src_paused = src_paused
        now = (self.recording, self._audio_flowing)
        index = len(self._regimes) - 1
        for track, on_before, on_after in zip((self._kept, self._audio), was, now, strict=True):
            if on_before and (not on_after or regime is not None):
                track.close(t)
            if on_after and not track.is_open:
                track.open(t, index)
        after = (self._call, self.capture, self._src_paused, len(self._regimes))
        if after != before:
            log.debug(
                "t=%d ms %s: call %s -> %s, capture %s -> %s, src paused %s -> %s%s",
                t,
                why,
                before[0].value,
                after[0].value,
                before[1].value,
                after[1].value,
                before[2],
                after[2],
                f", user {self._regimes[-1].user_id} from now" if regime is not None else "",
            )

    @property
    def _audio_flowing(self) -> bool:
        """Answered and not paused by the SRC: what a whitelisted contact keeps."""
        return self._call is CallState.ANSWERED and not self._src_paused

    # -- the decision --

    def _decide(self) -> Decision:
        spans = tuple(self._code_spans)
        if not self._regimes:
            return Decision(False, "not answered", (), spans, False, None, ())
        if self.contact_rule == "blacklist":
            return Decision(False, "contact on blacklist", (), spans, False, None, ())
        if self.contact_rule == "whitelist":
            segments = self._audio.segments(self._regimes)
            reason = "contact on whitelist"
            if not segments:
                reason += ", but the SRC paused the whole call"
            return self._build(reason, segments, spans, unsaved=False)

        kept: list[Segment] = []
        reasons: list[str] = []
        unsaved_only = True
        all_kept = self._kept.segments(self._regimes)
        for regime in self._regimes:
            segments = [
                s for s, i in zip(all_kept, self._kept.owners, strict=True) if i == regime.index
            ]
            reason, segments = self._regime_result(regime, segments)
            if len(self._regimes) > 1:
                reason = f"from {_seconds(regime.start_ms)} user {regime.user_id}: {reason}"
            reasons.append(reason)
            kept.extend(segments)
            if segments and regime.capture is not Capture.UNSAVED:
                unsaved_only = False
        return self._build("; ".join(reasons), kept, spans, unsaved=bool(kept) and unsaved_only)

    @staticmethod
    def _regime_result(regime: _Regime, segments: list[Segment]) -> tuple[str, list[Segment]]:
        pressed = f"code pressed at {_seconds(regime.presses[0])}" if regime.presses else ""
        match regime.mode:
            case Mode.NEVER:
                return "mode never", []
            case Mode.ALWAYS:
                reason = "mode always"
            case Mode.ALWAYS_PAUSE:
                reason = "mode always_pause" + (f", {pressed}" if pressed else "")
            case Mode.ON_DEMAND_KEEP | Mode.ON_DEMAND_USER:
                if not regime.presses:
                    return f"mode {regime.mode}, code not pressed", []
                reason = pressed
            case Mode.PLAYBACK:
                reason = (
                    f"playback saved, {pressed}"
                    if pressed
                    else f"playback, code not pressed: unsaved for {PLAYBACK_UNSAVED_DAYS} days"
                )
        if regime.capture in DISCARDED_AT_HANGUP:
            return reason, []
        if not segments:
            reason += ", but no audio outside SRC pauses"
        return reason, segments

    @staticmethod
    def _build(
        reason: str,
        segments: list[Segment],
        spans: tuple[tuple[int, int], ...],
        *,
        unsaved: bool,
    ) -> Decision:
        keep = bool(segments)
        users: list[int] = []
        for segment in segments:
            if segment.user_id is not None and segment.user_id not in users:
                users.append(segment.user_id)
        return Decision(
            keep=keep,
            reason=reason,
            segments=tuple(segments) if keep else (),
            code_spans=spans,
            unsaved=unsaved,
            expires_days=PLAYBACK_UNSAVED_DAYS if unsaved else None,
            users=tuple(users) if keep else (),
        )
