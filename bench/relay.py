"""CPU per relayed RTP packet: callvault's media relay against rtpengine.

Run: ``python bench/relay.py`` (defaults: 200 port pairs, 50,000 packets/s, 10 s
each, recording on). Issue 10's figure: callvault's CPU per relayed packet as a
ratio of Debian's ``rtpengine`` daemon (userspace forwarding), same generator,
same load, one run.

* ``bench/bin/rtpgen`` (``bench/rtpgen.c``, built here with ``gcc -O2``) binds
  2 sockets per port pair and sends the load through the relay in both
  directions (172-byte PCMU packets, paced by a 1 ms timerfd), receiving every
  relayed packet with the one-way latency from the send time in its payload.
  It runs on CPU 1 (``taskset``).
* The relay under test runs alone on CPU 0: callvault as a child of this
  script (``--serve-callvault``: uvloop, one ``MediaRelay`` per pair, with
  recording on each side tapped into a real ``RtpReceiver`` + ``StreamSpool``
  flushed to disk every 250 ms, as a recorded call does), or ``rtpengine
  --foreground --table=-1 --interface=127.0.0.1 --listen-ng=127.0.0.1:22222
  --num-threads=1``, set up through its bencoded ng protocol (offer/answer
  per pair, over UDP).
* callvault reads its sockets batched (recvmmsg/sendmmsg through the native
  ``media/_batchudp.c``) when it is built; ``--relay-path asyncio`` measures
  the per-datagram asyncio path instead (what runs where it is not built).
  On the batched path the recording's common tap is done in C too
  (``RtpReceiver.fast_tap``); ``--python-tap`` hands every packet to
  ``RtpReceiver.datagram_received`` instead (what a live listener or SRTP
  costs, and the figure before the native tap).
* On the batched path a latched leg's socket is connected to its source
  (``_Leg.settle``); ``--no-connect`` measures it unconnected.
* CPU is utime + stime of the relay process (all threads) from
  ``/proc/<pid>/stat`` over the media phase, divided by the packets it
  relayed.
* ``--trials N`` runs the relays alternately N times (callvault, rtpengine,
  callvault, ...) and reports every run, each trial's ratio and the median
  ratio: on a shared host one noisy moment then moves one trial, not the
  figure. A trial in which a relay lost packets or its p99 latency is over
  ``--max-p99-ms`` (default 50) is shown but not counted: that relay was
  starved of CPU 0, read more packets per wake-up and looks cheaper than it
  is.

All traffic is on 127.0.0.1; every wait has a deadline. Nothing asserts on
timings: it prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RTPGEN_SRC = BENCH / "rtpgen.c"
RTPGEN = BENCH / "bin" / "rtpgen"
CLK_TCK = os.sysconf("SC_CLK_TCK")
RELAY_CPU = "0"
GEN_CPU = "1"
NG = ("127.0.0.1", 22222)
CALLVAULT_PORTS = (20000, 29998)
RTPENGINE_PORTS = (30000, 39998)


def build_rtpgen() -> Path:
    RTPGEN.parent.mkdir(parents=True, exist_ok=True)
    if not RTPGEN.exists() or RTPGEN.stat().st_mtime < RTPGEN_SRC.stat().st_mtime:
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-o", str(RTPGEN), str(RTPGEN_SRC)], check=True, timeout=120
        )
    return RTPGEN


def udp_rcvbuf_errors() -> int:
    """Host-wide UDP receive-buffer drops (/proc/net/snmp); other traffic counts too."""
    rows = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    udp = [row for row in rows if row[0] == "Udp:"]
    return int(udp[1][udp[0].index("RcvbufErrors")])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


class Lines:
    """A child's stdout, line by line, with a deadline per line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._q: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout
        threading.Thread(target=self._pump, args=(stdout,), daemon=True).start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def expect(self, prefix: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {prefix!r} line")
            line = self._q.get(timeout=left)
            if line is None:
                raise RuntimeError(f"child exited before {prefix!r}")
            if line.startswith(prefix):
                return line


def send_line(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


# -- bencode and rtpengine's ng protocol ---------------------------------------------
def bencode(value: Any) -> bytes:
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in sorted(value.items())) + b"e"
    raise TypeError(type(value))


def bdecode(data: bytes, pos: int = 0) -> tuple[Any, int]:
    kind = data[pos : pos + 1]
    if kind == b"i":
        end = data.index(b"e", pos)
        return int(data[pos + 1 : end]), end + 1
    if kind in (b"l", b"d"):
        pos += 1
        items: list[Any] = []
        while data[pos : pos + 1] != b"e":
            item, pos = bdecode(data, pos)
            items.append(item)
        if kind == b"l":
            return items, pos + 1
        return {items[i].decode(): items[i + 1] for i in range(0, len(items), 2)}, pos + 1
    colon = data.index(b":", pos)
    length = int(data[pos:colon])
    return data[colon + 1 : colon + 1 + length], colon + 1 + length


class NgClient:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(2.0)
        self.n = 0

    def command(self, **params: Any) -> dict[str, Any]:
        self.n += 1
        cookie = b"c%d" % self.n
        self.sock.sendto(cookie + b" " + bencode(params), NG)
        while True:
            data, _ = self.sock.recvfrom(65536)
            if data.startswith(cookie + b" "):
                reply, _ = bdecode(data, len(cookie) + 1)
                assert isinstance(reply, dict)
                if reply.get("result") != b"ok" and params["command"] != "ping":
                    raise RuntimeError(f"rtpengine: {reply}")
                return reply


def sdp(port: int) -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )


