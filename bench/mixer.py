"""Mixer CPU per coached call-second (issue 11's figure).

Run: ``python bench/mixer.py [--seconds 20 --calls 20]``. Prints a table of
CPU time (``time.process_time``: user + system of this process) per second of
a coached call, and how many coached calls one core could carry at that rate:

* ``Mixer`` alone, per mode: 50 frames a second of three 20 ms inputs mixed
  into three outputs (silent: two of the three outputs pass one voice
  through; the other modes sum and ramp);
* the three ``JitterBuffer``\\ s of a call: 3 × 50 pushes and pops;
* the whole ``CoachingBridge`` path of a coached call: for each of
  ``--calls`` bridges on a real ``MediaRelay`` (sockets on 127.0.0.1), every
  20 ms of call time one G.711 packet from each party is handed in the way
  the relay and the supervisor's socket hand them (RTP parsed, decoded,
  jitter-buffered), then one tick runs (pop, mix, encode, and three real
  ``sendto`` to sink sockets nobody reads). The event loop is not running:
  the ticks are driven here, so the figure is the bridge's own work; the
  relay's socket reads, which plain relaying pays as well, are not in it
  (``bench/relay.py`` measures those: about 12-18 µs a packet).

All traffic is on 127.0.0.1. Nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from collections.abc import Callable

import numpy as np

from callvault.media.codec import Codec
from callvault.media.codecs import encode_pcmu
from callvault.media.conference import CoachingBridge
from callvault.media.jitter import JitterBuffer
from callvault.media.mixer import COACH_MODES, PARTIES, CoachMode, Mixer
from callvault.media.ports import RtpPortPool
from callvault.media.relay import MediaRelay
from callvault.media.rtp import RtpPacket

HOST = "127.0.0.1"
FRAMES_PER_SECOND = 50
N = 160
PCMU = {0: Codec("PCMU", 8000), 101: Codec("telephone-event", 8000)}
TONES = {"customer": 500.0, "agent": 1000.0, "supervisor": 1500.0}


def tones(frames: int) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {}
    for party, hz in TONES.items():
        t = np.arange(frames * N) / 8000.0
        pcm = (np.sin(2 * np.pi * hz * t) * 6000).astype(np.int16)
        out[party] = [pcm[k * N : (k + 1) * N] for k in range(frames)]
    return out


def cpu_per_call_second(run: Callable[[], None], call_seconds: float) -> float:
    """µs of CPU per call-second that ``run`` spends over ``call_seconds``."""
    start = time.process_time()
    run()
    return (time.process_time() - start) * 1e6 / call_seconds


def bench_mixer(mode: CoachMode, seconds: int, frames: dict[str, list[np.ndarray]]) -> float:
    mixer = Mixer(mode=mode)
    count = seconds * FRAMES_PER_SECOND

    def run() -> None:
        for k in range(count):
            i = k % len(frames["agent"])
            for party in PARTIES:
                mixer.put(party, frames[party][i])
            mixer.mix()

    return cpu_per_call_second(run, seconds)


def bench_jitter(seconds: int, frames: dict[str, list[np.ndarray]]) -> float:
    buffers = [JitterBuffer() for _ in PARTIES]
    count = seconds * FRAMES_PER_SECOND

    def run() -> None:
        for k in range(count):
            i = k % len(frames["agent"])
            now = 20 * k
            for buffer, party in zip(buffers, PARTIES, strict=True):
                buffer.push(k & 0xFFFF, N * k, frames[party][i], now)
                buffer.pop(now)

    return cpu_per_call_second(run, seconds)


async def _bridges(
    calls: int, mode: CoachMode
) -> tuple[list[tuple[MediaRelay, CoachingBridge]], list[socket.socket]]:
    loop = asyncio.get_running_loop()
    pool = RtpPortPool(40000, 44998)
    sinks: list[socket.socket] = []

    def sink() -> int:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, 0))
        sinks.append(s)
        return int(s.getsockname()[1])

    out = []
    for _ in range(calls):
        relay = MediaRelay(loop, HOST, pool)
        await relay.open()
        relay.set_remote("a", HOST, sink())
        relay.set_remote("b", HOST, sink())
        relay.set_codecs("a", PCMU)
        relay.set_codecs("b", PCMU)
        bridge = CoachingBridge(loop, relay, "b", HOST, pool)
        await bridge.open()
        bridge.set_supervisor(HOST, sink(), PCMU)
        bridge.set_mode(mode)
        if bridge._timer is not None:  # the ticks are driven by the bench
            bridge._timer.cancel()
        out.append((relay, bridge))
    return out, sinks


def bench_bridge(
    mode: CoachMode, seconds: int, calls: int, frames: dict[str, list[np.ndarray]]
) -> float:
    loop = asyncio.new_event_loop()
    try:
        pairs, sinks = loop.run_until_complete(_bridges(calls, mode))
        payloads = {p: [encode_pcmu(f) for f in fs] for p, fs in frames.items()}
        count = seconds * FRAMES_PER_SECOND
        packets: dict[str, list[bytes]] = {
            p: [
                bytes(
                    RtpPacket(0, k & 0xFFFF, N * k, 0x1000 + n, payloads[p][k % len(payloads[p])])
                )
                for k in range(count)
            ]
            for n, p in enumerate(PARTIES)
        }
        # each supervisor "sends" from the address its SDP named: the bridge latches to it
        sup_addrs = [bridge._sup_dest for _, bridge in pairs]

        def run() -> None:
            for k in range(count):
                now = 20 * k
                c, a, s = packets["customer"][k], packets["agent"][k], packets["supervisor"][k]
                for (_, bridge), sup_addr in zip(pairs, sup_addrs, strict=True):
                    assert sup_addr is not None
                    bridge._from_leg("a", c, now)
                    bridge._from_leg("b", a, now)
                    bridge._from_supervisor(s, sup_addr)
                    bridge._frame(now)

        per = cpu_per_call_second(run, seconds * calls)
        for relay, bridge in pairs:
            bridge.close()
            relay.close()
        loop.run_until_complete(asyncio.sleep(0))
        for s in sinks:
            s.close()
        return per
    finally:
        loop.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="call-seconds per row (per call)")
    parser.add_argument("--calls", type=int, default=20, help="coached calls in the bridge rows")
    args = parser.parse_args(argv)
    frames = tones(50)
    rows: list[tuple[str, float]] = []
    for mode in COACH_MODES:
        rows.append((f"Mixer alone, {mode}", bench_mixer(mode, args.seconds, frames)))
    rows.append(("3 jitter buffers (push+pop)", bench_jitter(args.seconds, frames)))
    for mode in ("silent", "conference"):
        label = f"CoachingBridge path, {mode} ({args.calls} calls)"
        rows.append((label, bench_bridge(mode, args.seconds, args.calls, frames)))
    width = max(len(name) for name, _ in rows)
    head = ("CPU µs / call-second", "% of a core", "coached calls / core")
    print(f"{'what':<{width}}  {head[0]:>20}  {head[1]:>11}  {head[2]:>20}")
    for name, us in rows:
        print(f"{name:<{width}}  {us:>20.0f}  {us / 1e4:>10.2f}%  {1e6 / us:>20.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
