"""Recorder capacity on one core: concurrent calls, set-up rate, memory per call.

Run: ``python bench/run_recorder.py`` (or ``python -m bench`` for everything).

For each step N it starts a fresh ``callvault serve`` pinned to CPU 0 (fresh data
dir, seeded tenant and recorded user), drives it from ``bench/bin/loadgen``
pinned to CPU 1 (N two-stream G.711 calls, 50 pps per stream), and compares
what the generator sent with what the server counted (``/metrics``), together
with the kernel's UDP drop counters. Steps stop at the first N that is not
recorded cleanly. Then it measures call set-up + tear-down throughput.

All traffic is on 127.0.0.1; every wait has a deadline. Nothing here asserts on
timings: it prints tables.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LOADGEN_SRC = BENCH / "loadgen.c"
LOADGEN = BENCH / "bin" / "loadgen"
NOFILE = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
SERVER_CPU = "0"
LOADGEN_CPU = "1"
METRICS_TOKEN = secrets.token_urlsafe(32)


# -- build ----------------------------------------------------------------------
def build_loadgen(force: bool = False) -> Path:
    """gcc -O2 bench/loadgen.c -> bench/bin/loadgen (rebuilt when the source is newer)."""
    LOADGEN.parent.mkdir(parents=True, exist_ok=True)
    if force or not LOADGEN.exists() or LOADGEN.stat().st_mtime < LOADGEN_SRC.stat().st_mtime:
        cmd = ["gcc", "-O2", "-Wall", "-o", str(LOADGEN), str(LOADGEN_SRC), "-lm"]
        subprocess.run(cmd, check=True, timeout=120)
    return LOADGEN


# -- small helpers ----------------------------------------------------------------
def raise_nofile() -> None:
    """preexec_fn for children: each recorded stream is a socket plus a spool file."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    except (ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


FDS_PER_CALL = 5  # two RTP sockets, two stream spools, the journal


