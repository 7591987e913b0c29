"""Steady-state capacity on one core: capture and finishing together (issue 12).

Run: ``python bench/steady.py [--loads 300,450,600 --minutes 10 --hold-mean 180
--overload 1.5]``; a smoke run: ``--loads 20,40 --minutes 1 --hold-mean 20``.

Per load step E (Erlang: calls up on average) it starts a fresh ``callvault
serve`` pinned to CPU 0, finisher pool included (its workers inherit the
affinity, and run niced: ``recording/pipeline.py``), and ``bench/bin/loadgen
steady`` on CPU 1: E calls set up first (the stationary start), then for the
window new calls arrive as a Poisson process of rate E / hold-mean, each
holding an exponential time (mean ``--hold-mean``, 180 s by default) with two
G.711 streams. When the window ends, new calls stop, the calls still up are
BYEd, and the bench waits until every call is finished. It reports:

- loss: RTP packets the generator sent minus what the server counted
  (``callvault_rtp_packets_received_total``), after the server drained;
- the finish backlog (``callvault_spool_pending``: ended calls not yet stored)
  sampled over the window, its least-squares slope, and whether it grows;
- every call stored: calls rows for every answered call, each with a recording
  row whose MP3 blob is on disk at its recorded size;
- CPU per call-second, split: capture is the server's event-loop thread
  (``/proc/<pid>/task/<pid>/stat``: SIP, RTP receive, spool writes), finishing
  is the rest of the server process (the finisher's database thread) plus its
  child processes (the pool); call-seconds are packets sent / 100;
- memory: RSS of the server and of its pool.

Then the same generator load (same seed) goes to ``bench/bin/crecv``, the C
receiver (epoll + recvmmsg, ``bench/crecv.c``) on CPU 0 and the same ports,
and the bench prints callvault's capture CPU per packet divided by the C
receiver's: issue 12's "≤ 1.5" figure.

``--overload 1.5`` last runs 1.5 × the highest clean load: capture must keep
priority (zero loss) while the backlog grows, and drain once new calls stop.

The last line printed is the figure: the highest steady load with zero loss, a
backlog that does not grow, and every call stored. All traffic is on 127.0.0.1;
every wait has a deadline. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:  # run as a script: ``bench`` is the package next door
    sys.path.insert(0, str(ROOT))

from bench import run_recorder as rr  # noqa: E402

CRECV_SRC = BENCH / "crecv.c"
CRECV = BENCH / "bin" / "crecv"
PACKETS_PER_CALL_S = 100  # two streams x 50 packets/s (20 ms PCMU)


# -- build ----------------------------------------------------------------------------
def build_crecv(force: bool = False) -> Path:
    """gcc -O2 bench/crecv.c -> bench/bin/crecv (rebuilt when the source is newer)."""
    CRECV.parent.mkdir(parents=True, exist_ok=True)
    if force or not CRECV.exists() or CRECV.stat().st_mtime < CRECV_SRC.stat().st_mtime:
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-o", str(CRECV), str(CRECV_SRC)], check=True, timeout=120
        )
    return CRECV


# -- /proc ------------------------------------------------------------------------------
def thread_cpu_s(pid: int, tid: int) -> float:
    stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / rr.CLK_TCK


def descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(stat[1])
    out: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        children = [child for child, parent in parents.items() if parent == current]
        out += children
        todo += children
    return out


def niceness(pid: int) -> str:
    """Like "server 0, children 0,10" (forkserver, worker): the pool runs niced."""

    def nice(p: int) -> str:
        with contextlib.suppress(OSError, IndexError):
            return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[16]
        return "?"

    children = ",".join(nice(child) for child in descendants(pid)) or "-"
    return f"server {nice(pid)}, children {children}"


@dataclass
class CpuSnapshot:
    """The server's CPU seconds, split: event loop (capture) and the rest (finishing)."""

    at: float
    loop: float = 0.0
    process: float = 0.0
    children: float = 0.0
    rss_kib: int = 0
    children_rss_kib: int = 0

    @property
    def finishing(self) -> float:
        return self.process - self.loop + self.children


