"""Live listening (issue 11): concurrent listeners per core and listen latency.

A server process (this file with ``--serve``, pinned to CPU 0 where
``taskset`` exists) runs uvicorn with the real ``ListenHub``/``ListenFeed``
and the WebSocket framing of ``portal/live/listen_ws.py`` (the portal's
per-connection checks, a few database reads at open, are left out: they are
paid once per listen, not per frame). Its calls are synthetic: two G.711
streams per call whose receivers are fed one RTP packet every 20 ms each, the
way ``RtpReceiver`` hands packets to ``listener``.

The bench (CPU 1) connects N WebSocket listeners, on one call and spread over
N calls, for ``--duration`` seconds each step, and reports: frames received
and lost (sequence gaps: the server dropped them for a slow listener), the
server process's CPU per listener-second (minus the step's idle baseline) and
so listeners per core, and the latency from a frame's send on the server
(its header's wall-clock ms) to its arrival, p50/p99. Mouth-to-browser adds
the fixed buffers: the server's 60 ms playout and the page's 80 ms jitter
target, plus a frame's 20 ms; the Chromium test
(tests/browser/test_listen_browser.py) measures the whole path.

    python bench/listen.py [--steps 1,10,50,100,200 --duration 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from fastapi import FastAPI, WebSocket

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from callvault.live.listen import FRAME_HEADER, ListenHub, Listening  # noqa: E402
from callvault.media.codec import Codec  # noqa: E402
from callvault.media.codecs import encode_pcmu  # noqa: E402
from callvault.media.rtp import RtpPacket  # noqa: E402
from callvault.media.tones import sine  # noqa: E402
from callvault.recording.journal import StreamLayout  # noqa: E402

if TYPE_CHECKING:
    from callvault.siprec.call import RecordedCall


# -- the server ----------------------------------------------------------------
class _Receiver:
    listener: Any = None


@dataclass
class _Stream:
    layout: StreamLayout
    receiver: _Receiver = field(default_factory=_Receiver)


class _Call:
    def __init__(self, n: int, t0: float) -> None:
        self.uuid = f"call-{n}"
        self.ended = False
        self.t0 = t0
        codecs = {0: Codec("PCMU", 8000)}
        self.streams = {
            0: _Stream(StreamLayout(0, None, codecs, "left", "a")),
            1: _Stream(StreamLayout(1, None, codecs, "right", "b")),
        }
        self.seq = 0

    def now_ms(self) -> int:
        return int((time.monotonic() - self.t0) * 1000)


def serve(port: int, calls: int) -> None:
    import uvicorn

    app = FastAPI()
    t0 = time.monotonic()
    running = [_Call(n, t0) for n in range(calls)]
    payloads = [
        encode_pcmu(sine(hz, 1.0)[k * 160 : (k + 1) * 160]) for hz in (440, 1000) for k in range(50)
    ]
    state: dict[str, Any] = {}

    def packets() -> None:
        # every 20 ms each stream's receiver hears one packet, as RtpReceiver does
        for call in running:
            now = call.now_ms()
            for index, stream in call.streams.items():
                if stream.receiver.listener is None:
                    continue  # nobody listens: the receiver's one check
                data = bytes(
                    RtpPacket(
                        0,
                        call.seq & 0xFFFF,
                        (call.seq * 160) & 0xFFFFFFFF,
                        1000 + index,
                        payloads[(call.seq % 50) + 50 * index],
                    )
                )
                stream.receiver.listener(data, now)
            call.seq += 1
        loop = asyncio.get_running_loop()
        state["next"] += 0.02
        loop.call_at(state["next"], packets)

    @app.websocket("/listen/{n}")
    async def listen(websocket: WebSocket, n: int) -> None:
        hub: ListenHub = state["hub"]
        # the hub reads uuid, streams (receiver, layout), ended and now_ms: the stand-in's
        call = cast("RecordedCall", running[n])
        await websocket.accept()
        subscriber = hub.subscribe(call, Listening("both"))
        await websocket.send_text(json.dumps({"rate": 8000, "channels": 2}))
        try:
            while (frame := await subscriber.queue.get()) is not None:
                await websocket.send_bytes(frame)
        except Exception:  # the client went
            pass
        finally:
            hub.unsubscribe(call, subscriber)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        state["hub"] = ListenHub(loop)
        state["next"] = loop.time()
        packets()
        yield

    app.router.lifespan_context = lifespan

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio")


# -- the listeners ------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def step(port: int, calls: list[int], duration: float) -> dict[str, Any]:
    import aiohttp

    frames = 0
    lost = 0
    latencies: list[float] = []

    async def one(http: aiohttp.ClientSession, n: int) -> None:
        nonlocal frames, lost
        async with http.ws_connect(f"ws://127.0.0.1:{port}/listen/{n}") as ws:
            await ws.receive()
            last = -1
            until = time.monotonic() + duration
            while time.monotonic() < until:
                msg = await ws.receive(timeout=5)
                arrived = time.time() * 1000
                _v, _ch, _s, seq, sent = FRAME_HEADER.unpack_from(msg.data)
                if last >= 0 and seq != last + 1:
                    lost += seq - last - 1
                last = seq
                frames += 1
                latencies.append(arrived - sent)

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(one(http, n) for n in calls))
    return {"frames": frames, "lost": lost, "latencies": latencies}


async def measure(port: int, pid: int, steps: list[int], duration: float) -> None:
    rows = []
    before = cpu_seconds(pid)
    await asyncio.sleep(duration)
    idle = (cpu_seconds(pid) - before) / duration  # the synthetic calls, nobody listening
    for spread in (False, True):
        for n in steps:
            calls = list(range(n)) if spread else [0] * n
            before, t = cpu_seconds(pid), time.monotonic()
            result = await step(port, calls, duration)
            elapsed = time.monotonic() - t
            cpu = max(0.0, cpu_seconds(pid) - before - idle * elapsed)
            per = cpu / (n * duration)
            lat = np.array(result["latencies"] or [0.0])
            rows.append(
                (
                    "spread" if spread else "one call",
                    n,
                    result["frames"],
                    result["lost"],
                    per * 1e6,
                    1 / per if per else float("inf"),
                    float(np.percentile(lat, 50)),
                    float(np.percentile(lat, 99)),
                )
            )
            print(
                f"{rows[-1][0]:>8} {n:>5} listeners: {result['frames']:>7} frames, "
                f"{result['lost']:>5} lost, {per * 1e6:8.1f} µs CPU/listener-s, "
                f"p50 {rows[-1][6]:.1f} ms p99 {rows[-1][7]:.1f} ms",
                flush=True,
            )
    print(
        "\n| calls | listeners | frames | lost | CPU µs/listener-s | listeners/core |"
        " send→arrive p50 ms | p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind, n, fr, lo, us, per_core, p50, p99 in rows:
        print(f"| {kind} | {n} | {fr} | {lo} | {us:.0f} | {per_core:.0f} | {p50:.1f} | {p99:.1f} |")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", default="1,10,50,100,200")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.calls)
        return 0
    steps = [int(s) for s in args.steps.split(",")]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, __file__, "--serve", str(port), "--calls", str(max(steps))]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", "0", *command]
        os.sched_setaffinity(0, {1})
    server = subprocess.Popen(command)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        asyncio.run(measure(port, server.pid, steps, args.duration))
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
