"""The coaching mixer: what the customer, the agent and the supervisor each hear.

Issue 11 (SPEC section 7, silent coaching; the German manual's DTMF table).
Sans-IO and synchronous: ``media/conference.py`` feeds it one 20 ms frame
per party per tick (``put``) and sends each party its own mix (``mix``).

Who hears whom (listener <- sources), per mode:

=============  ==================  ==================  ===================
mode (DTMF)    customer hears      agent hears         supervisor hears
=============  ==================  ==================  ===================
silent (0)     agent               customer            customer + agent
customer (1)   agent + supervisor  customer + superv.  customer + agent
whisper (2)    agent               customer + superv.  customer + agent
conference (3) agent + supervisor  customer + superv.  customer + agent
=============  ==================  ==================  ===================

Modes 1 and 3 mix the same (the issue: in 1 "the customer hears the
supervisor, the agent does too"); they differ in what LiveCenter shows.
Nobody ever hears their own voice (no echo), whatever the mode.

A mode change moves each gain linearly over ``ramp_ms`` (a step from full
level to nothing inside one sample is a click). Sums are made in float and
soft-clipped above ``KNEE`` of full scale (tanh saturation), so loud
talkers together saturate instead of wrapping around int16.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]
CoachMode = Literal["silent", "customer", "whisper", "conference"]
Party = Literal["customer", "agent", "supervisor"]

COACH_MODES: tuple[CoachMode, ...] = get_args(CoachMode)
PARTIES: tuple[Party, ...] = get_args(Party)
DTMF_MODES: dict[str, CoachMode] = {
    "0": "silent",
    "1": "customer",
    "2": "whisper",
    "3": "conference",
}
"""The manual's DTMF table: the supervisor's key -> the mode it selects."""

KNEE = 0.75  # of full scale: below it the sum passes untouched
FULL_SCALE = 32767.0

# listener -> the sources it hears, per mode (never itself)
HEARS: dict[CoachMode, dict[Party, frozenset[Party]]] = {
    "silent": {
        "customer": frozenset({"agent"}),
        "agent": frozenset({"customer"}),
        "supervisor": frozenset({"customer", "agent"}),
    },
    "customer": {
        "customer": frozenset({"agent", "supervisor"}),
        "agent": frozenset({"customer", "supervisor"}),
        "supervisor": frozenset({"customer", "agent"}),
    },
    "whisper": {
        "customer": frozenset({"agent"}),
        "agent": frozenset({"customer", "supervisor"}),
        "supervisor": frozenset({"customer", "agent"}),
    },
    "conference": {
        "customer": frozenset({"agent", "supervisor"}),
        "agent": frozenset({"customer", "supervisor"}),
        "supervisor": frozenset({"customer", "agent"}),
    },
}

_LINKS: tuple[tuple[Party, Party], ...] = tuple(
    (listener, source) for listener in PARTIES for source in PARTIES if source != listener
)


def soft_clip(mix: npt.NDArray[np.float32]) -> Pcm:
    """A float sum (int16 scale) to int16: linear below the knee, tanh above it."""
    knee = KNEE * FULL_SCALE
    peak = float(np.max(np.abs(mix))) if len(mix) else 0.0
    if peak > knee:
        over = np.abs(mix) > knee
        room = FULL_SCALE - knee
        excess = (np.abs(mix[over]) - knee) / room
        mix = mix.copy()
        mix[over] = np.sign(mix[over]) * (knee + room * np.tanh(excess))
    return np.rint(mix).astype(np.int16)


class Mixer:
    """Per-listener mixes of three parties' frames, with click-free mode changes."""

    def __init__(
        self,
        frame_samples: int = 160,
        clock_rate: int = 8000,
        ramp_ms: int = 16,
        mode: CoachMode = "silent",
    ) -> None:
        self.frame_samples = frame_samples
        self.ramp_samples = max(1, ramp_ms * clock_rate // 1000)
        self.mode: CoachMode = mode
        self.mode_since_ms: int | None = None
        self._target: dict[tuple[Party, Party], float] = {}
        self._gain: dict[tuple[Party, Party], float] = {}
        self._set_targets(mode)
        self._gain.update(self._target)  # the first mode applies at once
        self._frames: dict[Party, Pcm] = {}
        self._silence = np.zeros(frame_samples, dtype=np.int16)
        self._ramp = np.arange(1, frame_samples + 1, dtype=np.float32) / self.ramp_samples
        self._supervisor_heard: Pcm = self._silence
        self.frames = 0
        self.clipped_frames = 0

    def _set_targets(self, mode: CoachMode) -> None:
        hears = HEARS[mode]
        for listener, source in _LINKS:
            self._target[(listener, source)] = 1.0 if source in hears[listener] else 0.0

    def set_mode(self, mode: CoachMode, now_ms: int) -> None:
        """From the next frame on, gains move toward ``mode``'s over ``ramp_ms``."""
        if mode not in HEARS:
            raise ValueError(f"unknown coaching mode {mode!r}")
        self.mode = mode
        self.mode_since_ms = now_ms
        self._set_targets(mode)

    def put(self, party: Party, frame: Pcm) -> None:
        """``party``'s frame for the next ``mix`` (one absent is silence)."""
        if len(frame) != self.frame_samples:
            raise ValueError(f"a frame has {self.frame_samples} samples, not {len(frame)}")
        self._frames[party] = frame

    def _curve(self, link: tuple[Party, Party]) -> float | npt.NDArray[np.float32]:
        """This frame's gain of ``link``: a number when steady, else a ramp."""
        gain, target = self._gain[link], self._target[link]
        if gain == target:
            return gain
        if target > gain:
            curve = np.minimum(gain + self._ramp, target)
        else:
            curve = np.maximum(gain - self._ramp, target)
        self._gain[link] = float(curve[-1])
        return curve.astype(np.float32)

    def mix(self) -> dict[Party, Pcm]:
        """What each party hears for this frame; the inputs are used up."""
        frames = self._frames
        self._frames = {}
        out: dict[Party, Pcm] = {}
        for listener in PARTIES:
            steady: list[Pcm] = []  # sources at gain 1: summed as integers
            ramps: list[npt.NDArray[np.float32]] = []
            for source in PARTIES:
                if source == listener:
                    continue
                gain = self._curve((listener, source))
                frame = frames.get(source)
                if listener == "agent" and source == "supervisor":
                    self._supervisor_heard = self._scaled(frame, gain)
                if frame is None or (isinstance(gain, float) and gain == 0.0):
                    continue
                if isinstance(gain, float) and gain == 1.0:
                    steady.append(frame)
                else:
                    ramps.append(frame.astype(np.float32) * gain)
            out[listener] = self._sum(steady, ramps)
        self.frames += 1
        return out

    def _scaled(self, frame: Pcm | None, gain: float | npt.NDArray[np.float32]) -> Pcm:
        if frame is None or (isinstance(gain, float) and gain == 0.0):
            return self._silence
        if isinstance(gain, float) and gain == 1.0:
            return frame
        scaled: Pcm = np.rint(frame.astype(np.float32) * gain).astype(np.int16)
        return scaled

    def _sum(self, steady: list[Pcm], ramps: list[npt.NDArray[np.float32]]) -> Pcm:
        if not ramps:
            if not steady:
                return self._silence.copy()
            if len(steady) == 1:
                return steady[0].copy()  # one voice at full level: as it came
            total = steady[0].astype(np.int32)
            for frame in steady[1:]:
                total += frame
            if int(np.max(np.abs(total))) <= KNEE * FULL_SCALE:
                return total.astype(np.int16)
            self.clipped_frames += 1
            return soft_clip(total.astype(np.float32))
        mixed = np.zeros(self.frame_samples, dtype=np.float32)
        for frame in steady:
            mixed += frame
        for part in ramps:
            mixed += part
        if float(np.max(np.abs(mixed))) > KNEE * FULL_SCALE:
            self.clipped_frames += 1
        return soft_clip(mixed)

    def supervisor_in_call(self) -> Pcm:
        """The supervisor's voice in the last mix as the call hears it (ramped
        with the mode; silence in silent mode): what a recording that includes
        the supervisor adds to the agent's stream."""
        return self._supervisor_heard
