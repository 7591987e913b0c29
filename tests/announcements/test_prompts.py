"""The shipped prompts and the user's tones (SPEC 3): present, 8 kHz mono, and what they claim.

espeak-ng is not needed here: the WAVs are committed (scripts/make-prompts.sh
makes them), so these tests read the files that ship in the package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from callvault.announcements.library import KINDS, LANGUAGES, shipped_wav, wav_pcm
from callvault.announcements.tones import user_stop_tone, user_tone
from tests.announcements.audio import peak_hz, read_wav

RATE = 8000
SCRIPT = Path(__file__).parents[2] / "scripts" / "make-prompts.sh"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_shipped_prompt_is_8khz_mono_speech(language: str, kind: str) -> None:
    rate, channels, width, samples = read_wav(shipped_wav(language, kind))
    assert (rate, channels, width) == (RATE, 1, 2)
    assert 800 <= samples.size * 1000 // RATE <= 5000  # said in a breath, under 5 s
    # speech, not a tone or noise: loud syllables and quiet gaps between them (20 ms RMS),
    # and its energy in the telephone band (300-3400 Hz)
    windows = samples[: samples.size // 160 * 160].astype(np.float64).reshape(-1, 160)
    rms = np.sqrt(np.mean(windows**2, axis=1))
    assert rms.max() > 1500
    assert np.mean(rms < rms.max() / 10) > 0.1, "no pauses: not speech"
    assert np.mean(rms > rms.max() / 4) > 0.2, "hardly any voice"
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / RATE)
    band = spectrum[(freqs >= 150) & (freqs <= 3400)].sum() / spectrum.sum()
    assert band > 0.9
    assert spectrum.max() / spectrum.sum() < 0.05, "one frequency dominates: a tone"


def test_each_prompt_is_its_own_recording() -> None:
    files = {shipped_wav(language, kind) for language in LANGUAGES for kind in KINDS}
    assert len(files) == len(LANGUAGES) * len(KINDS)


def test_the_script_makes_every_prompt_with_espeak() -> None:
    script = SCRIPT.read_text(encoding="utf-8")
    assert "espeak-ng" in script and "convert_upload" in script
    for text in (
        "Dit gesprek wordt opgenomen.",
        "De opname is gestopt.",
        "Dieses Gespräch wird aufgezeichnet.",
        "Die Aufzeichnung wurde beendet.",
        "This call is being recorded.",
        "Recording has stopped.",
    ):
        assert text in script


def _beeps(pcm: bytes) -> list[np.ndarray]:
    """The tone's bursts: runs of 10 ms blocks with sound, split by silence."""
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    blocks = samples[: samples.size // 80 * 80].reshape(-1, 80)
    loud = np.sqrt(np.mean(blocks**2, axis=1)) > 500
    bursts: list[np.ndarray] = []
    start = None
    for i, on in enumerate([*loud, False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            bursts.append(blocks[start:i].reshape(-1))
            start = None
    return bursts


def test_user_tone_is_two_short_beeps_at_1400_hz() -> None:
    pcm = user_tone()
    assert len(pcm) == 2 * RATE * 400 // 1000  # 150 + 100 + 150 ms
    bursts = _beeps(pcm)
    assert len(bursts) == 2
    for burst in bursts:
        assert 120 <= burst.size * 1000 // RATE <= 160
        assert abs(peak_hz(burst.astype(np.int16), RATE) - 1400) < 30
    # one frequency at a time: a DTMF detector hears no key in it
    assert np.abs(np.frombuffer(pcm, "<i2")).max() < 32767 // 2


def test_stop_tone_falls() -> None:
    bursts = _beeps(user_stop_tone())
    assert len(bursts) == 2
    first, second = (peak_hz(b.astype(np.int16), RATE) for b in bursts)
    assert abs(first - 1400) < 30 and abs(second - 1000) < 30


def test_shipped_wav_reads_as_pcm() -> None:
    pcm = wav_pcm(shipped_wav("nl", "start"))
    assert len(pcm) % 2 == 0 and len(pcm) > RATE
