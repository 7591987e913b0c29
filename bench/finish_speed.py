"""How fast the finisher turns a spooled stereo G.711 call into an MP3 (issue 12).

Run: ``python bench/finish_speed.py`` (one core; numpy/LAME are single-threaded
here). Times are CPU time (``time.process_time``): on the shared machine the wall
clock counts whoever else held the core. Prints, per call length: the total
finish() time, its multiple of real time, LAME alone encoding the same stereo
audio that finish() hands it (same settings, same run, timed in turn with
finish(); the best of 5 each, of 600 / the call's seconds for calls under 2
minutes), and the issue's figure: finish()'s speed as a fraction of LAME's (LAME
time / finish time; the goal is 0.8 or better).

Three kinds of call: no policy (no key search); a policy in a mode without
live keys ("always": the finisher searches the user's stream for in-band keys,
whose code it must cut in every mode); and a code mode ("always_pause") whose
user's stream the live listener searched during the call (run here over the
same packets in 250 ms flushes, as ``siprec/call.py`` does), so the journal
says what it heard and the finisher skips it.

``--profile SECONDS`` instead prints the top of a cProfile of finish() on a
call of that length, for the two kinds with a policy.

``--encoder`` instead compares LAME settings for 8 kHz stereo speech on the same
audio (espeak-ng speech, English left with DTMF keys, Dutch right, 60 s): encode
time, size, and, as no listening test can run here, objective proxies: SNR and
segmental SNR of decode(encode(x)) against x, and whether the in-band detector
still finds exactly the keys it finds in x.
"""

from __future__ import annotations

# first: importing callvault keeps numpy's BLAS to one thread, as in the finisher's
# worker (imported after numpy, BLAS started a thread per core, and pinned to one
# core those threads made every in-band detection 5-20x slower)
import callvault  # noqa: F401

# isort: split
import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from callvault.media.codec import Codec
from callvault.media.codecs import ALAW_TABLE, ULAW_TABLE, encode_pcma, encode_pcmu
from callvault.media.inband_dtmf import DETECTOR_VERSION, detect_keys
from callvault.media.live_keys import InbandKeyListener
from callvault.media.rtp import RtpPacket
from callvault.media.tones import dtmf_tone, speech
from callvault.recording.finisher import finish
from callvault.recording.journal import (
    Answer,
    Dtmf,
    End,
    InbandListened,
    StreamLayout,
    parse_event,
)
from callvault.recording.mp3 import decode_mp3, encode_mp3
from callvault.recording.spool import SpoolReader, SpoolWriter

POLICY = {
    "short_code": "*1",
    "pause_mode": "cut",
    "channels": "both",
    "modes": {"1": "always"},
    "contacts": {},
}


