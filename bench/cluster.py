"""Kamailio in front of one callvault node, then of two: set-ups per second, concurrent calls.

Run: ``.venv/bin/python -m bench.cluster`` from the repository root (about five
minutes with the defaults; ``--steps 100,200 --setup-seconds 5 --media-seconds 3``
for a smoke run). Issue 13's figure "two media nodes behind Kamailio. Calls per
second and concurrent calls, against one node alone, in one run". Nothing
asserts on it: it prints a table.

Each configuration starts Kamailio with ``deploy/kamailio/kamailio.cfg`` (as
``tests/cluster`` does: Kamailio on 127.0.0.2, registered as the one recording
source, its limits raised to the bounds) and 1 or 2 ``callvault serve`` nodes,
each on its own data dir with SQLite and the local blob store (capture and
finishing are what is measured; the shared PostgreSQL and S3 are the cluster
test's). Node 1 is pinned to CPU 0 and node 2 to CPU 1 (``taskset``; a node's
finisher pool inherits its CPU). The load is ``bench/bin/loadgen`` (C, one
thread), sending SIP to Kamailio and RTP straight to the address and ports of
each SDP answer; its ACK and BYE follow the Record-Route (RFC 3261 section 12).

1. **Set-ups per second**: ``loadgen setup`` keeps ``--window`` calls in flight
   (INVITE, 200, ACK, BYE, 200 through Kamailio, no media) for
   ``--setup-seconds``.
2. **Concurrent calls**: ``loadgen media`` for each of ``--steps`` calls (two
   PCMU streams each, ``--media-seconds`` of media), stopping at the first step
   that is not clean. Clean: every call up, the generator at 95 % of its packet
   rate or better (a starved generator offers less than the step names), every
   packet it sent counted by the nodes (``callvault_rtp_packets_received_total``),
   and every call stored once the nodes have finished.

Kamailio, the generator and this driver are not pinned: on a 2-core machine they
share the nodes' cores, so with two nodes the ratio two/one is bounded by the
machine (the one-node run also has CPU 1 for them), not by callvault.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from bench.run_recorder import build_loadgen, effective_nofile, keyvalues, rtp_range, tree_cpu_s
from tests.cluster.cluster import (
    KAMAILIO_IP,
    Kamailio,
    Node,
    free_port,
    node_env,
    seed_cluster,
)

from callvault.db.engine import make_engine, make_sessionmaker
from callvault.sources.limits import LIMIT_BOUNDS
from callvault.sources.store import change_source, find_source

AOR = "alice@acme.example"  # recorded "always" in seed_cluster's tenant
METRICS_TOKEN = secrets.token_urlsafe(32)
RECEIVED = "callvault_rtp_packets_received_total"
STORED = "callvault_recordings_stored_total"
PENDING = "callvault_spool_pending"


def _raise_source_limits(url: str) -> None:
    """The Kamailio source to the highest limits (its default 200 calls would cap the steps)."""
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        row = find_source(session, "kamailio")
        assert row is not None, "seed_cluster registers the source 'kamailio'"
        change_source(session, row, {name: high for name, (_low, high) in LIMIT_BOUNDS.items()})
        session.commit()
    engine.dispose()


def _port_outside(low: int, high: int, host: str = "127.0.0.1") -> int:
    """A free port outside the RTP ranges (callvault refuses a SIP/HTTP port inside one)."""
    while True:
        port = free_port(host)
        if not low <= port <= high:
            return port


@dataclass
class Step:
    calls: int
    result: dict[str, float] = field(default_factory=dict)
    received: int = 0
    stored: int = 0
    per_node: list[int] = field(default_factory=list)  # calls stored on each node
    codes: dict[int, int] = field(default_factory=dict)  # failed set-ups' final responses
    error: str = ""

    @property
    def sent(self) -> int:
        return int(self.result.get("sent", 0))

    @property
    def up(self) -> int:
        return int(self.result.get("up", 0))

    @property
    def paced(self) -> bool:
        """The generator kept (95 % of) its rate: the nodes had the whole load."""
        target = self.result.get("target_pps", 0)
        return target > 0 and self.result.get("achieved_pps", 0) >= 0.95 * target

    @property
    def clean(self) -> bool:
        return (
            not self.error
            and self.paced
            and self.up == self.calls
            and self.sent > 0
            and self.received == self.sent
            and self.stored >= self.up
        )


@dataclass
class Configuration:
    nodes: int
    setup: dict[str, float] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"Kamailio + {self.nodes} node{'s' if self.nodes > 1 else ''}"

    @property
    def concurrent(self) -> int:
        """The highest clean step (0: none)."""
        return max((s.calls for s in self.steps if s.clean), default=0)


class Cluster:
    """Kamailio and ``count`` nodes on fresh data dirs under ``root``."""

    def __init__(self, root: Path, count: int) -> None:
        low, high = rtp_range()
        half = (high - low) // 2
        self.rtp = (low, high)
        self.root = root
        self.nodes: list[Node] = []
        for n in range(count):
            data = root / f"node{n + 1}"
            data.mkdir(parents=True)
            lo = low + n * half
            env = node_env(
                data,
                {},
                CALLVAULT_SIP_PORT=str(_port_outside(low, high)),
                CALLVAULT_HTTP_PORT=str(_port_outside(low, high)),
                CALLVAULT_RTP_PORT_MIN=str(lo),
                CALLVAULT_RTP_PORT_MAX=str(lo + half - 2),
                CALLVAULT_SIP_TCP="false",
                CALLVAULT_LOG_LEVEL="WARNING",
                CALLVAULT_METRICS_TOKEN=METRICS_TOKEN,
            )
            argv = ["taskset", "-c", str(n), sys.executable, "-m", "callvault", "serve"]
            self.nodes.append(Node(f"node{n + 1}", data, env, argv=argv))
        self.kamailio = Kamailio(root / "kamailio", [n.sip for n in self.nodes])
        self.kamailio.port = _port_outside(low, high, KAMAILIO_IP)
        self.codes: dict[int, int] = {}
        self.http = httpx.AsyncClient(
            timeout=30, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )

    async def start(self) -> None:
        for node in self.nodes:
            url = f"sqlite:///{node.data_dir}/callvault.db"
            await asyncio.to_thread(seed_cluster, url)
            await asyncio.to_thread(_raise_source_limits, url)
            node.start()
        for node in self.nodes:
            await node.wait_ready(self.http)
        self.kamailio.start()
        await self.kamailio.wait_ready()
        await asyncio.sleep(1.0)  # the nodes' start-up work (finisher pool, imports) done

    async def stop(self) -> None:
        await self.http.aclose()
        self.kamailio.stop()
        for node in self.nodes:
            await asyncio.to_thread(node.stop)

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds so far of each node (with its finisher pool) and of Kamailio."""
        procs = {node.name: node.proc for node in self.nodes}
        procs["kamailio"] = self.kamailio.proc
        return {name: tree_cpu_s(p.pid) for name, p in procs.items() if p is not None}

    async def metrics(self) -> list[dict[str, float]]:
        out = []
        for node in self.nodes:
            r = await self.http.get(f"{node.http}/metrics")
            r.raise_for_status()
            values: dict[str, float] = {}
            for line in r.text.splitlines():
                if line and not line.startswith("#"):
                    name, _, value = line.rpartition(" ")
                    with contextlib.suppress(ValueError):
                        values[name] = float(value)
            out.append(values)
        return out

    async def total(self, name: str) -> int:
        return int(sum(m.get(name, 0) for m in await self.metrics()))

    async def settled(self, timeout: float) -> int:
        """RTP packets counted, once the count has not moved for a second."""
        last, since = -1, time.monotonic()
        deadline = since + timeout
        while time.monotonic() < deadline:
            now = await self.total(RECEIVED)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= 1.0:
                break
            await asyncio.sleep(0.2)
        return last

    async def drained(self, stored: int, timeout: float) -> list[dict[str, float]]:
        """Until no spool is pending on any node and ``stored`` recordings are stored, or
        nothing more is stored for 5 s with none pending (a call whose BYE failed stays
        open on its node until its session timer: waiting for it says nothing)."""
        deadline = time.monotonic() + timeout
        last, since = -1.0, time.monotonic()
        while True:
            m = await self.metrics()
            now = sum(x.get(STORED, 0) for x in m)
            if now != last:
                last, since = now, time.monotonic()
            idle = all(x.get(PENDING, 1) == 0 for x in m)
            if idle and (now >= stored or time.monotonic() - since >= 5):
                return m
            if time.monotonic() > deadline:
                return m
            await asyncio.sleep(0.5)

    async def loadgen(self, args: list[str], timeout: float) -> dict[str, float]:
        """One loadgen run to its end, through Kamailio; the values of its RESULT line
        (and the failed set-ups' final responses in ``codes``)."""
        self.codes.clear()
        host, port = self.kamailio.address
        proc = await asyncio.create_subprocess_exec(
            str(build_loadgen()),
            *args,
            "--server",
            f"{host}:{port}",
            "--aor",
            AOR,
            "--timeout",
            "10",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        lines = out.decode(errors="replace").splitlines()
        for line in lines[:-1]:
            print("    loadgen: " + line, flush=True)
            code = re.match(r"\s*responses (\d+): (\d+)", line)
            if code:  # the final responses that failed a set-up (699: answer unusable)
                self.codes[int(code.group(1))] = int(code.group(2))
        if proc.returncode != 0 or not lines or not lines[-1].startswith("RESULT"):
            raise RuntimeError(f"loadgen exited {proc.returncode}: {lines[-5:]}")
        return keyvalues(lines[-1])


async def set_up_rate(cluster: Cluster, args: argparse.Namespace) -> dict[str, float]:
    """The loadgen's RESULT, with the CPU each process took meanwhile (% of one core)."""
    window, seconds = str(args.window), str(args.setup_seconds)
    cpu0, t0 = cluster.cpu_s(), time.monotonic()
    result = await cluster.loadgen(
        ["setup", "--window", window, "--duration", seconds], args.setup_seconds + 60
    )
    cpu1, wall = cluster.cpu_s(), time.monotonic() - t0
    for name, before in cpu0.items():
        result[f"cpu_{name}"] = 100 * (cpu1[name] - before) / wall
    await cluster.drained(0, args.finish_timeout)  # the calls' (empty) spools, before media
    return result


async def media_step(cluster: Cluster, calls: int, args: argparse.Namespace) -> Step:
    step = Step(calls)
    try:
        received0 = await cluster.total(RECEIVED)
        stored0 = [int(m.get(STORED, 0)) for m in await cluster.metrics()]
        step.result = await cluster.loadgen(
            [
                "media",
                "--calls",
                str(calls),
                "--rate",
                str(args.rate),
                "--duration",
                str(args.media_seconds),
            ],
            2 * calls / args.rate + args.media_seconds + 90,
        )
        step.codes = dict(cluster.codes)
        step.received = await cluster.settled(60) - received0
        m = await cluster.drained(sum(stored0) + step.up, args.finish_timeout)
        step.per_node = [int(x.get(STORED, 0)) - s for x, s in zip(m, stored0, strict=True)]
        step.stored = sum(step.per_node)
    except (TimeoutError, RuntimeError, OSError, httpx.HTTPError) as exc:
        step.error = f"{type(exc).__name__}: {exc}"
    return step


async def measure(root: Path, count: int, args: argparse.Namespace) -> Configuration:
    config = Configuration(count)
    cluster = Cluster(root, count)
    try:
        await cluster.start()
        print(f"-- {config.name}: set-ups, {args.window} in flight x {args.setup_seconds:g} s")
        config.setup = await set_up_rate(cluster, args)
        for calls in args.steps:
            media_s = args.media_seconds
            print(f"-- {config.name}: {calls} calls x {media_s:g} s of media", flush=True)
            step = await media_step(cluster, calls, args)
            config.steps.append(step)
            print(
                f"   up {step.up} sent {step.sent} received {step.received} "
                f"stored {step.stored} {step.per_node} {'clean' if step.clean else 'NOT clean'}"
                + (f" ({step.error})" if step.error else ""),
                flush=True,
            )
            if not step.clean:
                break
    finally:
        await cluster.stop()
    return config


def _ratio(two: float, one: float) -> str:
    return f"{two / one:.2f}x" if one else "-"


def print_table(one: Configuration, two: Configuration, args: argparse.Namespace) -> None:
    print(
        f"\nKamailio (dispatcher, round-robin) in front of callvault media nodes; node 1 on "
        f"CPU 0, node 2 on CPU 1; Kamailio, loadgen and this driver unpinned on the same "
        f"{os.cpu_count()} CPUs"
    )
    print("| figure | one node | two nodes | two / one |")
    print("|---|---:|---:|---:|")
    s1, s2 = one.setup, two.setup
    cps1, cps2 = s1.get("calls_per_s", 0), s2.get("calls_per_s", 0)
    print(
        f"| call set-ups + tear-downs per second ({args.window} in flight, "
        f"{args.setup_seconds:g} s) | {cps1:.0f} | {cps2:.0f} | {_ratio(cps2, cps1)} |"
    )
    for key, label in (("setup_p50_ms", "set-up p50"), ("setup_p99_ms", "set-up p99")):
        print(f"| {label} (INVITE to 200) | {s1.get(key, 0):.1f} ms | {s2.get(key, 0):.1f} ms | |")
    failed1 = s1.get("failed", 0) + s1.get("bye_failed", 0)
    failed2 = s2.get("failed", 0) + s2.get("bye_failed", 0)
    print(f"| set-up or BYE failures | {failed1:.0f} | {failed2:.0f} | |")

    def cpu(r: dict[str, float]) -> str:
        nodes = " + ".join(f"{v:.0f}" for k, v in sorted(r.items()) if k.startswith("cpu_node"))
        return (
            f"nodes {nodes}, Kamailio {r.get('cpu_kamailio', 0):.0f}, "
            f"loadgen {r.get('gen_cpu_pct', 0):.0f}"
        )

    print(f"| CPU during set-ups, % of one core | {cpu(s1)} | {cpu(s2)} | |")
    c1, c2 = one.concurrent, two.concurrent
    last = args.steps[-1]

    def note(c: int) -> str:
        return f"{c}" + (" (all steps)" if c == last else "")

    print(
        f"| concurrent calls with media, generator at rate, zero loss, all stored (highest "
        f"clean step of "
        f"{','.join(map(str, args.steps))}; {args.media_seconds:g} s) | {note(c1)} | {note(c2)} "
        f"| {_ratio(c2, c1)} |"
    )
    print(
        f"\nConcurrent-call steps ({args.rate:g} new calls/s, two PCMU streams per call, "
        f"{args.media_seconds:g} s of media)"
    )
    print(
        "| configuration | calls | up | failed set-ups (final responses) | packets sent "
        "| gen pps / target | lost | stored (per node) | clean |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---|:---:|")
    for config in (one, two):
        for s in config.steps:
            codes = ", ".join(f"{k}: {v}" for k, v in sorted(s.codes.items()))
            failed = f"{s.result.get('setup_failed', 0):.0f}" + (f" ({codes})" if codes else "")
            print(
                f"| {config.name} | {s.calls} | {s.up} | {failed} | {s.sent} | "
                f"{s.result.get('achieved_pps', 0):.0f} / {s.result.get('target_pps', 0):.0f} | "
                f"{s.sent - s.received} | {s.stored} {s.per_node} | "
                f"{'yes' if s.clean else 'NO'}{' ' + s.error if s.error else ''} |"
            )
    print(
        "\nThe ratio is bounded by this machine: Kamailio and the generator run on the "
        "nodes' cores, and the one-node run has CPU 1 to itself for them."
    )


async def main(args: argparse.Namespace) -> None:
    build_loadgen()
    effective_nofile()  # the nodes inherit it: a recorded stream is a socket and a spool file
    root = Path(tempfile.mkdtemp(prefix="callvault-cluster-bench-"))
    try:
        one = await measure(root / "one", 1, args)
        two = await measure(root / "two", 2, args)
        print_table(one, two, args)
    finally:
        if args.keep:
            print(f"(data dirs kept: {root})")
        else:
            shutil.rmtree(root, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--window", type=int, default=50, help="set-ups in flight")
    parser.add_argument("--setup-seconds", type=float, default=10.0)
    parser.add_argument(
        "--steps",
        type=lambda text: [int(x) for x in text.split(",") if x.strip()],
        default=[250, 500, 1000],
        help="concurrent calls, comma-separated, in order until one is not clean",
    )
    parser.add_argument("--media-seconds", type=float, default=5.0)
    parser.add_argument(
        "--rate", type=float, default=100.0, help="new calls (and BYEs) per second, media steps"
    )
    parser.add_argument("--finish-timeout", type=float, default=60.0)
    parser.add_argument("--keep", action="store_true", help="keep the data dirs (logs)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    if (os.cpu_count() or 1) < 2:
        print("note: fewer than 2 CPUs; node 2 cannot be pinned to CPU 1")
    asyncio.run(main(parse_args()))