def snapshot(pid: int) -> CpuSnapshot:
    snap = CpuSnapshot(time.monotonic())
    with contextlib.suppress(OSError, IndexError, ValueError):
        snap.loop = thread_cpu_s(pid, pid)
        snap.process = rr.proc_cpu_s(pid)
        snap.rss_kib = rr.proc_rss_kib(pid)
    for child in descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            snap.children += rr.proc_cpu_s(child)
            snap.children_rss_kib += rr.proc_rss_kib(child)
    return snap


# -- the generator ------------------------------------------------------------------------
BYE_GAP_MS = 0  # --bye-gap-ms: a call's media stops this long before its BYE


def steady_args(
    sip_port: int, load: float, hold_mean: float, seconds: float, seed: int, rate: float
) -> list[str]:
    return [
        "steady",
        "--server",
        f"127.0.0.1:{sip_port}",
        "--load",
        f"{load:g}",
        "--hold-mean",
        f"{hold_mean:g}",
        "--duration",
        f"{seconds:g}",
        "--seed",
        str(seed),
        "--rate",
        f"{rate:g}",
        "--bye-gap-ms",
        str(BYE_GAP_MS),
        "--sync",
        "--sync-timeout",
        "900",
    ]


def next_line(gen: rr.LoadGen, timeout: float) -> str | None:
    """The generator's next stdout line (kept in its output), or None after ``timeout``."""
    try:
        line = gen.lines.get(timeout=timeout)
    except queue.Empty:
        return None
    if line is None:
        raise RuntimeError("loadgen exited early:\n" + "\n".join(gen.output[-10:]))
    gen.output.append(line)
    return line


# -- one step ---------------------------------------------------------------------------------
@dataclass
class Sample:
    t: float  # seconds into the window
    pending: float
    stored: float
    capture_lag_ms: float
    cpu: CpuSnapshot


@dataclass
class Step:
    load: float
    seconds: float
    prefilled: int = 0
    gen: dict[str, float] = field(default_factory=dict)
    sent: int = 0
    received: int = 0
    rcvbuf_errors: int = 0
    samples: list[Sample] = field(default_factory=list)
    ended_in_window: int = 0
    drained: bool = False
    drain_s: float = 0.0
    db_calls: int = 0
    db_mp3: int = 0
    capture_s: float = 0.0  # event loop over the window
    finishing_s: float = 0.0  # from window start until drained
    window_wall_s: float = 0.0
    rss_idle_kib: int = 0
    rss_max_kib: int = 0
    pool_rss_max_kib: int = 0
    crecv_us: float = 0.0
    crecv_loss: int = 0
    crecv_pkts: int = 0
    capture_us: float = 0.0
    nice: str = "?"  # the server's and its pool workers' niceness
    error: str = ""

    @property
    def answered(self) -> int:
        return int(self.gen.get("answered", 0))

    @property
    def loss(self) -> int:
        return self.sent - self.received

    @property
    def call_s(self) -> float:
        return self.sent / PACKETS_PER_CALL_S

    def backlog_fit(self) -> tuple[float, float]:
        """(slope in calls per minute, rise over the window) of the finish backlog."""
        points = [(s.t, s.pending) for s in self.samples]
        if len(points) < 3:
            return 0.0, 0.0
        n = len(points)
        mt = sum(t for t, _ in points) / n
        mp = sum(p for _, p in points) / n
        var = sum((t - mt) ** 2 for t, _ in points)
        slope = sum((t - mt) * (p - mp) for t, p in points) / var if var else 0.0
        return slope * 60, slope * (points[-1][0] - points[0][0])

    @property
    def backlog_grows(self) -> bool:
        # a finisher that keeps up leaves a few calls pending whatever the window;
        # one that does not leaves a share of the ended calls behind, growing with time
        _slope, rise = self.backlog_fit()
        return rise > max(5.0, 0.02 * self.ended_in_window)

    @property
    def all_stored(self) -> bool:
        return self.drained and self.db_calls == self.answered == self.db_mp3

    def clean(self) -> bool:
        g = self.gen
        return (
            not self.error
            and self.prefilled >= round(self.load)
            and g.get("setup_failed", 1) == 0
            and g.get("blocked", 1) == 0
            and g.get("bye_failed", 1) == 0
            and self.loss == 0
            and not self.backlog_grows
            and self.all_stored
        )