def build_call(
    directory: Path, seconds: int, with_policy: bool = False, heard_live: bool = False
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """Writes the spool; returns the (left, right) audio finish() will encode.
    ``heard_live``: a code mode, the user's stream listened to during the call."""
    rng = np.random.default_rng(1)
    writer = SpoolWriter(directory)
    streams = [
        StreamLayout(
            0, "user", {0: Codec("PCMU", 8000), 101: Codec("telephone-event", 8000)}, "left"
        ),
        StreamLayout(1, "other", {8: Codec("PCMA", 8000)}, "right"),
    ]
    writer.record(
        parse_event(
            {
                "type": "start",
                "t": 0,
                "call_uuid": "bench",
                "started_at": 0,
                "streams": [s.to_dict() for s in streams],
                "parties": [],
                # with a policy the finisher also runs in-band DTMF detection on every
                # stream (the short code must be found and cut in every mode)
                **(
                    {
                        "policy": {**POLICY, "modes": {"1": "always_pause"}}
                        if heard_live
                        else POLICY,
                        "recorded_user_id": 1,
                        "tenant_id": 1,
                    }
                    if with_policy
                    else {}
                ),
            }
        )
    )
    writer.record(Answer(t=100))
    n = seconds * 8000
    t = np.arange(n) / 8000
    voices = [
        encode_pcmu((8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)),
        encode_pcma((8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)),
    ]
    for index, (pt, payload) in enumerate(((0, voices[0]), (8, voices[1]))):
        spool = writer.stream(index)
        jitter = rng.integers(0, 30, size=n // 160)
        records = []
        for k in range(n // 160):
            packet = RtpPacket(
                pt,
                k & 0xFFFF,
                (k * 160) & 0xFFFFFFFF,
                0x1000 + index,
                payload[k * 160 : (k + 1) * 160],
            )
            records.append((100 + k * 20 + int(jitter[k]), bytes(packet)))
        for arrival, raw in records:
            spool.append(arrival, raw)
        if heard_live and index == 0:
            _listen(writer, streams[0], records)
    writer.record(End(t=100 + seconds * 1000, reason="bye"))
    writer.close()
    left = ULAW_TABLE[np.frombuffer(voices[0], dtype=np.uint8)]
    right = ALAW_TABLE[np.frombuffer(voices[1], dtype=np.uint8)]
    return left, right


def _listen(writer: SpoolWriter, stream: StreamLayout, records: list[tuple[int, bytes]]) -> None:
    """What the call's live listener journals for a stream: its keys, then (at
    hang-up) the stretches it heard. Fed in 250 ms flushes, as the call feeds it."""
    listener = InbandKeyListener(stream.index, stream.codecs)
    ordered = sorted(records)
    digits = []
    for start in range(0, len(ordered), 12):  # 12 packets of 20 ms: about one flush
        digits += listener.feed(ordered[start : start + 12])
    for digit in digits + listener.finish():
        writer.record(
            Dtmf(
                t=digit.start_ms,
                stream=stream.index,
                digit=digit.digit,
                duration_ms=digit.duration_ms,
                source="inband",
            )
        )
    for start_ms, end_ms in listener.heard:
        writer.record(
            InbandListened(
                t=end_ms,
                stream=stream.index,
                from_ms=start_ms,
                to_ms=end_ms,
                detector=DETECTOR_VERSION,
            )
        )


KINDS = ((False, False, "no"), (True, False, "yes"), (True, True, "yes, heard live"))


def main() -> None:
    parser = argparse.ArgumentParser(description="finish() against LAME alone")
    parser.add_argument("--profile", type=int, metavar="SECONDS", help="profile one call")
    parser.add_argument("--seconds", default="60,600", help="call lengths (default 60,600)")
    parser.add_argument("--encoder", action="store_true", help="compare LAME settings")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    if args.profile:
        profile(args.profile)
        return
    if args.encoder:
        encoder_settings()
        return
    lengths = [int(s) for s in args.seconds.split(",")]
    rows = []
    for with_policy, heard_live, kind in KINDS:
        for seconds in lengths:
            with tempfile.TemporaryDirectory() as tmp:
                left, right = build_call(Path(tmp), seconds, with_policy, heard_live)
                reader = SpoolReader(Path(tmp))
                finish(reader)  # warm up (imports, tables)
                # in turn, so that a busy neighbour slows both alike
                finish_times, lame_times = [], []
                # best of several, more for short calls: the machine is shared and noisy
                for _ in range(max(5, 600 // seconds)):
                    finish_times.append(_timed(finish, reader))
                    lame_times.append(_timed(encode_mp3, left, right, 8000, 32))
                best, mp3_time = min(finish_times), min(lame_times)
                rows.append((seconds, kind, best, seconds / best, mp3_time))
    out = sys.stdout
    out.write(
        "| call | policy + in-band DTMF | finish() CPU s | x real time "
        "| LAME alone, same audio, CPU s | finish() speed / LAME speed |\n"
    )
    out.write("|---:|:---:|---:|---:|---:|---:|\n")
    for seconds, kind, best, speed, mp3_time in rows:
        out.write(
            f"| {seconds} s | {kind} | {best:.3f} | {speed:.0f}x "
            f"| {mp3_time:.3f} | {mp3_time / best:.2f} |\n"
        )


def profile(seconds: int) -> None:
    for _policy, heard_live, kind in KINDS[1:]:
        with tempfile.TemporaryDirectory() as tmp:
            build_call(Path(tmp), seconds, with_policy=True, heard_live=heard_live)
            reader = SpoolReader(Path(tmp))
            finish(reader)
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(3):
                finish(reader)
            profiler.disable()
        print(f"cProfile of 3 x finish() of a {seconds} s two-stream G.711 call (policy: {kind})")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(10)


EN = (
    "Good morning, thank you for calling. My name is Anna and I will help you today. "
    "Could you please tell me your customer number and the date of your last order? "
)
NL = (
    "Goedemorgen, u spreekt met de klantenservice. Waarmee kan ik u helpen? "
    "Ik zie dat uw bestelling vorige week is verzonden en morgen wordt bezorgd. "
)
CANDIDATES = ((24, 7), (32, 7), (40, 7), (32, 5))  # (kbps, LAME -q); 32/7 is the default


def _speech_of(text: str, voice: str, samples: int, level: float) -> npt.NDArray[np.int16]:
    said = speech(text, voice).astype(np.float64)
    said *= level / max(1.0, float(np.sqrt(np.mean(said**2))))
    whole = np.tile(said, samples // len(said) + 1)[:samples]
    return np.clip(np.rint(whole), -32768, 32767).astype(np.int16)


def _snr(x: npt.NDArray[np.int16], y: npt.NDArray[np.int16]) -> tuple[float, float]:
    """SNR and segmental SNR (20 ms frames with speech, each clamped to -10..35 dB)."""
    a, b = x.astype(np.float64), y.astype(np.float64)
    noise = a - b
    snr = 10 * np.log10(np.sum(a**2) / max(1.0, float(np.sum(noise**2))))
    n = len(a) // 160 * 160
    sig = (a[:n].reshape(-1, 160) ** 2).sum(axis=1)
    err = (noise[:n].reshape(-1, 160) ** 2).sum(axis=1)
    active = sig > sig.max() * 1e-4
    seg = np.clip(10 * np.log10(sig[active] / np.maximum(err[active], 1.0)), -10, 35)
    return float(snr), float(seg.mean())


def encoder_settings(seconds: int = 60) -> None:
    n = seconds * 8000
    left = _speech_of(EN, "en", n, 3000.0)
    right = _speech_of(NL, "nl", n, 3000.0)
    for k, digit in enumerate("*1592#"):  # keys as a keypad sends them, over the speech
        tone = dtmf_tone(digit, 0.08, 8000, -12.0)
        at = (5 + 9 * k) * 8000
        left[at : at + len(tone)] = tone
    keys = [d.digit for d in detect_keys(left, 8000)]
    out = sys.stdout
    out.write(f"{seconds} s of espeak-ng speech, stereo 8 kHz; keys in x: {''.join(keys)}\n\n")
    out.write("| kbps | -q | encode s | x real time | size KiB/min | SNR L/R dB | segSNR L/R dB |")
    out.write(" keys after |\n|---:|---:|---:|---:|---:|---:|---:|:---|\n")
    for kbps, quality in CANDIDATES:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            mp3 = encode_mp3(left, right, 8000, kbps, quality=quality)
            times.append(time.perf_counter() - start)
        decoded, _rate = decode_mp3(mp3)
        (snr_l, seg_l), (snr_r, seg_r) = _snr(left, decoded[0]), _snr(right, decoded[1])
        after = "".join(d.digit for d in detect_keys(decoded[0], 8000))
        after = after if after == "".join(keys) else f"{after} (!)"
        out.write(
            f"| {kbps} | {quality} | {min(times):.3f} | {seconds / min(times):.0f}x "
            f"| {len(mp3) / 1024 / seconds * 60:.0f} | {snr_l:.1f} / {snr_r:.1f} "
            f"| {seg_l:.1f} / {seg_r:.1f} | {after} |\n"
        )


def _timed(fn: Callable[..., object], *args: object) -> float:
    """CPU seconds of one call: on a shared, loaded machine the wall clock also counts
    the time others held the core; a single-threaded, CPU-bound call's CPU time does not."""
    start = time.process_time()
    fn(*args)
    return time.process_time() - start


if __name__ == "__main__":
    main()