def effective_nofile() -> int:
    """Raise this process's RLIMIT_NOFILE as far as allowed; children inherit it."""
    raise_nofile()
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rtp_range() -> tuple[int, int]:
    """RTP ports below the ephemeral range, so no client socket can take one."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return 10000, max(10002, min(low - 2, 60000))


def udp_counters() -> dict[str, int]:
    """Kernel-wide UDP counters (/proc/net/snmp); other traffic on the host counts too."""
    lines = [
        line.split()
        for line in Path("/proc/net/snmp").read_text().splitlines()
        if line.startswith("Udp:")
    ]
    names, values = lines[0][1:], lines[1][1:]
    out = {name: int(value) for name, value in zip(names, values, strict=True)}
    try:
        out["SoftnetDropped"] = sum(
            int(row.split()[1], 16)
            for row in Path("/proc/net/softnet_stat").read_text().splitlines()
        )
    except (OSError, IndexError, ValueError):
        out["SoftnetDropped"] = 0
    return out


def udp_drops(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    keys = ("RcvbufErrors", "InErrors", "NoPorts", "SoftnetDropped")
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys}


def rtp_socket_queues(low: int, high: int) -> tuple[int, int, int]:
    """(sockets, bytes queued, drops) over the UDP sockets bound to ports low..high.

    From /proc/net/udp: rx_queue is the receive memory in use (truesize, not payload)
    and the last column counts the datagrams each socket dropped.
    """
    sockets = queued = drops = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            f = line.split()
            port = int(f[1].rsplit(":", 1)[1], 16)
            if low <= port <= high:
                sockets += 1
                queued += int(f[4].split(":")[1], 16)
                drops += int(f[-1])
    return sockets, queued, drops


def probe_truesize(payload: int = 172) -> int:
    """Receive memory one RTP datagram takes in a socket queue (for backlog estimates)."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        for _ in range(10):
            tx.sendto(b"\x80" + bytes(payload - 1), ("127.0.0.1", port))
        time.sleep(0.05)
        _, queued, _ = rtp_socket_queues(port, port)
    return max(1, queued // 10) if queued else 832


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def loop_cpu_s(pid: int) -> float:
    """CPU seconds of the server's main thread (its event loop: SIP, SIPREC, capture),
    without the database writer's and other threads."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of pid and its live descendants (the finisher's worker processes)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(stat[1])
    total, todo, seen = 0.0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += proc_cpu_s(current)
        todo += [child for child, parent in parents.items() if parent == current]
    return total


def proc_rss_kib(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB


def sysctl(name: str) -> str:
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except OSError:
        return "?"


# -- the server -------------------------------------------------------------------
def seed(data_dir: Path) -> None:
    """Tenant "Bench" (bench.example) with one user agent@bench.example recorded always.

    Like the demo: the tenant's admin has accepted the legal notice (nothing is
    recorded before that) and the user's mode is "always" (not on demand).
    """
    import inspect

    from callvault import admin
    from callvault.db.engine import make_engine, make_sessionmaker, migrate

    url = f"sqlite:///{data_dir.resolve() / 'callvault.db'}"
    migrate(url)
    engine = make_engine(url)
    extra = {"mode": "always"} if "mode" in inspect.signature(admin.create_user).parameters else {}
    with make_sessionmaker(engine)() as session:
        tenant = admin.create_tenant(session, "Bench", ["bench.example"], [])
        admin.create_user(
            session,
            tenant,
            "Agent",
            extension="100",
            aors=["agent@bench.example"],
            recorded=True,
            **extra,
        )
        enable = getattr(admin, "enable_feature", None)  # the operator's switch (SPEC 8)
        if enable is not None:
            enable(session, tenant, reference="bench")
        accept = getattr(admin, "accept_legal_notice", None)
        if accept is not None:
            boss = admin.create_user(session, tenant, "Bench Admin", extension="101", role="admin")
            accept(session, tenant, boss, "load benchmark")
        # recording sources (issue 7): the load comes from loopback, thousands of calls
        with contextlib.suppress(ImportError):
            from callvault.sources.registry import LIMIT_BOUNDS, SourceLimits
            from callvault.sources.store import register_loopback_source

            most = {name: high for name, (_low, high) in LIMIT_BOUNDS.items()}
            register_loopback_source(session, [tenant.id], limits=SourceLimits(**most))
        session.commit()
    engine.dispose()


@dataclass
class Server:
    data_dir: Path
    finish_workers: int = 1
    sip_port: int = 0
    http_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=lambda: Path("/dev/null"))

    def start(self, timeout: float = 60) -> None:
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.http_port = free_port(socket.SOCK_STREAM)
        low, high = rtp_range()
        env = dict(os.environ)
        env.update(
            {
                "CALLVAULT_DATA_DIR": str(self.data_dir),
                "CALLVAULT_SIP_HOST": "127.0.0.1",
                "CALLVAULT_SIP_PORT": str(self.sip_port),
                "CALLVAULT_SIP_TCP": "false",
                "CALLVAULT_RTP_PORT_MIN": str(low),
                "CALLVAULT_RTP_PORT_MAX": str(high),
                "CALLVAULT_HTTP_HOST": "127.0.0.1",
                "CALLVAULT_HTTP_PORT": str(self.http_port),
                "CALLVAULT_FINISH_WORKERS": str(self.finish_workers),
                "CALLVAULT_LOG_LEVEL": "WARNING",
                "CALLVAULT_METRICS_TOKEN": METRICS_TOKEN,  # /metrics needs a bearer token
            }
        )
        env.pop("CALLVAULT_CONFIG", None)
        self.log_path = self.data_dir / "server.log"
        callvault = shutil.which("callvault") or str(Path(sys.executable).parent / "callvault")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["taskset", "-c", SERVER_CPU, callvault, "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=raise_nofile,
                cwd=self.data_dir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"callvault serve exited: {self.log_tail()}")
            with contextlib.suppress(OSError):
                self.metrics(timeout=1)
                return
            time.sleep(0.2)
        raise RuntimeError(f"callvault serve did not answer /metrics: {self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def metrics(self, timeout: float = 30) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            text = reply.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    out[name] = float(value)
        return out

    def wait_finished(
        self, recordings: int, timeout: float
    ) -> tuple[bool, float, dict[str, float]]:
        """Wait for spool_pending == 0 and recordings_stored >= recordings."""
        start = time.monotonic()
        m: dict[str, float] = {}
        while time.monotonic() - start < timeout:
            with contextlib.suppress(OSError):
                m = self.metrics()
                stored = m.get("callvault_recordings_stored_total", 0)
                if m.get("callvault_spool_pending", 1) == 0 and stored >= recordings:
                    return True, time.monotonic() - start, m
            time.sleep(0.25)
        return False, time.monotonic() - start, m

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").splitlines()
            text = [t for t in text if "alembic" not in t]
            return "\n".join(text[-lines:])
        return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def running_server(keep: bool = False, finish_workers: int = 1) -> Iterator[Server]:
    data_dir = Path(tempfile.mkdtemp(prefix="callvault-bench-"))
    server = Server(data_dir, finish_workers=finish_workers)
    try:
        seed(data_dir)
        server.start()
        yield server
    finally:
        server.stop()
        if keep:
            print(f"  (data dir kept: {data_dir})")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


# -- the generator ------------------------------------------------------------------
class LoadGen:
    """bench/bin/loadgen on CPU 1, its stdout read line by line on a thread."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            ["taskset", "-c", LOADGEN_CPU, str(LOADGEN), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            preexec_fn=raise_nofile,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"loadgen: no {prefix!r} line in {timeout:.0f} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"loadgen exited before {prefix!r}:\n" + "\n".join(self.output))
            self.output.append(line)
            if line.startswith(prefix):
                return line

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def keyvalues(line: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for word in line.split()[1:]:
        key, _, value = word.partition("=")
        with contextlib.suppress(ValueError):
            out[key] = float(value)
    return out


# -- one concurrency step ---------------------------------------------------------------
@dataclass
class Step:
    calls: int
    up: int = 0
    sent: int = 0
    received: int = 0
    lag_ms: float = 0.0
    kernel_backlog_ms: float = 0.0
    max_backlog_ms: float = 0.0
    cpu_us_per_packet: float = 0.0
    socket_drops: int = 0
    cpu_pct: float = 0.0
    rss_idle_kib: int = 0
    rss_up_kib: int = 0
    rss_media_kib: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    gen: dict[str, float] = field(default_factory=dict)
    stored: int = 0
    finish_s: float = 0.0
    finished: bool = False
    error: str = ""

    @property
    def loss(self) -> int:
        return self.sent - self.received

    def ok(self, max_lag_ms: float) -> bool:
        return (
            not self.error
            and self.up == self.calls
            and self.loss == 0
            and self.socket_drops == 0
            and self.backlog_ms <= max_lag_ms
            and self.finished
            and self.stored >= self.up
        )

    @property
    def backlog_ms(self) -> float:
        return max(self.lag_ms, self.kernel_backlog_ms)


def media_step(
    calls: int, duration: float, rate: float, finish_timeout: float, keep: bool, truesize: int = 832
) -> Step:
    step = Step(calls)
    with running_server(keep=keep) as server:
        time.sleep(1.0)  # let the server settle (forkserver, imports) before the idle RSS
        step.rss_idle_kib = proc_rss_kib(server.pid)
        gen = LoadGen(
            [
                "media",
                "--server",
                f"127.0.0.1:{server.sip_port}",
                "--calls",
                str(calls),
                "--rate",
                str(rate),
                "--duration",
                str(duration),
                "--sync",
                "--sync-timeout",
                "600",
            ]
        )
        try:
            gen.wait_for("PHASE established", calls / rate + 60)
            m0 = server.metrics()
            udp0 = udp_counters()
            step.rss_up_kib = proc_rss_kib(server.pid)
            cpu0, t0 = proc_cpu_s(server.pid), time.monotonic()
            low, high = rtp_range()
            stop = threading.Event()
            samples: list[int] = []

            def sample_queues() -> None:  # kernel-side backlog every 0.5 s during media
                end = time.monotonic() + duration + 60
                while not stop.wait(0.5) and time.monotonic() < end:
                    samples.append(rtp_socket_queues(low, high)[1])

            sampler = threading.Thread(target=sample_queues, daemon=True)
            sampler.start()
            gen.go()
            try:
                line = gen.wait_for("PHASE media_done", duration + 60)
            finally:
                stop.set()
                sampler.join(timeout=5)
            cpu1, t1 = proc_cpu_s(server.pid), time.monotonic()
            _, queued_end, _ = rtp_socket_queues(low, high)
            m1 = server.metrics()  # what the server had counted when the generator stopped
            step.rss_media_kib = proc_rss_kib(server.pid)
            sent = int(keyvalues(line)["sent"])
            # let the server drain its socket buffers: counter stable for 1 s (max 60 s)
            last, stable_since, deadline = -1.0, time.monotonic(), time.monotonic() + 60
            m2 = m1
            while time.monotonic() < deadline:
                m2 = server.metrics()
                value = m2.get("callvault_rtp_packets_received_total", 0)
                if value != last:
                    last, stable_since = value, time.monotonic()
                elif time.monotonic() - stable_since >= 1.0:
                    break
                time.sleep(0.2)
            step.drops = udp_drops(udp0, udp_counters())
            step.socket_drops = rtp_socket_queues(low, high)[2]
            gen.go()
            result = gen.wait_for("RESULT", calls / rate + 60)
            step.gen = keyvalues(result)
            step.up = int(step.gen.get("up", 0))
            if step.up < calls:
                print("  " + "\n  ".join(gen.output[:3]) + f"\n  server log:\n{server.log_tail()}")
            key = "callvault_rtp_packets_received_total"
            step.sent = sent
            step.received = int(m2.get(key, 0) - m0.get(key, 0))
            streams = max(1.0, step.gen.get("streams", 1))
            behind = sent - (m1.get(key, 0) - m0.get(key, 0))
            step.lag_ms = max(0.0, behind / (streams * 50) * 1e3)
            step.kernel_backlog_ms = queued_end / truesize / (streams * 50) * 1e3
            step.max_backlog_ms = max([queued_end, *samples]) / truesize / (streams * 50) * 1e3
            step.cpu_us_per_packet = (cpu1 - cpu0) / max(1, sent) * 1e6
            step.cpu_pct = 100 * (cpu1 - cpu0) / max(1e-6, t1 - t0)
            step.finished, step.finish_s, m3 = server.wait_finished(step.up, finish_timeout)
            step.stored = int(m3.get("callvault_recordings_stored_total", 0))
        except (TimeoutError, RuntimeError, OSError, KeyError) as exc:
            step.error = f"{type(exc).__name__}: {exc}"
            print(f"  step {calls}: {step.error}\n  server log:\n{server.log_tail()}")
        finally:
            gen.close()
    return step


def setup_bench(
    window: int, duration: float, finish_timeout: float, keep: bool
) -> dict[str, float]:
    with running_server(keep=keep) as server:
        time.sleep(1.0)
        cpu0, tree0, t0 = proc_cpu_s(server.pid), tree_cpu_s(server.pid), time.monotonic()
        loop0 = loop_cpu_s(server.pid)
        gen = LoadGen(
            [
                "setup",
                "--server",
                f"127.0.0.1:{server.sip_port}",
                "--window",
                str(window),
                "--duration",
                str(duration),
                "--timeout",
                "10",
            ]
        )
        try:
            result = keyvalues(gen.wait_for("RESULT", duration + 60))
        finally:
            gen.close()
        cpu1, tree1, t1 = proc_cpu_s(server.pid), tree_cpu_s(server.pid), time.monotonic()
        loop1 = loop_cpu_s(server.pid)
        result["server_cpu_pct"] = 100 * (cpu1 - cpu0) / max(1e-6, t1 - t0)
        result["tree_cpu_pct"] = 100 * (tree1 - tree0) / max(1e-6, t1 - t0)
        # CPU time per completed call: what other work on a shared core does not inflate
        completed = max(1.0, result.get("completed", 0))
        result["server_cpu_ms_per_call"] = 1000 * (cpu1 - cpu0) / completed
        result["loop_cpu_ms_per_call"] = 1000 * (loop1 - loop0) / completed
        if result.get("failed", 0) or result.get("bye_failed", 0):
            print(f"  server log:\n{server.log_tail()}")
        done, seconds, m = server.wait_finished(int(result.get("completed", 0)), finish_timeout)
        result["finished"] = float(done)
        result["finish_s"] = seconds
        result["stored"] = m.get("callvault_recordings_stored_total", 0)
        for line in gen.output[:-1]:
            print("  loadgen: " + line)
        return result


# -- tables -----------------------------------------------------------------------------
def print_media_table(steps: list[Step], duration: float, max_lag_ms: float) -> None:
    print(
        f"\nConcurrent two-stream G.711 calls, server on CPU {SERVER_CPU} (one core), "
        f"{duration:g} s of media per step"
    )
    print(
        "| calls | up | pkts sent | gen pps / target | loss | backlog at end: counter / "
        "kernel queues (max during media) | server CPU | CPU per packet "
        "| UDP drops: RTP sockets; host rcvbuf/in/noport/softnet "
        "| RSS/call (set up / media) | stored | finish | clean |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for s in steps:
        d = s.drops
        per_up = f"{(s.rss_up_kib - s.rss_idle_kib) / s.up:.0f}" if s.up else "-"
        per_media = f"{(s.rss_media_kib - s.rss_idle_kib) / s.up:.0f}" if s.up else "-"
        print(
            f"| {s.calls} | {s.up} | {s.sent} | {s.gen.get('achieved_pps', 0):.0f} / "
            f"{s.gen.get('target_pps', 0):.0f} | {s.loss} | {s.lag_ms:.0f} / "
            f"{s.kernel_backlog_ms:.0f} ({s.max_backlog_ms:.0f}) ms | {s.cpu_pct:.0f}% | "
            f"{s.cpu_us_per_packet:.1f} us | {s.socket_drops}; "
            f"{d.get('RcvbufErrors', 0)}/{d.get('InErrors', 0)}/{d.get('NoPorts', 0)}/"
            f"{d.get('SoftnetDropped', 0)} | {per_up} / {per_media} KiB | {s.stored} | "
            f"{s.finish_s:.1f} s | {'yes' if s.ok(max_lag_ms) else 'NO'} |"
        )
    print(
        f"\nGenerator self-check (CPU {LOADGEN_CPU}): late ticks (>5 ms) / ticks, "
        "max lateness, max burst, generator CPU"
    )
    print(
        "| calls | late/ticks | max late | max burst | avg burst | gen CPU | send EAGAIN/errors |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for s in steps:
        g = s.gen
        print(
            f"| {s.calls} | {g.get('late_ticks', 0):.0f}/{g.get('ticks', 0):.0f} | "
            f"{g.get('max_late_ms', 0):.2f} ms | {g.get('max_burst_ms', 0):.2f} ms | "
            f"{g.get('avg_burst_ms', 0):.2f} ms | {g.get('gen_cpu_pct', 0):.0f}% | "
            f"{g.get('send_eagain', 0):.0f}/{g.get('send_errors', 0):.0f} |"
        )
    for s in steps:
        if s.error:
            print(f"  step {s.calls}: {s.error}")


def print_setup_table(r: dict[str, float]) -> None:
    print(
        f"\nCall set-up + tear-down (INVITE/100/200/ACK/BYE/200, no media), "
        f"{r.get('window', 0):.0f} calls in flight"
    )
    print(
        "| calls/s | completed | failed | set-up p50 | set-up p99 | server CPU "
        "(main / with finisher) | server CPU per call (all / event loop) | recordings stored "
        "| finish backlog drained |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {r.get('calls_per_s', 0):.0f} | {r.get('completed', 0):.0f} | "
        f"{r.get('failed', 0) + r.get('bye_failed', 0):.0f} | "
        f"{r.get('setup_p50_ms', 0):.1f} ms | "
        f"{r.get('setup_p99_ms', 0):.1f} ms | {r.get('server_cpu_pct', 0):.0f}% / "
        f"{r.get('tree_cpu_pct', 0):.0f}% | "
        f"{r.get('server_cpu_ms_per_call', 0):.2f} / {r.get('loop_cpu_ms_per_call', 0):.2f} ms | "
        f"{r.get('stored', 0):.0f} | {'yes' if r.get('finished') else 'NO'} in "
        f"{r.get('finish_s', 0):.1f} s |"
    )


# -- main ---------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--steps",
        default="250,500,1000,1500,2000,2500,3000,4000,5000",
        help="comma-separated call counts, run in order until one is not clean",
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds of media per step")
    p.add_argument("--rate", type=float, default=200.0, help="new calls (and BYEs) per second")
    p.add_argument(
        "--max-lag-ms",
        type=float,
        default=500.0,
        help="a step is clean only if the server's backlog at the end of media is "
        "at most this long",
    )
    p.add_argument("--setup-window", type=int, default=50, help="calls in flight, set-up bench")
    p.add_argument("--setup-duration", type=float, default=10.0)
    p.add_argument("--finish-timeout", type=float, default=600.0)
    p.add_argument("--skip-media", action="store_true")
    p.add_argument("--skip-setup", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the data directories")
    p.add_argument(
        "--rmem-max",
        type=int,
        default=0,
        help="set net.core.rmem_max to this for the run (root; restored after)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        print("note: fewer than 2 CPUs; server and generator share a core")
    build_loadgen()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {int(LOADGEN_CPU)})  # keep this driver off the server's core
    old_rmem = sysctl("net.core.rmem_max")
    if args.rmem_max:
        Path("/proc/sys/net/core/rmem_max").write_text(str(args.rmem_max))
    try:
        print(
            f"loadgen: {LOADGEN}; server CPU {SERVER_CPU}, loadgen CPU {LOADGEN_CPU}; "
            f"net.core.rmem_max={sysctl('net.core.rmem_max')} "
            f"rmem_default={sysctl('net.core.rmem_default')} "
            f"netdev_max_backlog={sysctl('net.core.netdev_max_backlog')}; "
            f"RTP ports {rtp_range()[0]}-{rtp_range()[1]}"
        )
        if not args.skip_media:
            truesize = probe_truesize()
            print(f"one queued RTP datagram takes {truesize} bytes of socket receive memory")
            steps: list[Step] = []
            nofile = effective_nofile()
            for calls in (int(x) for x in args.steps.split(",") if x.strip()):
                if calls * FDS_PER_CALL + 500 > nofile:
                    print(
                        f"-- {calls} calls skipped: the server needs about "
                        f"{calls * FDS_PER_CALL} fds and RLIMIT_NOFILE is {nofile} here "
                        "(raise the hard limit: ulimit -Hn, or CAP_SYS_RESOURCE)"
                    )
                    break
                print(f"-- {calls} calls x {args.duration:g} s ...", flush=True)
                step = media_step(
                    calls, args.duration, args.rate, args.finish_timeout, args.keep, truesize
                )
                steps.append(step)
                print(
                    f"   sent {step.sent} received {step.received} loss {step.loss} "
                    f"backlog {step.lag_ms:.0f} ms "
                    f"(kernel queues {step.kernel_backlog_ms:.0f} ms) "
                    f"socket drops {step.socket_drops} CPU {step.cpu_pct:.0f}% "
                    f"finish {step.finish_s:.1f} s",
                    flush=True,
                )
                if not step.ok(args.max_lag_ms):
                    break
            print_media_table(steps, args.duration, args.max_lag_ms)
        if not args.skip_setup:
            print(
                f"-- set-up bench: {args.setup_window} in flight x {args.setup_duration:g} s",
                flush=True,
            )
            print_setup_table(
                setup_bench(args.setup_window, args.setup_duration, args.finish_timeout, args.keep)
            )
    finally:
        if args.rmem_max and old_rmem != "?":
            Path("/proc/sys/net/core/rmem_max").write_text(old_rmem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