def count_stored(data_dir: Path) -> tuple[int, int]:
    """(calls rows of the generator's calls, recordings whose MP3 is on disk at its size)."""
    with contextlib.closing(sqlite3.connect(data_dir / "callvault.db", timeout=30)) as db:
        calls = db.execute("SELECT count(*) FROM calls WHERE sip_call_id LIKE 'cv%'").fetchone()[0]
        rows = db.execute(
            "SELECT r.blob_key, r.size_bytes FROM recordings r JOIN calls c ON r.call_id = c.id"
            " WHERE c.sip_call_id LIKE 'cv%'"
        ).fetchall()
    blobs = data_dir / "blobs"
    present = 0
    for key, size in rows:
        with contextlib.suppress(OSError):
            if size > 0 and (blobs / key).stat().st_size == size:
                present += 1
    return int(calls), present


def callvault_step(
    load: float, seconds: float, hold_mean: float, seed: int, rate: float, args: argparse.Namespace
) -> Step:
    step = Step(load, seconds)
    truesize = args.truesize
    low, high = rr.rtp_range()
    key = "callvault_rtp_packets_received_total"
    with rr.running_server(keep=args.keep) as server:
        time.sleep(1.0)  # forkserver, imports: settle before the idle RSS
        step.rss_idle_kib = rr.proc_rss_kib(server.pid)
        gen = rr.LoadGen(steady_args(server.sip_port, load, hold_mean, seconds, seed, rate))
        try:
            line = gen.wait_for("PHASE established", load / rate + 60)
            step.prefilled = int(rr.keyvalues(line).get("calls", 0))
            m0 = server.metrics()
            udp0 = rr.udp_counters()
            start = snapshot(server.pid)
            gen.go()
            every = args.sample_s or max(1.0, min(5.0, seconds / 30))
            next_sample, up = start.at, float(step.prefilled)
            window_end: CpuSnapshot | None = None
            deadline = start.at + seconds + 120
            while window_end is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("the window did not end")
                got = next_line(gen, max(0.0, next_sample - time.monotonic()))
                if got is not None and got.startswith("STAT"):
                    up = rr.keyvalues(got).get("up", up)
                elif got is not None and got.startswith("PHASE window_done"):
                    window_end = snapshot(server.pid)
                if time.monotonic() >= next_sample:
                    m = server.metrics()
                    queued = rr.rtp_socket_queues(low, high)[1]
                    pps = max(1.0, up * PACKETS_PER_CALL_S)
                    step.samples.append(
                        Sample(
                            time.monotonic() - start.at,
                            m.get("callvault_spool_pending", 0),
                            m.get("callvault_recordings_stored_total", 0),
                            queued / truesize / pps * 1e3,
                            snapshot(server.pid),
                        )
                    )
                    next_sample += every
            ended_at = time.monotonic()
            step.window_wall_s = window_end.at - start.at
            step.capture_s = window_end.loop - start.loop
            result = rr.keyvalues(gen.wait_for("RESULT", load * 3 / rate + 60))
            step.gen = result
            step.sent = int(result.get("sent", 0))
            step.ended_in_window = int(result.get("held_to_end", 0))
            # the server drains its sockets: the counter stable for 1 s
            last, stable_since, until = -1.0, time.monotonic(), time.monotonic() + 60
            m2 = m0
            while time.monotonic() < until:
                m2 = server.metrics()
                if m2.get(key, 0) != last:
                    last, stable_since = m2.get(key, 0), time.monotonic()
                elif time.monotonic() - stable_since >= 1.0:
                    break
                time.sleep(0.2)
            step.received = int(m2.get(key, 0) - m0.get(key, 0))
            step.rcvbuf_errors = rr.udp_drops(udp0, rr.udp_counters())["RcvbufErrors"]
            step.drained, _, _ = server.wait_finished(step.answered, args.finish_timeout)
            step.drain_s = time.monotonic() - ended_at
            done = snapshot(server.pid)
            step.nice = niceness(server.pid)  # pool workers start with the first ended call
            step.finishing_s = done.finishing - start.finishing
            every_snap = [s.cpu for s in step.samples] + [window_end, done]
            step.rss_max_kib = max(s.rss_kib for s in every_snap)
            step.pool_rss_max_kib = max(s.children_rss_kib for s in every_snap)
            step.db_calls, step.db_mp3 = count_stored(server.data_dir)
            step.capture_us = step.capture_s / max(1, step.sent) * 1e6
        except (TimeoutError, RuntimeError, OSError, KeyError, sqlite3.Error) as exc:
            step.error = f"{type(exc).__name__}: {exc}"
            print(f"  load {load:g}: {step.error}\n  server log:\n{server.log_tail()}")
        finally:
            gen.close()
    return step


