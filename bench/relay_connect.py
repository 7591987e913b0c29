"""The kernel's part of relaying one packet: connected sockets against
unconnected, or a run's sends in one io_uring submission against sendmmsg.

Run: ``python bench/relay_connect.py [--pairs 200 --rounds 20 --spread 10]
[--compare connect|uring]``.
Issue 10: a relay leg latches strictly, so the batched path connects its
socket to the latched source (``media/relay.py`` ``_Leg.settle``) and the
pump sends to it with no address. This measures what that changes, apart
from the scheduler noise ``bench/relay.py`` has on a shared host: in one
process (pin it: ``taskset -c 1``), ``--pairs`` pumped sockets, each with its
source and a sink; per iteration every ``--spread``-th pair's source sends one
172-byte packet (untimed), one ``Pump.run`` relays them (timed, the thread's
CPU time), the sinks are read (untimed). Rounds alternate connected and
unconnected (connect/disconnect between rounds), so drift hits both; the
median per packet of each and their ratio are printed. ``--compare uring``:
both connected, rounds alternate a pump that sends with one io_uring
submission per run (``Pump(uring=True)``) and one that sends with a sendmmsg
per socket (``uring=False``). Ports 41000 upward on 127.0.0.1. Nothing
asserts on timings.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from callvault.media import _batchudp

HOST = "127.0.0.1"
ITERATIONS = 50
PACKET = bytes([0x80, 0]) + bytes(170)


class Pairs:
    """Per pair: source -> relay's receiving socket, relay's sending socket -> sink."""

    def __init__(self, pairs: int, first_port: int) -> None:
        port = first_port

        def bound() -> socket.socket:
            nonlocal port
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((HOST, port))  # a fixed port: disconnecting keeps it
            sock.setblocking(False)
            port += 1
            return sock

        self.source = [bound() for _ in range(pairs)]
        self.into = [bound() for _ in range(pairs)]
        self.out = [bound() for _ in range(pairs)]
        self.sink = [bound() for _ in range(pairs)]
        self.pumps = {True: _batchudp.Pump(uring=True), False: _batchudp.Pump(uring=False)}
        self.pump = self.pumps[False]
        for pump in self.pumps.values():
            for sock in self.into:
                pump.add(sock.fileno(), sock)

    def configure(self, connected: bool, uring: bool = False) -> None:
        self.pump = self.pumps[uring]
        for source, into, out, sink in zip(
            self.source, self.into, self.out, self.sink, strict=True
        ):
            _batchudp.set_peer(into.fileno(), source.getsockname() if connected else None)
            _batchudp.set_peer(out.fileno(), sink.getsockname() if connected else None)
            self.pump.configure(
                into.fileno(), source.getsockname(), out.fileno(), sink.getsockname(), None, 0, None
            )

    def round(self, connected: bool, spread: int, uring: bool = False) -> float:
        """Nanoseconds of the pump's run per relayed packet."""
        self.configure(connected, uring)
        spent = packets = 0
        for iteration in range(ITERATIONS):
            chosen = [i for i in range(len(self.into)) if (i + iteration) % spread == 0]
            for i in chosen:
                self.source[i].sendto(PACKET, self.into[i].getsockname())
            start = time.thread_time_ns()
            _, handoff = self.pump.run(0)
            spent += time.thread_time_ns() - start
            if handoff:
                raise RuntimeError(f"the pump handed packets to Python: {handoff[:1]}")
            for i in chosen:
                if len(_batchudp.recv_batch(self.sink[i].fileno())) != 1:
                    raise RuntimeError(f"pair {i}: the sink did not get its packet")
            packets += len(chosen)
        return spent / packets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20, help="rounds of each, alternating")
    parser.add_argument("--spread", type=int, default=10, help="1 in N pairs sends per run")
    parser.add_argument("--first-port", type=int, default=41000)
    parser.add_argument("--compare", choices=("connect", "uring"), default="connect")
    args = parser.parse_args()
    pairs = Pairs(args.pairs, args.first_port)
    if args.compare == "uring":
        compare_uring(pairs, args.rounds, args.spread)
        return
    results: dict[bool, list[float]] = {True: [], False: []}
    for n in range(args.rounds):
        for connected in (True, False) if n % 2 else (False, True):
            results[connected].append(pairs.round(connected, args.spread))
    for connected in (False, True):
        runs = results[connected]
        label = "connected" if connected else "unconnected"
        print(f"{label:12} median {statistics.median(runs):6.0f} ns/packet, min {min(runs):6.0f}")
    ratio = statistics.median(results[True]) / statistics.median(results[False])
    print(f"connected / unconnected: {ratio:.3f}")


def compare_uring(pairs: Pairs, rounds: int, spread: int) -> None:
    if not pairs.pumps[True].uring():
        raise SystemExit("io_uring is not available here")
    results: dict[bool, list[float]] = {True: [], False: []}
    for n in range(rounds):
        for uring in (True, False) if n % 2 else (False, True):
            results[uring].append(pairs.round(True, spread, uring))
    for uring in (False, True):
        runs = results[uring]
        label = "io_uring" if uring else "sendmmsg"
        print(f"{label:12} median {statistics.median(runs):6.0f} ns/packet, min {min(runs):6.0f}")
    ratio = statistics.median(results[True]) / statistics.median(results[False])
    print(f"io_uring / sendmmsg: {ratio:.3f}")


if __name__ == "__main__":
    main()
