"""The coaching mixer (media/mixer.py): who hears whom, ramps, no echo, no wrap.

Each party "talks" its own tone; what a listener hears is told by the tones
in its mix (their level at each frequency).
"""

from __future__ import annotations

import numpy as np
import pytest

from callvault.media.mixer import (
    COACH_MODES,
    DTMF_MODES,
    PARTIES,
    CoachMode,
    Mixer,
    Party,
    soft_clip,
)

N = 160
TONES: dict[Party, float] = {"customer": 500.0, "agent": 1000.0, "supervisor": 1500.0}
LEVEL = 8000.0

HEARD: dict[CoachMode, dict[Party, set[Party]]] = {
    "silent": {"customer": {"agent"}, "agent": {"customer"}, "supervisor": {"customer", "agent"}},
    "customer": {
        "customer": {"agent", "supervisor"},
        "agent": {"customer", "supervisor"},
        "supervisor": {"customer", "agent"},
    },
    "whisper": {
        "customer": {"agent"},
        "agent": {"customer", "supervisor"},
        "supervisor": {"customer", "agent"},
    },
    "conference": {
        "customer": {"agent", "supervisor"},
        "agent": {"customer", "supervisor"},
        "supervisor": {"customer", "agent"},
    },
}


def tone(party: Party, k: int) -> np.ndarray:
    t = (np.arange(N) + N * k) / 8000.0
    return (np.sin(2 * np.pi * TONES[party] * t) * LEVEL).astype(np.int16)


def levels(pcm: np.ndarray) -> dict[Party, float]:
    """Each party's tone level in ``pcm`` (amplitude, int16 scale)."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64))) * 2 / len(pcm)
    freqs = np.fft.rfftfreq(len(pcm), 1 / 8000)
    return {p: float(spectrum[np.argmin(np.abs(freqs - f))]) for p, f in TONES.items()}


def talk(mixer: Mixer, frames: int, start: int = 0) -> dict[Party, np.ndarray]:
    """Every party talks for ``frames`` frames; what each heard, joined."""
    heard: dict[Party, list[np.ndarray]] = {p: [] for p in PARTIES}
    for k in range(start, start + frames):
        for party in PARTIES:
            mixer.put(party, tone(party, k))
        for party, pcm in mixer.mix().items():
            heard[party].append(pcm)
    return {p: np.concatenate(v) for p, v in heard.items()}


@pytest.mark.parametrize("mode", COACH_MODES)
def test_who_hears_whom(mode: CoachMode) -> None:
    mixer = Mixer()
    mixer.set_mode(mode, 0)
    talk(mixer, 2)  # the ramp
    heard = talk(mixer, 10, start=2)
    for listener in PARTIES:
        got = levels(heard[listener])
        for source in PARTIES:
            if source in HEARD[mode][listener]:
                assert got[source] > 0.9 * LEVEL, (mode, listener, source, got)
            else:
                assert got[source] < 0.01 * LEVEL, (mode, listener, source, got)


def test_the_dtmf_table_selects_the_modes() -> None:
    assert DTMF_MODES == {"0": "silent", "1": "customer", "2": "whisper", "3": "conference"}


@pytest.mark.parametrize("mode", COACH_MODES)
def test_nobody_hears_their_own_voice_not_even_during_a_ramp(mode: CoachMode) -> None:
    mixer = Mixer()
    for listener in PARTIES:  # one party talks at a time; its own mix stays silent
        for step, next_mode in enumerate((mode, "conference", "silent", mode)):
            mixer.set_mode(next_mode, step)
            mixer.put(listener, tone(listener, step))
            assert not mixer.mix()[listener].any()


def test_in_silent_mode_the_customer_and_the_agent_hear_each_other_unchanged() -> None:
    mixer = Mixer()
    for k in range(3):
        frames = {p: tone(p, k) for p in PARTIES}
        for party, frame in frames.items():
            mixer.put(party, frame)
        out = mixer.mix()
        assert np.array_equal(out["customer"], frames["agent"])
        assert np.array_equal(out["agent"], frames["customer"])


@pytest.mark.parametrize(
    ("before", "after", "listener"),
    [
        ("silent", "whisper", "agent"),
        ("whisper", "silent", "agent"),
        ("silent", "conference", "customer"),
        ("conference", "whisper", "customer"),
    ],
)
def test_a_mode_change_ramps_without_a_click(
    before: CoachMode, after: CoachMode, listener: Party
) -> None:
    """The supervisor holds a constant level: a ramp is the only change in the
    listener's mix, and it moves at most LEVEL / ramp_samples per sample."""
    mixer = Mixer(ramp_ms=16, mode=before)
    dc = np.full(N, int(LEVEL), dtype=np.int16)
    out = []
    for k in range(6):
        if k == 2:
            mixer.set_mode(after, 40)
        mixer.put("supervisor", dc)
        out.append(mixer.mix()[listener])
    joined = np.concatenate(out).astype(np.int32)
    largest_step = int(np.max(np.abs(np.diff(joined))))
    assert largest_step <= LEVEL / mixer.ramp_samples + 1
    start = LEVEL if "supervisor" in HEARD[before][listener] else 0
    end = LEVEL if "supervisor" in HEARD[after][listener] else 0
    assert start != end
    assert joined[0] == start and joined[-1] == end  # it did move, all the way


