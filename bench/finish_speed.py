"""How fast the finisher turns a spooled stereo G.711 call into an MP3.

Run: ``python bench/finish_speed.py`` (one core; numpy/LAME are single-threaded
here). Prints, per call length: the total finish() time, its multiple of real
time, and the share of the MP3 encoder (measured separately on the same audio).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from callvault.media.codecs import encode_pcma, encode_pcmu
from callvault.media.rtp import RtpPacket
from callvault.recording.finisher import finish
from callvault.recording.journal import Codec, Event, StreamLayout, stream_to_dict
from callvault.recording.mp3 import encode_mp3
from callvault.recording.spool import SpoolReader, SpoolWriter


def build_call(directory: Path, seconds: int) -> None:
    rng = np.random.default_rng(1)
    writer = SpoolWriter(directory)
    streams = [
        StreamLayout(
            0, "user", {0: Codec("PCMU", 8000), 101: Codec("telephone-event", 8000)}, "left"
        ),
        StreamLayout(1, "other", {8: Codec("PCMA", 8000)}, "right"),
    ]
    writer.record(
        Event(
            "start",
            0,
            {
                "call_uuid": "bench",
                "started_at": 0,
                "streams": [stream_to_dict(s) for s in streams],
                "parties": [],
            },
        )
    )
    writer.record(Event("answer", 100))
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
    writer.record(Event("end", 100 + seconds * 1000, {"reason": "bye"}))
    writer.close()


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rows = []
    for seconds in (60, 600):
        with tempfile.TemporaryDirectory() as tmp:
            build_call(Path(tmp), seconds)
            reader = SpoolReader(Path(tmp))
            finish(reader)  # warm up (imports, tables)
            best = min(_timed(finish, reader) for _ in range(3))
            result = finish(reader)
            audio = np.zeros(seconds * 8000, dtype=np.int16)
            mp3_time = min(_timed(encode_mp3, audio, audio, 8000, 32) for _ in range(3))
            rows.append((seconds, best, seconds / best, mp3_time, result.duration_ms))
    out = sys.stdout
    out.write("| call | finish() s | x real time | LAME 8 kHz stereo 32 kbps s | LAME share |\n")
    out.write("|---:|---:|---:|---:|---:|\n")
    for seconds, best, speed, mp3_time, _ in rows:
        out.write(
            f"| {seconds} s | {best:.3f} | {speed:.0f}x | {mp3_time:.3f} "
            f"| {mp3_time / best:.0%} |\n"
        )


def _timed(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