def crecv_step(
    step: Step, seconds: float, hold_mean: float, seed: int, rate: float, keep: bool
) -> None:
    """The same generator load into the C receiver on the server's core."""
    low, high = rr.rtp_range()
    spool = Path(tempfile.mkdtemp(prefix="callvault-crecv-"))
    port = rr.free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen(
        [
            *("taskset", "-c", rr.SERVER_CPU, str(CRECV), "--sip-port", str(port)),
            *("--rtp-min", str(low), "--rtp-max", str(high), "--spool", str(spool)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=rr.raise_nofile,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    gen: rr.LoadGen | None = None
    try:
        first = lines.get(timeout=10)
        if not first or not first.startswith("READY"):
            raise RuntimeError(f"crecv did not start: {first}")
        gen = rr.LoadGen(steady_args(port, step.load, hold_mean, seconds, seed, rate))
        gen.wait_for("PHASE established", step.load / rate + 60)
        cpu0 = rr.proc_cpu_s(proc.pid)
        gen.go()
        done = gen.wait_for("PHASE window_done", seconds + 120)
        cpu1 = rr.proc_cpu_s(proc.pid)
        sent_window = int(rr.keyvalues(done).get("sent", 0))
        result = rr.keyvalues(gen.wait_for("RESULT", step.load * 3 / rate + 60))
        time.sleep(1.0)  # let it drain its sockets
        proc.send_signal(signal.SIGTERM)
        out: dict[str, float] = {}
        end = time.monotonic() + 30
        while time.monotonic() < end:
            line = lines.get(timeout=max(0.1, end - time.monotonic()))
            if line is None:
                break
            if line.startswith("RESULT"):
                out = rr.keyvalues(line)
        step.crecv_pkts = int(out.get("packets", 0))
        step.crecv_loss = int(result.get("sent", 0)) - step.crecv_pkts
        step.crecv_us = (cpu1 - cpu0) / max(1, sent_window) * 1e6
    except (TimeoutError, RuntimeError, OSError, queue.Empty) as exc:
        step.error = step.error or f"crecv: {type(exc).__name__}: {exc}"
        print(f"  crecv at load {step.load:g}: {exc}")
    finally:
        if gen is not None:
            gen.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if not keep:
            shutil.rmtree(spool, ignore_errors=True)


# -- tables -------------------------------------------------------------------------------------
def backlog_series(step: Step, points: int = 12) -> str:
    if not step.samples:
        return "-"
    stride = max(1, len(step.samples) // points)
    picked = step.samples[::stride]
    if picked[-1] is not step.samples[-1]:
        picked.append(step.samples[-1])
    return " ".join(f"{s.t:.0f}s:{s.pending:.0f}" for s in picked)


def print_tables(steps: list[Step], hold_mean: float, overload: Step | None) -> None:
    rows = [*steps, *([overload] if overload else [])]
    print(
        f"\nSteady state, server (capture + finishing) on CPU {rr.SERVER_CPU}, generator on "
        f"CPU {rr.LOADGEN_CPU}; Poisson arrivals, exponential holds (mean {hold_mean:g} s), "
        "two G.711 streams per call"
    )
    print(
        "| load (calls up) | window | calls answered / failed | pkts sent | loss | capture lag "
        "max | finish backlog: max, slope/min, grows | stored: calls / MP3 | drained after "
        "window | clean |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for s in rows:
        slope, _ = s.backlog_fit()
        peak = max((x.pending for x in s.samples), default=0)
        lag = max((x.capture_lag_ms for x in s.samples), default=0)
        failed = s.gen.get("setup_failed", 0) + s.gen.get("blocked", 0)
        label = f"{s.load:g}" + (" (overload)" if s is overload else "")
        print(
            f"| {label} | {s.seconds / 60:g} min | {s.answered} / {failed:.0f} | {s.sent} | "
            f"{s.loss} | {lag:.0f} ms | {peak:.0f}, {slope:+.2f}, "
            f"{'yes' if s.backlog_grows else 'no'} | {s.db_calls} / {s.db_mp3} | "
            f"{'yes' if s.drained else 'NO'} in {s.drain_s:.0f} s | "
            f"{'yes' if s.clean() else 'NO'} |"
        )
    print(
        "\nCPU per call-second (capture: the server's event loop over the window; finishing: "
        "the rest of the server and its pool, window start until drained) and memory"
    )
    print(
        "| load | call-s | capture ms/call-s | finishing ms/call-s | calls per core at this "
        "cost | core busy: capture / finishing | RSS server idle -> max (KiB/call) | RSS pool "
        "max | capture us/pkt: callvault / C receiver = ratio | C receiver loss |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in rows:
        call_s = max(1e-9, s.call_s)
        cap = s.capture_s / call_s * 1e3
        fin = s.finishing_s / call_s * 1e3
        per_core = 1000 / (cap + fin) if cap + fin > 0 else 0
        wall = max(1e-9, s.window_wall_s)
        per_call = (s.rss_max_kib - s.rss_idle_kib) / max(1.0, s.load)
        ratio = f"{s.capture_us / s.crecv_us:.2f}" if s.crecv_us else "-"
        crecv = f"{s.crecv_us:.2f}" if s.crecv_us else "-"
        print(
            f"| {s.load:g} | {s.call_s:.0f} | {cap:.2f} | {fin:.2f} | {per_core:.0f} | "
            f"{100 * s.capture_s / wall:.0f}% / {100 * s.finishing_s / wall:.0f}% | "
            f"{s.rss_idle_kib / 1024:.0f} -> {s.rss_max_kib / 1024:.0f} MiB ({per_call:.0f}) | "
            f"{s.pool_rss_max_kib / 1024:.0f} MiB | {s.capture_us:.2f} / {crecv} = {ratio} | "
            f"{s.crecv_loss if s.crecv_us else '-'} |"
        )
    print("\nFinish backlog over the window (seconds: calls pending)")
    for s in rows:
        print(f"  {s.load:g}: {backlog_series(s)}")
    print("\nGenerator self-check (CPU 1)")
    for s in rows:
        g = s.gen
        print(
            f"  {s.load:g}: late ticks {g.get('late_ticks', 0):.0f}/{g.get('ticks', 0):.0f}, "
            f"max late {g.get('max_late_ms', 0):.1f} ms, avg burst "
            f"{g.get('avg_burst_ms', 0):.2f} ms, gen CPU {g.get('gen_cpu_pct', 0):.0f}%, "
            f"set-up p50/p99 {g.get('setup_p50_ms', 0):.1f}/{g.get('setup_p99_ms', 0):.1f} ms, "
            f"retransmissions {g.get('retrans', 0):.0f}, host RcvbufErrors {s.rcvbuf_errors}; "
            f"niceness: {s.nice}"
        )
        if s.error:
            print(f"  {s.load:g}: {s.error}")


def overload_verdict(s: Step) -> str:
    peak = max((x.pending for x in s.samples), default=0)
    return (
        f"overload {s.load:g} calls: capture "
        f"{'kept priority (zero loss)' if s.loss == 0 else f'LOST {s.loss} packets'}; "
        f"finish backlog peaked at {peak:.0f} (growing: {'yes' if s.backlog_grows else 'no'}) "
        f"and {'drained' if s.drained else 'did NOT drain'} {s.drain_s:.0f} s after new calls "
        f"stopped; every call stored: {'yes' if s.all_stored else 'NO'} "
        f"({s.db_calls} calls, {s.db_mp3} MP3 of {s.answered} answered)"
    )


# -- main ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loads", default="300,450,600", help="calls up on average, in order")
    p.add_argument("--minutes", type=float, default=10.0, help="window per load step")
    p.add_argument("--hold-mean", type=float, default=180.0, help="mean call hold, seconds")
    p.add_argument(
        "--overload",
        type=float,
        default=0.0,
        help="last, run this many times the highest clean load (e.g. 1.5)",
    )
    p.add_argument("--overload-minutes", type=float, default=0.0, help="default: --minutes")
    p.add_argument(
        "--crecv-minutes",
        type=float,
        default=2.0,
        help="window of the C receiver's run per step (at most --minutes; 0: none)",
    )
    p.add_argument("--rate", type=float, default=200.0, help="set-ups (and final BYEs) per s")
    p.add_argument("--seed", type=int, default=12, help="arrivals and holds (same per step)")
    p.add_argument("--sample-s", type=float, default=0.0, help="default: window/30, 1..5 s")
    p.add_argument("--finish-timeout", type=float, default=1800.0)
    p.add_argument(
        "--bye-gap-ms",
        type=int,
        default=0,
        help="stop each call's media this long before its BYE (0: with the last packet)",
    )
    p.add_argument("--keep-going", action="store_true", help="run every load, clean or not")
    p.add_argument("--keep", action="store_true", help="keep the data directories")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    global BYE_GAP_MS
    args = parse_args(argv)
    BYE_GAP_MS = args.bye_gap_ms
    if (os.cpu_count() or 1) < 2:
        print("note: fewer than 2 CPUs; server and generator share a core")
    rr.build_loadgen()
    build_crecv()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {int(rr.LOADGEN_CPU)})  # keep the driver off the server's core
    args.truesize = rr.probe_truesize()
    nofile = rr.effective_nofile()
    seconds = args.minutes * 60
    crecv_s = min(args.crecv_minutes, args.minutes) * 60
    print(
        f"server CPU {rr.SERVER_CPU}, loadgen CPU {rr.LOADGEN_CPU}; hold mean "
        f"{args.hold_mean:g} s, window {args.minutes:g} min, seed {args.seed}; "
        f"net.core.rmem_max={rr.sysctl('net.core.rmem_max')}; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    steps: list[Step] = []
    for load in (float(x) for x in args.loads.split(",") if x.strip()):
        if load * 3 * rr.FDS_PER_CALL + 500 > nofile:
            print(f"-- load {load:g} skipped: RLIMIT_NOFILE {nofile} is too low")
            break
        print(f"-- load {load:g} x {args.minutes:g} min ...", flush=True)
        step = callvault_step(load, seconds, args.hold_mean, args.seed, args.rate, args)
        if crecv_s > 0 and not step.error:
            crecv_step(step, crecv_s, args.hold_mean, args.seed, args.rate, args.keep)
        steps.append(step)
        slope, _ = step.backlog_fit()
        print(
            f"   answered {step.answered} sent {step.sent} loss {step.loss} backlog slope "
            f"{slope:+.2f}/min stored {step.db_calls}/{step.db_mp3} drained "
            f"{step.drained} in {step.drain_s:.0f} s clean {step.clean()}",
            flush=True,
        )
        if not step.clean() and not args.keep_going:
            break
    clean = [s for s in steps if s.clean()]
    best = max(clean, key=lambda s: s.load) if clean else None
    over: Step | None = None
    if args.overload > 0 and best is not None:
        load = round(best.load * args.overload)
        minutes = args.overload_minutes or args.minutes
        print(f"-- overload: {load} calls ({args.overload:g} x {best.load:g}) ...", flush=True)
        over = callvault_step(load, minutes * 60, args.hold_mean, args.seed, args.rate, args)
    elif args.overload > 0:
        print("-- overload skipped: no clean load to scale")
    print_tables(steps, args.hold_mean, over)
    if over is not None:
        print("\n" + overload_verdict(over))
    if best is not None:
        cap = best.capture_s / max(1e-9, best.call_s) * 1e3
        fin = best.finishing_s / max(1e-9, best.call_s) * 1e3
        print(
            f"\nhighest steady load with zero loss, a backlog that does not grow, every call "
            f"stored: {best.load:g} calls ({args.minutes:g} min, holds {args.hold_mean:g} s; "
            f"capture {cap:.2f} + finishing {fin:.2f} ms per call-second)"
        )
    else:
        print(
            "\nhighest steady load with zero loss, a backlog that does not grow, every call "
            "stored: none of the loads tried"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