def test_without_a_ramp_the_same_change_would_step() -> None:
    """The ramp test's yardstick: a ramp of one sample jumps the whole level."""
    mixer = Mixer(ramp_ms=0)
    dc = np.full(N, int(LEVEL), dtype=np.int16)
    mixer.put("supervisor", dc)
    before = mixer.mix()["agent"]
    mixer.set_mode("whisper", 20)
    mixer.put("supervisor", dc)
    after = mixer.mix()["agent"]
    assert int(after[0]) - int(before[-1]) == LEVEL


def test_loud_parties_together_saturate_and_never_wrap() -> None:
    mixer = Mixer()
    mixer.set_mode("conference", 0)
    loud = np.full(N, 30000, dtype=np.int16)
    quiet_neg = np.full(N, -30000, dtype=np.int16)
    for _ in range(3):
        mixer.put("customer", loud)
        mixer.put("supervisor", loud)
        mixer.put("agent", quiet_neg)
        out = mixer.mix()
    assert (out["agent"] > 30000).all() and (out["agent"] <= 32767).all()  # 60000 saturates
    assert (out["customer"] == 0).all()  # -30000 + 30000
    assert mixer.clipped_frames >= 3


def test_soft_clip_is_linear_below_the_knee_and_bounded_above() -> None:
    small = np.array([0, 1000, -1000, 24000], dtype=np.float32)
    assert soft_clip(small).tolist() == [0, 1000, -1000, 24000]
    big = np.array([40000, 100000, -100000, 32767 * 3], dtype=np.float32)
    clipped = soft_clip(big)
    assert clipped.dtype == np.int16
    assert 0 < clipped[0] < clipped[1] <= 32767 and clipped[2] >= -32767
    assert clipped[2] < 0  # the sign survives: no wrap


def test_the_supervisor_in_the_call_follows_the_agent_s_ear() -> None:
    mixer = Mixer()
    mixer.put("supervisor", tone("supervisor", 0))
    mixer.mix()
    assert not mixer.supervisor_in_call().any()  # silent: not in the call
    mixer.set_mode("whisper", 20)
    talk(mixer, 2)
    mixer.put("supervisor", tone("supervisor", 5))
    mixer.mix()
    assert np.array_equal(mixer.supervisor_in_call(), tone("supervisor", 5))


def test_bad_input_is_refused() -> None:
    mixer = Mixer()
    with pytest.raises(ValueError):
        mixer.put("agent", np.zeros(80, dtype=np.int16))
    with pytest.raises(ValueError):
        mixer.set_mode("barge", 0)  # type: ignore[arg-type]
