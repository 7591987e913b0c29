"""Steady-state capacity on one core: capture and finishing together (issue 12).

Run: ``python bench/steady.py --find-limit [--start-load 800 --probe-minutes 1.5
--minutes 10 --hold-mean 180 --overload 1.5 --overload-minutes 5 --crecv-minutes 1
--crecv-trials 3]``, or given loads: ``--loads 300,450,600``; a smoke run:
``--find-limit --start-load 60 --max-probes 2 --probe-minutes 0.5 --minutes 1
--hold-mean 20 --overload 1.5 --overload-minutes 1 --crecv-minutes 0.25
--crecv-trials 2 --series-s 10``.

Per run it starts a fresh ``callvault serve`` pinned to CPU 0, finisher pool
included (its workers inherit the affinity, and run niced:
``recording/pipeline.py``), and ``bench/bin/loadgen steady`` on CPU 1: E calls set
up first (the stationary start), then for the window new calls arrive as a Poisson
process of rate E / hold-mean, each holding an exponential time (mean
``--hold-mean``, 180 s by default) with two G.711 streams. When the window ends,
new calls stop, the calls still up are BYEd, and the bench waits until every call
is finished. Before the window (unless ``--no-calibrate``), on the same fresh
server, a calibration: a few short calls to start the finisher pool's worker, then
a burst of ``--calibration-calls`` (200) calls of 1 s mean hold (20 arriving per
second, media as in the window), waited for until every one is stored; its
finishing CPU (the same split as below) is the second equation for the per-call
cost (below). Its calls are not counted in the step's. It reports:

- loss: RTP packets the generator sent minus what the server counted
  (``callvault_rtp_packets_received_total``), after the server drained;
- the finish backlog (``callvault_spool_pending``: ended calls not yet stored)
  sampled over the window, its least-squares slope, and whether it grows;
- every call stored: calls rows for every answered call, each with a recording
  row whose MP3 blob is on disk at its recorded size;
- CPU per call-second, split: capture is the server's event-loop thread
  (``/proc/<pid>/task/<pid>/stat``: SIP, RTP receive, spool writes), finishing
  is the rest of the server process (the finisher's database thread) plus its
  child processes (the pool), from the window's start until every call is
  stored; call-seconds are packets sent / 100;
- finishing split into ``a`` ms per call (process hand-off, database rows, files,
  encoder set-up) and ``b`` ms per call-second of audio: the run and its
  calibration give F = a N + b S twice (F finishing CPU, N calls finished, S
  call-seconds), once with S / N about 1 s and once with S / N tens of seconds;
  a and b solve the two (not told apart, and not used, when the run's S / N is
  under twice the calibration's);
- the core the load needs in the steady state: (capture + b) x E + a x E /
  hold-mean (E calls up, E / hold-mean of them ending per second), i.e. what one
  core must give every second, next to the run's own (capture + finishing per
  call-second) x E. The latter overstates a short window's need: every call up
  at its end is cut and finished too (counted, to finish the window's audio), so
  a 1.5-minute window of 3-minute holds finishes a call per 60 call-seconds where
  the steady state finishes one per 180. A window that starts with E fresh calls
  cannot show the need by its backlog alone either: a call ending t seconds into
  the window brings at most t seconds of audio to finish, so the finishing work
  grows towards its steady rate as 1 - exp(-t / hold-mean) (63 % after one mean
  hold, 96 % after 10 minutes of 3-minute holds);
- memory: RSS of the server and of its pool.

A load holds (is "clean") with zero loss, every call set up and stored, a
backlog that does not grow, and a steady-state need of at most ``--max-busy``
(1.0) core.

``--find-limit`` finds the highest load that holds: short probes
(``--probe-minutes``) from ``--start-load``, each next load where the last
probe's steady-state need says the core is full (never more than twice the
last clean load), bisecting once a probe fails, until the highest clean load is
within ``--resolution`` (5 %) of the limit or ``--max-probes`` ran; then that
load runs ``--minutes`` (10) to confirm it. ``--loads`` runs the loads given
instead, each for ``--minutes``.

``--overload 1.5`` then runs 1.5 x the load found (or the highest clean load
given) for ``--overload-minutes``, straight after the confirming window in the
same run (with ``--loads``: after ``--overload-warmup-minutes`` at the load, in a
run of its own), so that the finishing work is near its steady rate when the
overload begins; then new calls stop, the calls up are BYEd and the backlog
drains (with ``--drain-minutes`` first that long at ``--drain-load`` x the load:
0, no new calls while the calls up hold to their end; 1, back at the sustained
load). It prints a time series every ``--series-s`` (30 s): calls up, calls
waiting to be finished, CPU of capture and of finishing and their sum, capture
lag, datagrams the server's RTP sockets dropped; the steady-state need of the
sustained and of the overload load (from the sustained phase's costs); and
whether capture kept priority (zero loss) while the backlog grew, and the
backlog drained with every call stored. Growth is judged on the overload's
second half: its extra calls start at once and end with little audio at first,
so its extra finishing work ramps up over the phase.

Then the same generator load (same seed) goes to ``bench/bin/crecv``, the C
receiver (epoll + recvmmsg, ``bench/crecv.c``) on CPU 0 and the same ports,
and the bench prints callvault's capture CPU per packet divided by the C
receiver's: issue 12's "≤ 1.5" figure. ``--crecv-trials 1`` (the default)
divides the step's own capture figure by one C receiver run of
``--crecv-minutes``; ``--crecv-trials K`` runs K alternating pairs instead, each
a fresh ``callvault serve`` (no calibration) for ``--crecv-minutes`` at the same
load and seed (its event-loop CPU per packet sent in the window) then the C
receiver for the same window, and prints each pair's figures and ratio and the
median ratio of the pairs where neither lost packets: the figure to quote (a
single pair moves by a third between runs).

The last line printed is the figure: the highest steady load with zero loss, a
backlog that does not grow, and every call stored; after it, ``FAIL:`` lines
and exit status 1 if any answered call was not stored, or the overload lost
packets or did not drain. All traffic is on 127.0.0.1; every wait has a
deadline. Nothing here asserts on timings.
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
    fds: int = 0  # the server's open file descriptors

    @property
    def finishing(self) -> float:
        return self.process - self.loop + self.children


def snapshot(pid: int) -> CpuSnapshot:
    snap = CpuSnapshot(time.monotonic())
    with contextlib.suppress(OSError, IndexError, ValueError):
        snap.loop = thread_cpu_s(pid, pid)
        snap.process = rr.proc_cpu_s(pid)
        snap.rss_kib = rr.proc_rss_kib(pid)
        snap.fds = len(os.listdir(f"/proc/{pid}/fd"))
    for child in descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            snap.children += rr.proc_cpu_s(child)
            snap.children_rss_kib += rr.proc_rss_kib(child)
    return snap


# -- the generator ------------------------------------------------------------------------
BYE_GAP_MS = 0  # --bye-gap-ms: a call's media stops this long before its BYE


@dataclass
class Phase:
    """One load of a run: ``load`` calls up on average for ``seconds``."""

    name: str  # sustained | overload | drain
    load: float
    seconds: float
    t: float = 0.0  # seconds into the run when it began (the driver's clock)
    sent0: int = 0  # packets the generator had sent before it
    cpu0: CpuSnapshot | None = None


def steady_args(
    sip_port: int, phases: list[Phase], hold_mean: float, seed: int, rate: float
) -> list[str]:
    first, *more = phases
    then = [x for p in more for x in ("--then", f"{p.load:g}:{p.seconds:g}")]
    return [
        "steady",
        *("--server", f"127.0.0.1:{sip_port}"),
        *("--load", f"{first.load:g}", "--duration", f"{first.seconds:g}", *then),
        *("--hold-mean", f"{hold_mean:g}", "--seed", str(seed), "--rate", f"{rate:g}"),
        *("--bye-gap-ms", str(BYE_GAP_MS), "--sync", "--sync-timeout", "900"),
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


# -- one run ----------------------------------------------------------------------------------
@dataclass
class Calibration:
    """A burst of short calls on the step's server before its window: finishing CPU
    (the same split as the step's) of ``calls`` calls with ``call_s`` seconds of audio."""

    calls: int = 0
    call_s: float = 0.0
    finishing_s: float = 0.0
    seconds: float = 0.0  # wall time from the burst's start until every call was stored


@dataclass
class CaptureTrial:
    """One pair: a fresh ``callvault serve`` then the C receiver, same load, seed, window."""

    callvault_us: float  # capture (event-loop) CPU per packet sent in the window
    crecv_us: float
    callvault_loss: int
    crecv_loss: int
    error: str = ""

    @property
    def counted(self) -> bool:
        """Neither lost packets: a starved receiver reads more per wake-up, looks cheaper."""
        return not self.error and self.crecv_us > 0 and not self.callvault_loss + self.crecv_loss

    @property
    def ratio(self) -> float:
        return self.callvault_us / self.crecv_us if self.crecv_us > 0 else 0.0


def median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return 0.0
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


@dataclass
class Sample:
    t: float  # seconds into the run
    phase: int  # index into Step.phases; len(phases): new calls stopped, draining
    up: float  # calls up (the generator's last STAT)
    ended: float  # calls BYEd so far
    pending: float  # calls waiting to be finished
    stored: float
    capture_lag_ms: float
    drops: int  # datagrams the server's RTP sockets dropped (socket buffer full) so far
    cpu: CpuSnapshot


@dataclass
class Step:
    phases: list[Phase]
    role: str = "step"  # step | probe | confirm | overload
    prefilled: int = 0
    gen: dict[str, float] = field(default_factory=dict)
    sent: int = 0
    received: int = 0
    rcvbuf_errors: int = 0
    samples: list[Sample] = field(default_factory=list)
    drained: bool = False
    stalled: bool = False  # gave up waiting: nothing was finished for --stall-s
    drain_s: float = 0.0
    db_calls: int = 0
    db_mp3: int = 0
    without_mp3: list[str] = field(default_factory=list)  # a few calls stored with no MP3
    capture_s: float = 0.0  # event loop over the first phase
    sent_first: int = 0  # packets sent in the first phase
    first_wall_s: float = 0.0
    finishing_s: float = 0.0  # from window start until drained, every phase
    rss_idle_kib: int = 0
    rss_max_kib: int = 0
    pool_rss_max_kib: int = 0
    fds_max: int = 0  # the server's open descriptors, most at a sample
    crecv_us: float = 0.0
    crecv_loss: int = 0
    crecv_pkts: int = 0
    nice: str = "?"  # the server's and its pool workers' niceness
    error: str = ""
    max_busy: float = 1.0
    hold_mean: float = 180.0
    calibration: Calibration | None = None  # None: --no-calibrate (or a capture trial)
    trials: list[CaptureTrial] = field(default_factory=list)  # --crecv-trials K > 1

    @property
    def load(self) -> float:
        return self.phases[0].load

    @property
    def seconds(self) -> float:
        return self.phases[0].seconds

    @property
    def label(self) -> str:
        more = "".join(f", then {p.load:g} x {p.seconds / 60:g} min" for p in self.phases[1:])
        return f"{self.load:g}" + (f" ({self.role}{more})" if self.role != "step" else "")

    @property
    def answered(self) -> int:
        return int(self.gen.get("answered", 0))

    @property
    def loss(self) -> int:
        return self.sent - self.received

    @property
    def call_s(self) -> float:
        """Call-seconds of the first phase (the load judged)."""
        return self.sent_first / PACKETS_PER_CALL_S

    @property
    def capture_ms(self) -> float:
        return self.capture_s / max(1e-9, self.call_s) * 1e3

    @property
    def finishing_ms(self) -> float:
        """Finishing CPU per call-second over the whole run (every call finished)."""
        return self.finishing_s / max(1e-9, self.sent / PACKETS_PER_CALL_S) * 1e3

    @property
    def capture_us(self) -> float:
        """Capture CPU per packet sent in the first phase."""
        return self.capture_s / max(1, self.sent_first) * 1e6

    @property
    def calls_up(self) -> float:
        """Calls up on average in the first phase (call-seconds / seconds)."""
        return self.call_s / self.first_wall_s if self.first_wall_s else 0.0

    @property
    def busy_run(self) -> float:
        """Cores the first phase's load needs at this run's finishing cost per call-second
        (every call of the run, the ones cut at the end included: pessimistic for a short
        window, which finishes more calls per call-second than the steady state)."""
        if not self.first_wall_s or not self.sent:
            return 0.0
        return (self.capture_ms + self.finishing_ms) * self.calls_up / 1e3

    @property
    def finishing_split(self) -> tuple[float, float] | None:
        """(a: finishing ms per call, b: finishing ms per call-second), or None.

        Two runs on the same server give two equations F = a N + b S: the calibration's
        short calls (S / N about 1 s) and the step's (S / N tens of seconds). None without
        a calibration, or when the step's calls are too short to tell a from b (its S / N
        under twice the calibration's), or when noise gives a negative a or b (the run's own
        cost per call-second is used then).
        """
        c = self.calibration
        n, s, f = self.calls_expected, self.sent / PACKETS_PER_CALL_S, self.finishing_s
        if c is None or not c.calls or c.call_s <= 0 or not n or s <= 0:
            return None
        if (s / n) < 2 * (c.call_s / c.calls):
            return None
        a = (c.finishing_s - f * c.call_s / s) / (c.calls - n * c.call_s / s)
        b = (f - a * n) / s
        if a < 0 or b <= 0:  # noise in either window: not a split to judge by
            return None
        return a * 1e3, b * 1e3

    def busy_at(self, load: float) -> float:
        """Cores ``load`` calls need in the steady state at this run's costs: capture and
        b per call-second, and a per call at load / hold-mean calls ending per second."""
        split = self.finishing_split
        if split is None:
            return load * (self.capture_ms + self.finishing_ms) / 1e3
        a, b = split
        return load * (self.capture_ms + b) / 1e3 + a * load / self.hold_mean / 1e3

    @property
    def busy(self) -> float:
        """Cores the first phase's load needs in the steady state: capture + finishing
        (from the split a, b when calibrated, else the run's cost per call-second)."""
        if not self.first_wall_s or not self.sent:
            return 0.0
        if self.finishing_split is None:
            return self.busy_run
        return self.busy_at(self.calls_up)

    def in_phase(self, k: int) -> list[Sample]:
        return [s for s in self.samples if s.phase == k]

    def in_half(self, k: int) -> list[Sample]:
        """The samples of phase k's second half (a raised load's finishing work ramps up
        over its first: its new calls end with little audio at first)."""
        points = self.in_phase(k)
        if not points:
            return []
        middle = (points[0].t + points[-1].t) / 2
        return [s for s in points if s.t >= middle]

    def backlog_fit(self, k: int = 0, second_half: bool = False) -> tuple[float, float]:
        """(slope in calls per minute, rise over the phase or its second half) of the
        finish backlog."""
        samples = self.in_half(k) if second_half else self.in_phase(k)
        points = [(s.t, s.pending) for s in samples]
        if len(points) < 3:
            return 0.0, 0.0
        n = len(points)
        mt = sum(t for t, _ in points) / n
        mp = sum(p for _, p in points) / n
        var = sum((t - mt) ** 2 for t, _ in points)
        slope = sum((t - mt) * (p - mp) for t, p in points) / var if var else 0.0
        return slope * 60, slope * (points[-1][0] - points[0][0])

    def backlog_grows(self, k: int = 0, second_half: bool = False) -> bool:
        # a finisher that keeps up leaves a few calls pending whatever the window;
        # one that does not leaves a share of the ended calls behind, growing with time
        _slope, rise = self.backlog_fit(k, second_half)
        points = self.in_half(k) if second_half else self.in_phase(k)
        ended = points[-1].ended - points[0].ended if points else 0
        return rise > max(5.0, 0.02 * ended)

    @property
    def calls_expected(self) -> int:
        """Calls the server set up: answered here, and answered after the INVITE timed out
        here (the generator BYEs those at once: a call row, no audio)."""
        return self.answered + int(self.gen.get("late_ended", 0))

    @property
    def with_media(self) -> int:
        """Answered calls that got packets: one BYEd before its first has a call, no audio."""
        return self.answered - int(self.gen.get("no_media", 0))

    @property
    def all_stored(self) -> bool:
        return (
            self.drained and self.db_calls == self.calls_expected and self.db_mp3 == self.with_media
        )

    @property
    def calls_lost(self) -> int:
        """Answered calls not stored, or stored without their MP3, once the run is over."""
        if not self.gen:
            return 0  # the run failed early (its error says why)
        return max(0, self.calls_expected - self.db_calls) + max(0, self.with_media - self.db_mp3)

    def clean(self) -> bool:
        g = self.gen
        return (
            not self.error
            and self.prefilled >= round(self.load)
            and g.get("setup_failed", 1) == 0
            and g.get("blocked", 1) == 0
            and g.get("bye_failed", 1) == 0
            and self.loss == 0
            and not self.backlog_grows(0)
            and self.all_stored
            and 0 < self.busy <= self.max_busy
        )


RUN_PREFIX = len("cv01234567-")  # loadgen's Call-IDs: cv<run id, 8 hex>-<slot>-<gen>@...


def generator_runs(data_dir: Path) -> set[str]:
    """The Call-ID prefixes of the generator runs stored so far (one per loadgen run)."""
    with contextlib.closing(sqlite3.connect(data_dir / "callvault.db", timeout=30)) as db:
        rows = db.execute(
            "SELECT DISTINCT substr(sip_call_id, 1, ?) FROM calls WHERE sip_call_id LIKE 'cv%'",
            (RUN_PREFIX,),
        ).fetchall()
    return {str(row[0]) for row in rows}


def count_stored(data_dir: Path, skip: set[str] | None = None) -> tuple[int, int, list[str]]:
    """(calls rows of the generator's calls, recordings whose MP3 is on disk at its size,
    up to 5 calls without one: how long each lasted and why not); the calls of the
    generator runs in ``skip`` (the calibration's) are not counted."""
    skip = skip or set()
    with contextlib.closing(sqlite3.connect(data_dir / "callvault.db", timeout=30)) as db:
        ids = db.execute("SELECT sip_call_id FROM calls WHERE sip_call_id LIKE 'cv%'").fetchall()
        rows = db.execute(
            "SELECT c.sip_call_id, c.duration_ms, c.end_reason, r.blob_key, r.size_bytes"
            " FROM calls c LEFT JOIN recordings r ON r.call_id = c.id"
            " WHERE c.sip_call_id LIKE 'cv%'"
        ).fetchall()
    calls = sum(1 for (call_id,) in ids if call_id[:RUN_PREFIX] not in skip)
    blobs = data_dir / "blobs"
    present = 0
    missing: list[str] = []
    for call_id, duration_ms, reason, key, size in rows:
        if call_id[:RUN_PREFIX] in skip:
            continue
        on_disk = -1
        with contextlib.suppress(OSError):
            on_disk = (blobs / key).stat().st_size if key else -1
        if key and size > 0 and on_disk == size:
            present += 1
        elif len(missing) < 5:
            why = "no recording row" if not key else f"MP3 {on_disk} bytes on disk of {size}"
            missing.append(f"{call_id} ({duration_ms} ms, ended: {reason}): {why}")
    return int(calls), present, missing


RECEIVED = "callvault_rtp_packets_received_total"
STORED = "callvault_recordings_stored_total"  # calls stored, with audio or without


class Sampler:
    """Samples the server every ``every`` seconds: backlog, CPU, capture lag, drops."""

    def __init__(self, server: rr.Server, step: Step, every: float, truesize: int) -> None:
        self.server, self.step, self.every, self.truesize = server, step, every, truesize
        self.low, self.high = rr.rtp_range()
        self.udp0 = rr.udp_counters()
        self.start = snapshot(server.pid)
        self.next_at = self.start.at
        self.phase, self.up, self.ended = 0, float(step.prefilled), 0.0
        self.drops: dict[int, int] = {}  # socket inode -> its drops, every socket seen
        self.stored0 = 0.0  # calls stored before the step's (the calibration's)

    def due(self) -> float:
        return max(0.0, self.next_at - time.monotonic())

    def sample(self) -> dict[str, float]:
        m = self.server.metrics()
        queued = rr.rtp_socket_queues(self.low, self.high)[1]
        pps = self.up * PACKETS_PER_CALL_S
        self.drops.update(rtp_socket_drops(self.low, self.high))
        self.step.samples.append(
            Sample(
                time.monotonic() - self.start.at,
                self.phase,
                self.up,
                self.ended,
                m.get("callvault_spool_pending", 0),
                m.get(STORED, 0) - self.stored0,
                queued / self.truesize / pps * 1e3 if pps else 0.0,
                sum(self.drops.values()),
                snapshot(self.server.pid),
            )
        )
        self.next_at += self.every
        while self.next_at < time.monotonic():
            self.next_at += self.every
        return m


def rtp_socket_drops(low: int, high: int) -> dict[int, int]:
    """Datagrams dropped per open UDP socket bound to ports low..high, by inode."""
    out: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            f = line.split()
            with contextlib.suppress(IndexError, ValueError):
                if low <= int(f[1].rsplit(":", 1)[1], 16) <= high:
                    out[int(f[9])] = int(f[-1])
    return out


# the calibration: short calls (mean hold CALIBRATION_HOLD_S) arriving at
# CALIBRATION_RATE per second, after a few to start the pool's worker and its imports
CALIBRATION_HOLD_S = 1.0
CALIBRATION_RATE = 20.0
WARMUP_CALLS = 6


def short_calls(server: rr.Server, calls: int, seed: int, rate: float) -> tuple[int, float]:
    """About ``calls`` short calls with media into ``server``, waited for until every one
    is stored: (calls the server set up, call-seconds of audio sent)."""
    load = min(CALIBRATION_RATE * CALIBRATION_HOLD_S, calls / 2)  # calls up: arrivals x hold
    seconds = max(1.0, (calls - load) / (load / CALIBRATION_HOLD_S))
    stored0 = server.metrics().get(STORED, 0)
    phases = [Phase("calibration", load, seconds)]
    gen = rr.LoadGen(steady_args(server.sip_port, phases, CALIBRATION_HOLD_S, seed, rate))
    try:
        gen.wait_for("PHASE established", load / rate + 60)
        gen.go()
        result = rr.keyvalues(gen.wait_for("RESULT", seconds + load * 3 / rate + 120))
    finally:
        gen.close()
    expected = int(result.get("answered", 0) + result.get("late_ended", 0))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        m = server.metrics()
        if m.get("callvault_spool_pending", 1) == 0 and m.get(STORED, 0) - stored0 >= expected:
            return expected, result.get("sent", 0) / PACKETS_PER_CALL_S
        time.sleep(0.2)
    raise TimeoutError(f"the calibration's {expected} calls were not all stored in 120 s")


def calibrate(server: rr.Server, args: argparse.Namespace) -> Calibration:
    """The finishing CPU of ``--calibration-calls`` short calls on the fresh server."""
    short_calls(server, WARMUP_CALLS, args.seed + 1, args.rate)  # the pool's worker starts
    before = snapshot(server.pid)
    calls, call_s = short_calls(server, args.calibration_calls, args.seed + 2, args.rate)
    after = snapshot(server.pid)
    return Calibration(calls, call_s, after.finishing - before.finishing, after.at - before.at)


def callvault_step(
    phases: list[Phase], role: str, args: argparse.Namespace, calibrated: bool = True
) -> Step:
    """One run of the phases on a fresh server, judged on the first; drained to the end.
    With ``calibrated`` (and not --no-calibrate) a burst of short calls comes first."""
    step = Step(phases, role, max_busy=args.max_busy, hold_mean=args.hold_mean)
    total = sum(p.seconds for p in phases)
    peak = max(p.load for p in phases)
    with rr.running_server(keep=args.keep) as server:
        time.sleep(1.0)  # forkserver, imports: settle before the idle RSS
        step.rss_idle_kib = rr.proc_rss_kib(server.pid)
        skip: set[str] = set()
        if calibrated and args.calibrate:
            try:
                step.calibration = calibrate(server, args)
                skip = generator_runs(server.data_dir)
            except (TimeoutError, RuntimeError, OSError, sqlite3.Error) as exc:
                step.error = f"calibration: {type(exc).__name__}: {exc}"
                print(f"  load {step.load:g}: {step.error}\n  server log:\n{server.log_tail()}")
                return step
        gen = rr.LoadGen(steady_args(server.sip_port, phases, args.hold_mean, args.seed, args.rate))
        try:
            line = gen.wait_for("PHASE established", step.load / args.rate + 60)
            step.prefilled = int(rr.keyvalues(line).get("calls", 0))
            m0 = server.metrics()
            every = args.sample_s or max(1.0, min(5.0, total / 30))
            sampler = Sampler(server, step, every, args.truesize)
            sampler.stored0 = m0.get(STORED, 0)
            start = sampler.start
            phases[0].cpu0 = start
            gen.go()
            window_end: CpuSnapshot | None = None
            ended_at = 0.0
            deadline = start.at + total + 120
            while window_end is None:  # the window, phase after phase
                if time.monotonic() > deadline:
                    raise TimeoutError("the window did not end")
                got = next_line(gen, sampler.due())
                words = rr.keyvalues(got) if got else {}
                if got is not None and got.startswith("STAT"):
                    sampler.up = words.get("up", sampler.up)
                    sampler.ended = words.get("ended", sampler.ended)
                elif got is not None and got.startswith("PHASE load"):
                    k = int(words["k"])
                    phases[k].t = time.monotonic() - start.at
                    phases[k].sent0 = int(words["sent"])
                    phases[k].cpu0 = snapshot(server.pid)
                    sampler.phase = k
                elif got is not None and got.startswith("PHASE window_done"):
                    window_end = snapshot(server.pid)
                    ended_at = time.monotonic()
                    sampler.phase = len(phases)
                    step.sent_first = (
                        phases[1].sent0 if len(phases) > 1 else int(words.get("sent", 0))
                    )
                if time.monotonic() >= sampler.next_at:
                    sampler.sample()
            first_end = phases[1].cpu0 if len(phases) > 1 else window_end
            assert first_end is not None
            step.first_wall_s = first_end.at - start.at
            step.capture_s = first_end.loop - start.loop
            # new calls stopped, the calls up BYEd: sample on until every call is stored
            result: dict[str, float] | None = None
            last, stable_since = -1.0, time.monotonic()
            counted = False
            last_progress: tuple[float | None, float | None] = (None, None)
            progress_at = time.monotonic()
            finish_by = time.monotonic() + peak * 3 / args.rate + 60 + args.finish_timeout
            m2 = m0
            while time.monotonic() < finish_by:
                if result is None:
                    got = next_line(gen, min(0.25, sampler.due()))
                    if got is not None and got.startswith("STAT"):
                        sampler.up = rr.keyvalues(got).get("up", sampler.up)
                        sampler.ended = rr.keyvalues(got).get("ended", sampler.ended)
                    if got is not None and got.startswith("RESULT"):
                        result = rr.keyvalues(got)
                        step.gen = result
                        step.sent = int(result.get("sent", 0))
                        sampler.up = 0.0
                        sampler.ended = result.get("byes_ok", sampler.ended)
                else:
                    time.sleep(min(0.25, sampler.due()))
                if time.monotonic() >= sampler.next_at:
                    m2 = sampler.sample()
                elif result is not None:
                    m2 = server.metrics()
                else:
                    continue
                # the server drained its sockets: the counter stable for 1 s
                if m2.get(RECEIVED, 0) != last:
                    last, stable_since = m2.get(RECEIVED, 0), time.monotonic()
                elif result is not None and time.monotonic() - stable_since >= 1.0:
                    counted = True
                progress = (m2.get("callvault_spool_pending"), m2.get(STORED))
                if progress != last_progress:
                    last_progress, progress_at = progress, time.monotonic()
                if (
                    counted
                    and m2.get("callvault_spool_pending", 1) == 0
                    and m2.get(STORED, 0) - m0.get(STORED, 0) >= step.calls_expected
                ):
                    step.drained = True
                    break
                if result is not None and time.monotonic() - progress_at > args.stall_s:
                    step.stalled = True  # nothing finished for that long: give up waiting
                    break
            if result is None:
                raise TimeoutError("loadgen gave no RESULT")
            step.drain_s = time.monotonic() - ended_at
            sampler.sample()  # the last row of the series: drained (or not)
            step.received = int(m2.get(RECEIVED, 0) - m0.get(RECEIVED, 0))
            step.rcvbuf_errors = rr.udp_drops(sampler.udp0, rr.udp_counters())["RcvbufErrors"]
            done = snapshot(server.pid)
            step.nice = niceness(server.pid)  # pool workers start with the first ended call
            step.finishing_s = done.finishing - start.finishing
            every_snap = [s.cpu for s in step.samples] + [window_end, done]
            step.rss_max_kib = max(s.rss_kib for s in every_snap)
            step.pool_rss_max_kib = max(s.children_rss_kib for s in every_snap)
            step.fds_max = max(s.fds for s in every_snap)
            step.db_calls, step.db_mp3, step.without_mp3 = count_stored(server.data_dir, skip)
        except (TimeoutError, RuntimeError, OSError, KeyError, sqlite3.Error) as exc:
            step.error = f"{type(exc).__name__}: {exc}"
            print(f"  load {step.load:g}: {step.error}\n  server log:\n{server.log_tail()}")
        finally:
            gen.close()
    return step


def split_text(step: Step) -> str:
    """Like "a 4.1 ms/call, b 0.52 ms/call-s" (or why there is none)."""
    split = step.finishing_split
    if split is not None:
        return f"a {split[0]:.2f} ms/call, b {split[1]:.3f} ms/call-s"
    if step.calibration is None:
        return "not calibrated"
    return "a, b not told apart (the step's calls too short)"


def report(step: Step) -> None:
    slope, _ = step.backlog_fit(0)
    c = step.calibration
    calibration = (
        f" (calibration: {c.calls} calls, {c.call_s:.0f} call-s, finishing {c.finishing_s:.2f} "
        f"s CPU in {c.seconds:.0f} s)"
        if c is not None
        else ""
    )
    print(
        f"   answered {step.answered} sent {step.sent} loss {step.loss} backlog slope "
        f"{slope:+.2f}/min core needed {step.busy:.2f} (run's cost per call-second: "
        f"{step.busy_run:.2f}; {split_text(step)}{calibration}) stored "
        f"{step.db_calls}/{step.db_mp3} drained {step.drained} in {step.drain_s:.0f} s clean "
        f"{step.clean()}",
        flush=True,
    )


# -- the highest load that holds ------------------------------------------------------------
def next_probe(lo: Step | None, hi: Step | None, last: Step, args: argparse.Namespace) -> float:
    """The next load to probe, or 0 once the highest clean load is within the resolution.

    The guess is where the last probe's CPU per call-second says the core is full
    (``--max-busy``); it is used inside the bracket of the highest clean and the
    lowest failed load, else the bracket is halved (geometric mean).
    """
    res = args.resolution
    low_edge = lo.load * (1 + res) if lo else 1.0
    high_edge = hi.load * (1 - res) if hi else float("inf")
    if low_edge > high_edge:
        return 0.0
    guess = last.load * args.max_busy / last.busy if last.busy > 0 else 0.0
    if lo is not None and 0 < guess < low_edge:
        return 0.0  # the core is full within the resolution above the highest clean load
    if not low_edge <= guess <= high_edge:
        if lo is not None and hi is not None:
            guess = (lo.load * hi.load) ** 0.5
        elif lo is not None:
            guess = lo.load * 2
        else:
            assert hi is not None
            guess = hi.load * 0.7
    if lo is not None:
        guess = min(guess, lo.load * 2)
    guess = max(low_edge, min(high_edge, guess))
    return float(round(guess))


def find_limit(args: argparse.Namespace, nofile: int) -> list[Step]:
    """Short probes from --start-load up to the highest load that holds."""
    probes: list[Step] = []
    lo: Step | None = None
    hi: Step | None = None
    load = args.start_load
    while load > 0 and len(probes) < args.max_probes:
        if not fits_nofile(load, nofile):
            break
        print(f"-- probe {load:g} x {args.probe_minutes:g} min ...", flush=True)
        step = callvault_step([Phase("sustained", load, args.probe_minutes * 60)], "probe", args)
        probes.append(step)
        report(step)
        if step.error:
            break
        if step.clean():
            lo = step if lo is None or step.load > lo.load else lo
        else:
            hi = step if hi is None or step.load < hi.load else hi
        load = next_probe(lo, hi, step, args)
    return probes


def fits_nofile(load: float, nofile: int) -> bool:
    """The server holds FDS_PER_CALL descriptors per call up (a call's spool is closed
    at its hang-up), and calls up are Poisson around the load: its peak is well under
    load + 5 standard deviations; 500 for the rest (database, SIP, HTTP, the pool)."""
    if (load + 5 * load**0.5) * rr.FDS_PER_CALL + 500 > nofile:
        print(f"-- load {load:g} skipped: RLIMIT_NOFILE {nofile} is too low")
        return False
    return True


def overload_phases(load: float, args: argparse.Namespace) -> list[Phase]:
    """1.5 x the load, then the drain phase (no new calls unless --drain-load)."""
    phases = [
        Phase("overload", round(load * args.overload), (args.overload_minutes or 5) * 60),
    ]
    if args.drain_minutes > 0:
        phases.append(Phase("drain", round(load * args.drain_load), args.drain_minutes * 60))
    return phases


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
        phases = [Phase("sustained", step.load, seconds)]
        gen = rr.LoadGen(steady_args(port, phases, hold_mean, seed, rate))
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


def capture_trials(load: float, args: argparse.Namespace) -> list[CaptureTrial]:
    """``--crecv-trials`` pairs at ``load``: a fresh callvault (no calibration) for
    ``--crecv-minutes``, then the C receiver for the same window, same seed."""
    trials: list[CaptureTrial] = []
    for k in range(args.crecv_trials):
        print(f"-- capture trial {k + 1}/{args.crecv_trials} at {load:g} ...", flush=True)
        phases = [Phase("sustained", load, args.crecv_s)]
        s = callvault_step(phases, "trial", args, calibrated=False)
        if not s.error:
            crecv_step(s, args.crecv_s, args.hold_mean, args.seed, args.rate, args.keep)
        trial = CaptureTrial(s.capture_us, s.crecv_us, s.loss, s.crecv_loss, s.error)
        trials.append(trial)
        print(
            f"   callvault {trial.callvault_us:.2f} us/pkt (loss {trial.callvault_loss}), "
            f"C receiver {trial.crecv_us:.2f} (loss {trial.crecv_loss}): {trial.ratio:.2f}"
            + (f" {trial.error}" if trial.error else ""),
            flush=True,
        )
    return trials


def capture_figures(step: Step, args: argparse.Namespace) -> None:
    """Capture against the C receiver at the step's load: one run with the step's own
    capture figure (``--crecv-trials 1``), or alternating fresh pairs."""
    if args.crecv_s <= 0 or step.error:
        return
    if args.crecv_trials > 1:
        step.trials = capture_trials(step.load, args)
    else:
        crecv_step(step, args.crecv_s, args.hold_mean, args.seed, args.rate, args.keep)


def print_trials(steps: list[Step]) -> None:
    for s in steps:
        if not s.trials:
            continue
        print(
            f"\nCapture CPU per packet, callvault (event loop) / C receiver, alternating fresh "
            f"pairs at {s.load:g} calls ({s.load * PACKETS_PER_CALL_S:.0f} pps); counted: "
            "neither lost packets"
        )
        print("| pair | callvault us/pkt | C receiver us/pkt | ratio | loss callvault / C |")
        print("|---:|---:|---:|---:|---:|")
        for k, t in enumerate(s.trials, 1):
            print(
                f"| {k} | {t.callvault_us:.2f} | {t.crecv_us:.2f} | {t.ratio:.2f}"
                f"{'' if t.counted else ' (not counted)'} | {t.callvault_loss} / {t.crecv_loss}"
                + (f" ({t.error})" if t.error else "")
                + " |"
            )
        counted = [t.ratio for t in s.trials if t.counted]
        print(
            f"median ratio {median(counted):.2f} over {len(counted)} counted of {len(s.trials)}"
            if counted
            else f"median ratio: none of the {len(s.trials)} pairs counted"
        )


# -- tables -------------------------------------------------------------------------------------
def backlog_series(step: Step, points: int = 12) -> str:
    samples = step.in_phase(0)
    if not samples:
        return "-"
    stride = max(1, len(samples) // points)
    picked = samples[::stride]
    if picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    return " ".join(f"{s.t:.0f}s:{s.pending:.0f}" for s in picked)


def print_tables(steps: list[Step], hold_mean: float) -> None:
    print(
        f"\nSteady state, server (capture + finishing) on CPU {rr.SERVER_CPU}, generator on "
        f"CPU {rr.LOADGEN_CPU}; Poisson arrivals, exponential holds (mean {hold_mean:g} s), "
        "two G.711 streams per call. Window, backlog and core needed: the first phase; "
        "answered, sent, loss, stored: the whole run"
    )
    print(
        "| load (calls up) | window | calls answered / failed | pkts sent | loss | capture lag "
        "max | finish backlog: max, slope/min, grows | core needed | stored: calls / MP3 "
        "(expected) | "
        "drained after window | clean |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for s in steps:
        slope, _ = s.backlog_fit(0)
        first = s.in_phase(0)
        peak = max((x.pending for x in first), default=0)
        lag = max((x.capture_lag_ms for x in s.samples if x.phase < len(s.phases)), default=0)
        failed = s.gen.get("setup_failed", 0) + s.gen.get("blocked", 0)
        print(
            f"| {s.label} | {s.seconds / 60:g} min | {s.answered} / {failed:.0f} | {s.sent} | "
            f"{s.loss} | {lag:.0f} ms | {peak:.0f}, {slope:+.2f}, "
            f"{'yes' if s.backlog_grows(0) else 'no'} | {s.busy:.2f} | "
            f"{s.db_calls} / {s.db_mp3} ({s.calls_expected} / {s.with_media}) | "
            f"{'yes' if s.drained else 'NO'}{' (stalled)' if s.stalled else ''} in "
            f"{s.drain_s:.0f} s | "
            f"{'yes' if s.clean() else 'NO'} |"
        )
    print(
        "\nCPU per call-second (capture: the server's event loop over the first phase; "
        "finishing: the rest of the server and its pool, window start until drained, over "
        "every call of the run, the ones cut at the end included) and memory. Finishing "
        "split into a per call and b per call-second from this run and the calibration's "
        "short calls on the same server; core needed in the steady state = (capture + b) "
        "x calls up + a x calls up / hold-mean, against the run's (capture + finishing) "
        "x calls up, which counts the cut calls' fixed cost as if the steady state had it"
    )
    print(
        "| load | call-s | calls finished | capture ms/call-s | finishing ms/call-s (run) | "
        "finishing a ms/call | finishing b ms/call-s | core needed: steady (a, b) / run's | "
        "calls per core (steady) | core busy in the window: capture / finishing | "
        "RSS server idle -> max (KiB/call) | RSS pool max | capture us/pkt: callvault / "
        "C receiver = ratio | C receiver loss |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in steps:
        cap, fin = s.capture_ms, s.finishing_ms
        split = s.finishing_split
        a, b = (f"{split[0]:.2f}", f"{split[1]:.3f}") if split else ("-", "-")
        per_load = s.busy_at(1.0)  # cores per call up
        per_core = 1 / per_load if per_load > 0 else 0
        wall = max(1e-9, s.first_wall_s)
        per_call = (s.rss_max_kib - s.rss_idle_kib) / max(1.0, s.load)
        counted = [t.ratio for t in s.trials if t.counted]
        if s.trials:
            ratio = f"median {median(counted):.2f} of {len(counted)} pairs" if counted else "-"
            crecv = "pairs below"
        else:
            ratio = f"{s.capture_us / s.crecv_us:.2f}" if s.crecv_us else "-"
            crecv = f"{s.crecv_us:.2f}" if s.crecv_us else "-"
        print(
            f"| {s.label} | {s.call_s:.0f} | {s.calls_expected} | {cap:.2f} | {fin:.2f} | "
            f"{a} | {b} | {s.busy:.2f} / {s.busy_run:.2f} | {per_core:.0f} | "
            f"{100 * s.capture_s / wall:.0f}% / {100 * fin * s.call_s / 1e3 / wall:.0f}% | "
            f"{s.rss_idle_kib / 1024:.0f} -> {s.rss_max_kib / 1024:.0f} MiB ({per_call:.0f}) | "
            f"{s.pool_rss_max_kib / 1024:.0f} MiB | {s.capture_us:.2f} / {crecv} = {ratio} | "
            f"{s.crecv_loss if s.crecv_us else '-'} |"
        )
    print("\nCalibration (short calls on the step's server before its window)")
    for s in steps:
        c = s.calibration
        if c is None:
            print(f"  {s.label}: none")
            continue
        print(
            f"  {s.label}: {c.calls} calls, {c.call_s:.0f} call-s of audio, finishing "
            f"{c.finishing_s * 1e3 / max(1, c.calls):.2f} ms CPU per call ({c.finishing_s:.2f} s "
            f"in {c.seconds:.0f} s); the step: {s.calls_expected} calls, "
            f"{s.sent / PACKETS_PER_CALL_S:.0f} call-s, finishing {s.finishing_s:.2f} s; "
            f"{split_text(s)}"
        )
    print("\nFinish backlog over the first phase (seconds: calls pending)")
    for s in steps:
        print(f"  {s.label}: {backlog_series(s)}")
    print("\nGenerator self-check (CPU 1)")
    for s in steps:
        g = s.gen
        print(
            f"  {s.label}: late ticks {g.get('late_ticks', 0):.0f}/{g.get('ticks', 0):.0f}, "
            f"max late {g.get('max_late_ms', 0):.1f} ms, avg burst "
            f"{g.get('avg_burst_ms', 0):.2f} ms, gen CPU {g.get('gen_cpu_pct', 0):.0f}%, "
            f"set-up p50/p99 {g.get('setup_p50_ms', 0):.1f}/{g.get('setup_p99_ms', 0):.1f} ms, "
            f"retransmissions {g.get('retrans', 0):.0f}, answered after their INVITE timed "
            f"out (then BYEd) {g.get('late_ended', 0):.0f}, host RcvbufErrors {s.rcvbuf_errors}; "
            f"server's open descriptors at most {s.fds_max} (peak calls up "
            f"{g.get('max_up', 0):.0f}); "
            f"niceness: {s.nice}"
        )
        if s.error:
            print(f"  {s.label}: {s.error}")


def print_series(s: Step, every: float) -> None:
    """The run's time series, a row per ``every`` seconds: the backlog grows and drains."""
    names = [p.name for p in s.phases] + ["new calls stopped, rest BYEd"]
    print(
        f"\nTime series of {s.label} (a row every {every:g} s; CPU in % of CPU "
        f"{rr.SERVER_CPU} since the row before; drops: datagrams the server's RTP sockets "
        "dropped so far, summed over the sockets seen at the rows)"
    )
    print(
        "| t | phase | calls up | calls ended | waiting to be finished | stored | capture CPU | "
        "finishing CPU (pool + server) | pool CPU | CPU 0 busy (capture + finishing) | "
        "capture lag | socket drops |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows: list[Sample] = []
    for x in s.samples:  # the first sample of every ``every`` seconds, and the last
        if not rows or x.t // every > rows[-1].t // every or x is s.samples[-1]:
            rows.append(x)
    before = s.phases[0].cpu0
    for x in rows:
        if before is None or x.cpu.at - before.at < 1.0:  # CPU clocks tick at 10 ms
            cpu = "- | - | - | -"
        else:
            dt = x.cpu.at - before.at
            loop, finishing = x.cpu.loop - before.loop, x.cpu.finishing - before.finishing
            cpu = (
                f"{100 * loop / dt:.0f}% | {100 * finishing / dt:.0f}% | "
                f"{100 * (x.cpu.children - before.children) / dt:.0f}% | "
                f"{100 * (loop + finishing) / dt:.0f}%"
            )
        phase = (
            f"{names[x.phase]} {s.phases[x.phase].load:g}"
            if x.phase < len(s.phases)
            else (names[-1])
        )
        print(
            f"| {x.t:.0f} s | {phase} | {x.up:.0f} | {x.ended:.0f} | {x.pending:.0f} | "
            f"{x.stored:.0f} | {cpu} | {x.capture_lag_ms:.0f} ms | {x.drops} |"
        )
        if before is None or x.cpu.at - before.at >= 1.0:
            before = x.cpu


def overload_verdict(s: Step) -> tuple[bool, str]:
    """(the run showed it, the sentence): zero loss while the backlog grew, then drained.

    Growth is judged on the overload's second half: the load is raised by starting
    its extra calls at once, and a call that ends t s in brings at most t s of audio,
    so the extra finishing work ramps up over the phase and its first minutes can
    keep up with what an overload in the steady state could not."""
    k = next((i for i, p in enumerate(s.phases) if p.name == "overload"), 1)
    during = s.in_phase(k)
    slope, _rise = s.backlog_fit(k)
    late_slope, _late_rise = s.backlog_fit(k, second_half=True)
    grew = s.backlog_grows(k, second_half=True)
    first = during[0].pending if during else 0
    half = s.in_half(k)
    at_half = half[0].pending if half else 0
    peak = max((x.pending for x in s.samples if x.phase >= k), default=0)
    lag = max((x.capture_lag_ms for x in during), default=0)
    busy = 0.0
    if len(half) >= 2 and half[-1].cpu.at - half[0].cpu.at >= 1.0:
        a, b = half[0].cpu, half[-1].cpu
        busy = (b.loop - a.loop + b.finishing - a.finishing) / (b.at - a.at)
    p = s.phases[k]
    shown = grew and s.drained and s.loss == 0 and s.all_stored
    text = (
        f"overload {p.load:g} calls for {p.seconds / 60:g} min after {s.seconds / 60:g} min at "
        f"{s.load:g} (in the steady state {s.load:g} calls need {s.busy_at(s.load):.2f} "
        f"core, {p.load:g} need {s.busy_at(p.load):.2f}: capture and finishing cost per "
        f"call-second of the sustained phase, {split_text(s)}): capture "
        f"{'kept priority (zero loss' if s.loss == 0 else f'LOST {s.loss} packets ('}"
        f" of {s.sent}, capture lag up to {lag:.0f} ms in the overload); calls waiting to be "
        f"finished went from {first:.0f} to {at_half:.0f} at the overload's half-way mark and "
        f"a peak of {peak:.0f} ({slope:+.1f}/min over the overload, {late_slope:+.1f}/min over "
        f"its second half, CPU {rr.SERVER_CPU} {100 * busy:.0f}% busy with capture + finishing "
        f"then: {'growing' if grew else 'NOT growing: the core was not overloaded'}) and "
        f"{'drained to 0' if s.drained else 'did NOT drain'} {s.drain_s:.0f} s after new calls "
        f"stopped; every call stored: {'yes' if s.all_stored else 'NO'} ({s.db_calls} calls of "
        f"{s.calls_expected} set up, {s.db_mp3} MP3 of {s.with_media} with media)"
    )
    return shown, text


# -- main ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loads", default="300,450,600", help="calls up on average, in order")
    p.add_argument("--minutes", type=float, default=10.0, help="window per load (confirm)")
    p.add_argument("--hold-mean", type=float, default=180.0, help="mean call hold, seconds")
    p.add_argument(
        "--find-limit",
        action="store_true",
        help="probe for the highest load that holds, then confirm it for --minutes",
    )
    p.add_argument("--start-load", type=float, default=300.0, help="--find-limit's first probe")
    p.add_argument("--probe-minutes", type=float, default=2.0, help="window per probe")
    p.add_argument("--max-probes", type=int, default=4)
    p.add_argument("--resolution", type=float, default=0.05, help="stop probing within this share")
    p.add_argument(
        "--max-busy",
        type=float,
        default=1.0,
        help="a load holds only if it needs at most this many cores (capture + finishing)",
    )
    p.add_argument(
        "--overload",
        type=float,
        default=0.0,
        help="last, run this many times the load found or the highest clean load (e.g. 1.5)",
    )
    p.add_argument("--overload-minutes", type=float, default=5.0)
    p.add_argument(
        "--overload-warmup-minutes",
        type=float,
        default=3.0,
        help="with --loads: minutes at the load before the overload (finishing near steady)",
    )
    p.add_argument(
        "--drain-minutes",
        type=float,
        default=0.0,
        help="after the overload: minutes at --drain-load before the rest are BYEd (0: at once)",
    )
    p.add_argument(
        "--drain-load",
        type=float,
        default=0.0,
        help="share of the load after the overload (0: no new calls; 1: the sustained load)",
    )
    p.add_argument("--series-s", type=float, default=30.0, help="a time-series row every S s")
    p.add_argument(
        "--crecv-minutes",
        type=float,
        default=2.0,
        help="window of the C receiver's run (at most --minutes; 0: none); with --find-limit "
        "at the confirmed load only",
    )
    p.add_argument(
        "--crecv-trials",
        type=int,
        default=1,
        help="1: the C receiver once, against the step's own capture figure; K > 1: K "
        "alternating pairs (a fresh callvault, then the C receiver) for --crecv-minutes each, "
        "and their median ratio",
    )
    p.add_argument(
        "--calibration-calls",
        type=int,
        default=200,
        help="short calls (mean hold 1 s) before each step's window, for the finishing cost "
        "per call",
    )
    p.add_argument(
        "--no-calibrate",
        dest="calibrate",
        action="store_false",
        help="no calibration: core needed at the run's finishing cost per call-second",
    )
    p.add_argument("--rate", type=float, default=200.0, help="set-ups (and final BYEs) per s")
    p.add_argument("--seed", type=int, default=12, help="arrivals and holds (same per step)")
    p.add_argument("--sample-s", type=float, default=0.0, help="default: run/30, 1..5 s")
    p.add_argument("--finish-timeout", type=float, default=1800.0)
    p.add_argument(
        "--stall-s",
        type=float,
        default=120.0,
        help="stop waiting for the drain when nothing was finished for this long",
    )
    p.add_argument(
        "--bye-gap-ms",
        type=int,
        default=0,
        help="stop each call's media this long before its BYE (0: with the last packet)",
    )
    p.add_argument("--keep-going", action="store_true", help="run every load, clean or not")
    p.add_argument("--keep", action="store_true", help="keep the data directories")
    return p.parse_args(argv)


def run_loads(args: argparse.Namespace, nofile: int) -> list[Step]:
    steps: list[Step] = []
    for load in (float(x) for x in args.loads.split(",") if x.strip()):
        if not fits_nofile(load, nofile):
            break
        print(f"-- load {load:g} x {args.minutes:g} min ...", flush=True)
        step = callvault_step([Phase("sustained", load, args.minutes * 60)], "step", args)
        capture_figures(step, args)
        steps.append(step)
        report(step)
        if not step.clean() and not args.keep_going:
            break
    return steps


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
    args.crecv_s = min(args.crecv_minutes, args.minutes) * 60
    nofile = rr.effective_nofile()
    began = time.monotonic()
    print(
        f"server CPU {rr.SERVER_CPU}, loadgen CPU {rr.LOADGEN_CPU}; hold mean "
        f"{args.hold_mean:g} s, window {args.minutes:g} min, seed {args.seed}; "
        f"net.core.rmem_max={rr.sysctl('net.core.rmem_max')}; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    over: Step | None = None
    best: Step | None = None
    if args.find_limit:
        steps = find_limit(args, nofile)
        clean = [s for s in steps if s.clean()]
        if clean:
            found = max(clean, key=lambda s: s.load).load
            phases = [Phase("sustained", found, args.minutes * 60)]
            if args.overload > 0:
                phases += overload_phases(found, args)
            print(
                f"-- confirm {found:g} x {args.minutes:g} min"
                + (
                    "".join(
                        f", then {p.name} {p.load:g} x {p.seconds / 60:g} min" for p in phases[1:]
                    )
                ),
                flush=True,
            )
            if fits_nofile(max(p.load for p in phases), nofile):
                confirm = callvault_step(phases, "confirm", args)
                report(confirm)
                capture_figures(confirm, args)
                steps.append(confirm)
                best = confirm if confirm.clean() else None
                over = confirm if args.overload > 0 else None
        else:
            print("-- no probe held: nothing to confirm")
    else:
        steps = run_loads(args, nofile)
        clean = [s for s in steps if s.clean()]
        best = max(clean, key=lambda s: s.load) if clean else None
        if args.overload > 0 and best is not None:
            phases = [Phase("sustained", best.load, args.overload_warmup_minutes * 60)]
            phases += overload_phases(best.load, args)
            print(
                f"-- overload: {best.load:g} x {args.overload_warmup_minutes:g} min, then "
                + ", then ".join(
                    f"{p.name} {p.load:g} x {p.seconds / 60:g} min" for p in phases[1:]
                ),
                flush=True,
            )
            if fits_nofile(max(p.load for p in phases), nofile):
                over = callvault_step(phases, "overload", args)
                report(over)
                steps.append(over)
        elif args.overload > 0:
            print("-- overload skipped: no clean load to scale")
    print_tables(steps, args.hold_mean)
    print_trials(steps)
    failures: list[str] = []
    if over is not None:
        print_series(over, args.series_s)
        shown, text = overload_verdict(over)
        print("\n" + text)
        if over.loss or not over.drained or over.error:
            failures.append(
                f"the overload run lost {over.loss} packets, drained: {over.drained}"
                + (f", {over.error}" if over.error else "")
            )
        if not shown:
            print("the run did NOT show an overload that grows the backlog and drains")
    for s in steps:
        if s.calls_lost:
            failures.append(
                f"{s.label}: {s.calls_lost} calls not stored, or without their MP3 ({s.db_calls} "
                f"calls of {s.calls_expected} set up, {s.db_mp3} MP3 of {s.with_media} with media; "
                f"{s.answered - s.with_media} BYEd before their first packet); calls without "
                "one (a call BYEd before its first packet has none by design): "
                + "; ".join(s.without_mp3)
            )
    print(f"\nbench time {(time.monotonic() - began) / 60:.1f} min")
    if best is not None:
        print(
            f"\nhighest steady load with zero loss, a backlog that does not grow, every call "
            f"stored: {best.load:g} calls ({args.minutes:g} min, holds {args.hold_mean:g} s; "
            f"capture {best.capture_ms:.2f} ms per call-second, finishing {split_text(best)} "
            f"({best.finishing_ms:.2f} ms per call-second in the run); core needed "
            f"{best.busy:.2f} in the steady state, {best.busy_run:.2f} at the run's cost)"
        )
    else:
        print(
            "\nhighest steady load with zero loss, a backlog that does not grow, every call "
            "stored: none" + (" confirmed" if args.find_limit else " of the loads tried")
        )
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