def sdp_port(body: bytes) -> int:
    for line in body.decode().splitlines():
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise RuntimeError("no m=audio in rtpengine's SDP")


# -- the relays under test -------------------------------------------------------------
@dataclass
class Result:
    relay: str
    recording: bool
    sent: int
    relayed: int
    cpu_s: float
    seconds: float
    p50_us: int
    p99_us: int
    rcvbuf_drops: int
    load: float  # the host's 1-minute load average at the end of the run

    @property
    def us_per_packet(self) -> float:
        return self.cpu_s / max(1, self.relayed) * 1e6


def start_callvault(
    peers: list[int], record: bool, path: str, python_tap: bool, connect: bool
) -> tuple[subprocess.Popen[str], list[int]]:
    cmd = ["taskset", "-c", RELAY_CPU, sys.executable, __file__, "--serve-callvault"]
    cmd += ["--pairs", str(len(peers) // 2)] + ([] if record else ["--no-record"])
    cmd += ["--relay-path", path] + (["--python-tap"] if python_tap else [])
    cmd += [] if connect else ["--no-connect"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines = Lines(proc)
    send_line(proc, "PEERS " + " ".join(map(str, peers)))
    targets = [int(p) for p in lines.expect("PORTS", 60).split()[1:]]
    return proc, targets


def start_rtpengine(peers: list[int]) -> tuple[subprocess.Popen[str], list[int]]:
    exe = shutil.which("rtpengine")
    if exe is None:
        raise RuntimeError("rtpengine is not installed (scripts/system-packages.sh)")
    cmd = ["taskset", "-c", RELAY_CPU, exe, "--foreground", "--table=-1"]
    cmd += ["--interface=127.0.0.1", "--listen-ng=127.0.0.1:22222", "--num-threads=1"]
    cmd += [f"--port-min={RTPENGINE_PORTS[0]}", f"--port-max={RTPENGINE_PORTS[1]}"]
    cmd += ["--log-level=3", "--log-stderr"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, text=True)
    ng = NgClient()
    deadline = time.monotonic() + 10
    while True:
        try:
            ng.command(command="ping")
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("rtpengine did not answer ping") from None
    targets: list[int] = []
    for i in range(0, len(peers), 2):
        call = {"call-id": f"bench-{i}", "from-tag": "a"}
        offer = ng.command(command="offer", sdp=sdp(peers[i]), **call)
        answer = ng.command(command="answer", sdp=sdp(peers[i + 1]), **{"to-tag": "b"}, **call)
        # a sends to the port in the answer's SDP (what a is told), b to the offer's
        targets += [sdp_port(answer["sdp"]), sdp_port(offer["sdp"])]
    return proc, targets


def callvault_label(args: argparse.Namespace) -> str:
    tap = ", python tap" if args.python_tap and not args.no_record else ""
    unconnected = ", not connected" if args.no_connect and args.relay_path == "batched" else ""
    return f"callvault ({args.relay_path}{tap}{unconnected})"


def run_one(kind: str, args: argparse.Namespace) -> Result:
    gen_cmd = ["taskset", "-c", GEN_CPU, str(RTPGEN), "--pairs", str(args.pairs)]
    gen_cmd += ["--rate", str(args.rate), "--duration", str(args.duration)]
    gen = subprocess.Popen(gen_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    relay: subprocess.Popen[str] | None = None
    try:
        out = Lines(gen)
        peers = [int(p) for p in out.expect("PORTS", 10).split()[1:]]
        if kind == "callvault":
            relay, targets = start_callvault(
                peers, not args.no_record, args.relay_path, args.python_tap, not args.no_connect
            )
        else:
            relay, targets = start_rtpengine(peers)
        send_line(gen, "TARGETS " + " ".join(map(str, targets)))
        print(f"{kind}: {out.expect('PHASE primed', 30)}", flush=True)
        cpu0 = cpu_seconds(relay.pid)
        drops0 = udp_rcvbuf_errors()
        send_line(gen, "go")
        done = out.expect("PHASE media_done", args.duration + 60)
        cpu1 = cpu_seconds(relay.pid)
        send_line(gen, "go")
        fields = dict(kv.split("=") for kv in out.expect("RESULT", 30).split()[1:])
        seconds = float(dict(kv.split("=") for kv in done.split()[2:])["seconds"])
        return Result(
            relay=callvault_label(args) if kind == "callvault" else kind,
            recording=kind == "callvault" and not args.no_record,
            sent=int(fields["sent"]),
            relayed=int(fields["received"]),
            cpu_s=cpu1 - cpu0,
            seconds=seconds,
            p50_us=int(fields["p50_us"]),
            p99_us=int(fields["p99_us"]),
            rcvbuf_drops=udp_rcvbuf_errors() - drops0,
            load=os.getloadavg()[0],
        )
    finally:
        for proc in (gen, relay):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


# -- callvault's side (the child on CPU 0) ----------------------------------------------
def serve_callvault(pairs: int, record: bool, path: str, python_tap: bool, connect: bool) -> None:
    import uvloop

    sys.path.insert(0, str(ROOT / "src"))
    from callvault.media import relay

    relay.CONNECT_LATCHED = connect
    uvloop.install()
    asyncio.run(_serve(pairs, record, path == "batched", python_tap))


async def _serve(pairs: int, record: bool, batched: bool, python_tap: bool) -> None:
    from callvault.media.ports import RtpPortPool
    from callvault.media.receiver import RtpReceiver
    from callvault.media.relay import MediaRelay
    from callvault.recording.spool import SpoolWriter

    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    peers = [int(p) for p in line.split()[1:]]
    pool = RtpPortPool(*CALLVAULT_PORTS)
    spool_dir = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    writers: list[SpoolWriter] = []

    def now_ms() -> int:
        return int(loop.time() * 1000)

    relays: list[MediaRelay] = []
    for i in range(pairs):
        relay = MediaRelay(loop, "127.0.0.1", pool, batched=batched)
        await relay.open()
        relay.set_remote("a", "127.0.0.1", peers[2 * i])
        relay.set_remote("b", "127.0.0.1", peers[2 * i + 1])
        if record:
            writer = SpoolWriter(spool_dir / str(i))
            writers.append(writer)
            for index, side in enumerate(("a", "b")):
                receiver = RtpReceiver(
                    writer.stream(index), now_ms, None, frozenset({101}), expected_host="127.0.0.1"
                )
                # a partial is not the receiver's own method: the relay calls it per packet
                tap = partial(RtpReceiver.datagram_received, receiver)
                relay.set_tap(side, tap if python_tap else receiver.datagram_received)  # type: ignore[arg-type]
        relays.append(relay)
    ports = [relay.local_port(side) for relay in relays for side in ("a", "b")]
    print("PORTS " + " ".join(map(str, ports)), flush=True)

    async def flush() -> None:  # what a recorded call's flush task does every 250 ms
        while True:
            await asyncio.sleep(0.25)
            for writer in writers:
                writer.flush()

    flusher = asyncio.create_task(flush())
    await loop.run_in_executor(None, sys.stdin.read)  # until the driver closes our stdin
    flusher.cancel()
    for relay in relays:
        relay.close()
    shutil.rmtree(spool_dir, ignore_errors=True)


# -- main ---------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--rate", type=int, default=50000, help="packets/s, both directions")
    parser.add_argument("--duration", type=int, default=10, help="seconds of media per relay")
    parser.add_argument("--no-record", action="store_true", help="callvault without the tap")
    parser.add_argument("--only", choices=("callvault", "rtpengine"))
    parser.add_argument(
        "--relay-path",
        choices=("batched", "asyncio"),
        default="batched",
        help="how callvault reads its sockets (batched needs the native extension)",
    )
    parser.add_argument(
        "--python-tap",
        action="store_true",
        help="the recording tap per packet in Python (not the batched path's native tap)",
    )
    parser.add_argument(
        "--no-connect",
        action="store_true",
        help="the batched path's sockets not connected to the latched source",
    )
    parser.add_argument(
        "--trials",
        type=int,
        default=1,
        help="alternating runs per relay (callvault, rtpengine, callvault, ...): each "
        "and the median ratio are reported",
    )
    parser.add_argument(
        "--max-p99-ms",
        type=float,
        default=50.0,
        help="a trial where a relay's p99 latency is over this (or it lost packets) is "
        "reported but not counted",
    )
    parser.add_argument("--serve-callvault", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_callvault:
        serve_callvault(
            args.pairs, not args.no_record, args.relay_path, args.python_tap, not args.no_connect
        )
        return
    if os.cpu_count() is None or (os.cpu_count() or 0) < 2:
        sys.exit("needs 2 CPUs (relay on CPU 0, generator on CPU 1)")
    build_rtpgen()
    kinds = [args.only] if args.only else ["callvault", "rtpengine"]
    trials: list[list[Result]] = []
    for trial in range(args.trials):  # alternating: a noisy moment hits one run, not a relay
        trials.append([])
        for kind in kinds:
            print(f"trial {trial + 1}/{args.trials}, ", end="", flush=True)
            trials[-1].append(run_one(kind, args))
    print()
    print(f"{args.pairs} port pairs, {args.rate} packets/s offered, {args.duration} s each")
    print(
        "| trial | relay | recording | sent | relayed | loss (UDP rcvbuf drops) | relay CPU "
        "| µs/packet | latency p50 / p99 | load (1 min) |"
    )
    print("|---:|---|:---:|---:|---:|---:|---:|---:|---:|---:|")
    for trial, results in enumerate(trials, 1):
        for r in results:
            print(
                f"| {trial} | {r.relay} | {'yes' if r.recording else 'no'} | {r.sent} "
                f"| {r.relayed} | {r.sent - r.relayed} ({r.rcvbuf_drops}) "
                f"| {100 * r.cpu_s / r.seconds:.0f}% | {r.us_per_packet:.2f} "
                f"| {r.p50_us} / {r.p99_us} µs | {r.load:.2f} |"
            )

    # a relay starved of its CPU batches more and looks cheaper (and may lose packets):
    # such trials are shown, not counted
    def starved(r: Result) -> bool:
        return r.p99_us > args.max_p99_ms * 1000 or r.relayed < r.sent

    clean = [results for results in trials if not any(starved(r) for r in results)]
    print(
        f"\ntrials counted: {len(clean)} of {len(trials)} (left out: a relay lost packets or "
        f"its p99 latency was over {args.max_p99_ms} ms, starved of CPU)"
    )
    if not clean:
        return
    for kind, runs in zip(kinds, zip(*clean, strict=True), strict=True):
        print(f"{kind}: median {statistics.median(r.us_per_packet for r in runs):.2f} µs/packet")
    if len(kinds) == 2:
        ratios = [cv.us_per_packet / engine.us_per_packet for cv, engine in clean]
        each = ", ".join(f"{ratio:.2f}" for ratio in ratios)
        print(
            f"callvault / rtpengine CPU per packet, per trial: {each}; "
            f"median {statistics.median(ratios):.2f}x (issue 10 goal: <= 0.8x)"
        )


if __name__ == "__main__":
    main()
