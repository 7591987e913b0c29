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

POLICY = {
    "short_code": "*1",
    "pause_mode": "cut",
    "channels": "both",
    "modes": {"1": "always"},
    "contacts": {},
}


def build_call(directory: Path, seconds: int, with_policy: bool = False) -> None:
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
                # with a policy the finisher also runs in-band DTMF detection on every
                # stream (the short code must be found and cut in every mode)
                **(
                    {"policy": POLICY, "recorded_user_id": 1, "tenant_id": 1} if with_policy else {}
                ),
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
    for seconds, with_policy in ((60, False), (600, False), (60, True), (600, True)):
        with tempfile.TemporaryDirectory() as tmp:
            build_call(Path(tmp), seconds, with_policy)
            reader = SpoolReader(Path(tmp))
            finish(reader)  # warm up (imports, tables)
            best = min(_timed(finish, reader) for _ in range(3))
            finish(reader)
            audio = np.zeros(seconds * 8000, dtype=np.int16)
            mp3_time = min(_timed(encode_mp3, audio, audio, 8000, 32) for _ in range(3))
            rows.append((seconds, with_policy, best, seconds / best, mp3_time))
    out = sys.stdout
    out.write(
        "| call | policy + in-band DTMF | finish() s | x real time "
        "| LAME 8 kHz stereo 32 kbps s | LAME share |\n"
    )
    out.write("|---:|:---:|---:|---:|---:|---:|\n")
    for seconds, with_policy, best, speed, mp3_time in rows:
        out.write(
            f"| {seconds} s | {'yes' if with_policy else 'no'} | {best:.3f} | {speed:.0f}x "
            f"| {mp3_time:.3f} | {mp3_time / best:.0%} |\n"
        )


def _timed(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
