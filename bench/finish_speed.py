"""How fast the finisher turns a spooled stereo G.711 call into an MP3 (issue 12).

Run: ``python bench/finish_speed.py`` (one core; numpy/LAME are single-threaded
here). Prints, per call length: the total finish() time, its multiple of real
time, LAME alone encoding the same stereo audio that finish() hands it (same
settings, same run, timed in turn with finish()), and the issue's figure:
finish()'s speed as a fraction of LAME's (LAME time / finish time; the goal is
0.8 or better).

``--profile SECONDS`` instead prints the top of a cProfile of finish() on a
call of that length (with the policy, so in-band DTMF analysis is in it).
"""

from __future__ import annotations

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
from callvault.media.rtp import RtpPacket
from callvault.recording.finisher import finish
from callvault.recording.journal import Answer, End, StreamLayout, parse_event
from callvault.recording.mp3 import encode_mp3
from callvault.recording.spool import SpoolReader, SpoolWriter

POLICY = {
    "short_code": "*1",
    "pause_mode": "cut",
    "channels": "both",
    "modes": {"1": "always"},
    "contacts": {},
}


def build_call(
    directory: Path, seconds: int, with_policy: bool = False
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """Writes the spool; returns the (left, right) audio finish() will encode."""
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
                    {"policy": POLICY, "recorded_user_id": 1, "tenant_id": 1} if with_policy else {}
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
        for k in range(n // 160):
            packet = RtpPacket(
                pt,
                k & 0xFFFF,
                (k * 160) & 0xFFFFFFFF,
                0x1000 + index,
                payload[k * 160 : (k + 1) * 160],
            )
            spool.append(100 + k * 20 + int(jitter[k]), bytes(packet))
    writer.record(End(t=100 + seconds * 1000, reason="bye"))
    writer.close()
    left = ULAW_TABLE[np.frombuffer(voices[0], dtype=np.uint8)]
    right = ALAW_TABLE[np.frombuffer(voices[1], dtype=np.uint8)]
    return left, right


def main() -> None:
    parser = argparse.ArgumentParser(description="finish() against LAME alone")
    parser.add_argument("--profile", type=int, metavar="SECONDS", help="profile one call")
    parser.add_argument("--seconds", default="60,600", help="call lengths (default 60,600)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    if args.profile:
        profile(args.profile)
        return
    lengths = [int(s) for s in args.seconds.split(",")]
    rows = []
    for with_policy in (False, True):
        for seconds in lengths:
            with tempfile.TemporaryDirectory() as tmp:
                left, right = build_call(Path(tmp), seconds, with_policy)
                reader = SpoolReader(Path(tmp))
                finish(reader)  # warm up (imports, tables)
                # in turn, so that a busy neighbour slows both alike
                finish_times, lame_times = [], []
                for _ in range(5):
                    finish_times.append(_timed(finish, reader))
                    lame_times.append(_timed(encode_mp3, left, right, 8000, 32))
                best, mp3_time = min(finish_times), min(lame_times)
                rows.append((seconds, with_policy, best, seconds / best, mp3_time))
    out = sys.stdout
    out.write(
        "| call | policy + in-band DTMF | finish() s | x real time "
        "| LAME alone, same audio, s | finish() speed / LAME speed |\n"
    )
    out.write("|---:|:---:|---:|---:|---:|---:|\n")
    for seconds, with_policy, best, speed, mp3_time in rows:
        out.write(
            f"| {seconds} s | {'yes' if with_policy else 'no'} | {best:.3f} | {speed:.0f}x "
            f"| {mp3_time:.3f} | {mp3_time / best:.2f} |\n"
        )


def profile(seconds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        build_call(Path(tmp), seconds, with_policy=True)
        reader = SpoolReader(Path(tmp))
        finish(reader)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(3):
            finish(reader)
        profiler.disable()
    print(f"cProfile of 3 x finish() of a {seconds} s two-stream G.711 call (with policy)")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def _timed(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
