"""B2BUA capacity on one core: concurrent bridged, recorded calls; added one-way latency.

Run: ``python bench/b2bua.py`` (defaults: 50, 100, 200, 400, 800 calls, 10 s
of media each). Issue 10's figures for mode 2 (SPEC section 2): concurrent
B2BUA calls per core with recording and zero loss, and the one-way latency
callvault adds (p50, p99), for whole bridged calls: SIP through the B2BUA,
media through its relay, recorded, finished to MP3 and stored.
``bench/relay.py`` measures the bare relay; this measures what runs in
production.

For each step N, a fresh ``callvault serve`` is pinned to CPU 0 (temp data
dir, SQLite), seeded like the B2BUA tests (``tests/b2bua/harness.py``): tenant
Bench with the recorded user ``agent@bench.example`` (mode ``always``, the
legal notice accepted), a ``pbx`` source 127.0.0.2/32 and a ``trunk`` source
127.0.0.3/32 (limits at their ceilings), and a call route from the PBX ("" →
the callee's UA). On CPU 1:

* this driver (uvloop, callvault's own ``SipEndpoint``): the caller's UA on
  127.0.0.2 places N calls from ``agent@bench.example`` to ``+3120<i>``
  (``--setup-rate`` per second); the callee's UA on 127.0.0.3 answers each
  INVITE callvault sends it with 200 and SDP. It measures set-up time
  (INVITE → 200 at the caller, through both legs);
* ``bench/bin/rtpgen`` (``bench/rtpgen.c``) binds each call's two RTP
  sockets (the caller's on 127.0.0.2, the callee's on 127.0.0.3; their ports
  are the ones the SDP offers and answers name) and, once every call is up and
  the start prompt and the user's tone have played (``--settle``), sends both
  directions of every call for D seconds: 20 ms, 160-byte PCMU, the send
  time and a marker in the payload. It receives what callvault relays and
  measures the one-way latency (send → receive through callvault). The
  relay's own audio (prompts, tones) carries no marker and is not counted.

Then the caller BYEs every call (callvault BYEs the callee), and the step
waits until every recording is finished (``callvault_spool_pending`` 0 and
``callvault_recordings_stored_total`` N) and checks the database: each
call's row, its recording row and the MP3 in the blob store.

Per step it prints relayed packets and loss (sent by rtpgen − received by
rtpgen after a 2 s drain), the packets the recording captured (the relay's
tap, ``callvault_rtp_packets_received_total``), per-socket UDP drops of the
server, server CPU over the media phase (``/proc/<pid>/stat``: % of its core,
per call, per relayed packet), latency p50/p99, memory per call (RSS), set-up
p50/p99, calls stored, finishing time. Steps stop at the first one that is
not clean; the highest clean N is the figure.

All traffic is on loopback; every wait has a deadline. Nothing asserts on
timings: it prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:  # run as a script: ``bench`` is the package next door
    sys.path.insert(0, str(ROOT))

from bench import relay as relay_bench  # noqa: E402
from bench import run_recorder as rr  # noqa: E402

SERVER_CPU = rr.SERVER_CPU
DRIVER_CPU = rr.LOADGEN_CPU
CALLER_HOST = "127.0.0.2"  # the PBX side: the recorded user
CALLEE_HOST = "127.0.0.3"  # the trunk side: the other party
USER_AOR = "agent@bench.example"
CALL_ID_PREFIX = "b2bua-bench-"
PACKETS_PER_STREAM_S = 50  # 20 ms ptime


# -- seeding ----------------------------------------------------------------------------
def seed(data_dir: Path, callee_port: int, announce: bool) -> None:
    """Tenant Bench, the recorded user, the two leg sources and the PBX's route."""
    from callvault import admin
    from callvault.b2bua.route_store import add_route
    from callvault.db.engine import make_engine, make_sessionmaker, migrate
    from callvault.sources.registry import LIMIT_BOUNDS, SourceLimits
    from callvault.sources.store import SourceSpec, add_source

    url = f"sqlite:///{data_dir.resolve() / 'callvault.db'}"
    migrate(url)
    engine = make_engine(url)
    most = SourceLimits(**{name: high for name, (_low, high) in LIMIT_BOUNDS.items()})
    with make_sessionmaker(engine)() as session:
        tenant = admin.create_tenant(session, "Bench", ["bench.example"], [])
        admin.create_user(
            session,
            tenant,
            "Agent",
            extension="100",
            aors=[USER_AOR],
            recorded=True,
            mode="always",
        )
        admin.enable_feature(session, tenant, reference="bench")
        boss = admin.create_user(session, tenant, "Bench Admin", extension="101", role="admin")
        admin.accept_legal_notice(session, tenant, boss, "load benchmark")
        # the shipped defaults announce start and stop; --no-announce measures without
        tenant.announce_start = announce
        tenant.announce_stop = announce
        sources = {}
        for name, kind, host in (("pbx", "pbx", CALLER_HOST), ("trunk", "trunk", CALLEE_HOST)):
            sources[name] = add_source(
                session,
                SourceSpec(
                    name=name,
                    networks=[f"{host}/32"],
                    tenant_ids=[tenant.id],
                    kind=kind,
                    limits=most,
                ),
                created_by="bench",
            )
        session.flush()
        add_route(
            session,
            tenant_id=tenant.id,
            source_id=sources["pbx"].id,
            prefix="",
            target=f"sip:{CALLEE_HOST}:{callee_port};transport=udp",
            created_by="bench",
        )
        session.commit()
    engine.dispose()


# -- the two user agents ------------------------------------------------------------------
def sdp_offer(host: str, port: int) -> bytes:
    return (
        f"v=0\r\no=bench 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
    ).encode()


def media_target(body: bytes) -> tuple[str, int]:
    from callvault.sip.sdp import parse_sdp

    audio = next(m for m in parse_sdp(body).media if m.media == "audio")
    if audio.connection is None:
        raise ValueError("SDP without a connection address")
    return audio.connection, audio.port


@dataclass
class Agents:
    """The caller's UA (127.0.0.2) and the callee's (127.0.0.3), one RTP pair per call."""

    calls: int
    a_ports: list[int] = field(default_factory=list)  # rtpgen's sockets: the caller's
    b_ports: list[int] = field(default_factory=list)  # the callee's
    a_targets: dict[int, tuple[str, int]] = field(default_factory=dict)  # callvault's, per call
    b_targets: dict[int, tuple[str, int]] = field(default_factory=dict)
    dialogs: dict[int, Any] = field(default_factory=dict)
    setup_ms: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    last_answer: float = 0.0
    byes_ok: int = 0
    callee_byes: int = 0
    caller: Any = None
    callee: Any = None

    def fail(self, why: str) -> None:
        self.failures[why] = self.failures.get(why, 0) + 1

    def callee_handler(self, request: Any) -> None:
        message = request.message
        if message.method == "ACK":
            return
        if message.method == "INVITE":
            user = message.uri.user or ""
            try:
                index = int(user.removeprefix("+3120"))
                self.b_targets[index] = media_target(bytes(message.body or b""))
            except (ValueError, StopIteration) as exc:
                self.fail(f"callee: {exc}")
                request.respond(488)
                return
            request.respond(
                200,
                headers=[("Contact", f"<sip:bob@{CALLEE_HOST}:{self.callee.udp_port}>")],
                body=sdp_offer(CALLEE_HOST, self.b_ports[index]),
                content_type="application/sdp",
            )
            return
        if message.method == "BYE":
            self.callee_byes += 1
        request.respond(200)

    async def call(self, index: int, server: tuple[str, int], tag: str) -> None:
        from sipmessage import URI, Request

        from callvault.sip.dialog import Dialog

        number = f"+3120{index:07d}"
        invite = Request(method="INVITE", uri=URI.parse(f"sip:{number}@trunk.example"))
        h = invite.headers
        h.add("From", f"<sip:{USER_AOR}>;tag=a{index}")
        h.add("To", f"<sip:{number}@trunk.example>")
        h.add("Call-ID", f"{CALL_ID_PREFIX}{tag}-{index}@{CALLER_HOST}")
        h.add("CSeq", "1 INVITE")
        h.add("Contact", f"<sip:agent@{CALLER_HOST}:{self.caller.udp_port}>")
        h.add("Content-Type", "application/sdp")
        invite.body = sdp_offer(CALLER_HOST, self.a_ports[index])
        started = time.monotonic()
        try:
            response = await self.caller.request(invite, server)
        except (TimeoutError, OSError) as exc:
            self.fail(type(exc).__name__)
            return
        if response.code != 200:
            self.fail(f"INVITE {response.code}")
            return
        self.setup_ms.append((time.monotonic() - started) * 1e3)
        dialog = Dialog.from_outgoing_invite(invite, response)
        self.caller.send_ack(response, dialog)
        self.a_targets[index] = media_target(bytes(response.body or b""))
        self.dialogs[index] = dialog
        self.last_answer = time.monotonic()

    async def bye(self, index: int, server: tuple[str, int]) -> None:
        bye = self.dialogs[index].create_request("BYE")
        try:
            response = await self.caller.request(bye, server)
        except (TimeoutError, OSError) as exc:
            self.fail(f"BYE {type(exc).__name__}")
            return
        if response.code == 200:
            self.byes_ok += 1
        else:
            self.fail(f"BYE {response.code}")


async def paced(count: int, rate: float, window: int, one: Any) -> None:
    """``one(i)`` for i < count, ``rate`` new ones per second, at most ``window`` open."""
    gate = asyncio.Semaphore(window)
    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic()

    async def run(i: int) -> None:
        try:
            await one(i)
        finally:
            gate.release()

    for i in range(count):
        await gate.acquire()
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(run(i)))
    await asyncio.gather(*tasks)


def answer_ok(request: Any) -> None:
    """The caller's UA: whatever callvault asks in the dialog is fine."""
    if request.message.method != "ACK":
        request.respond(200)


@contextlib.asynccontextmanager
async def user_agents(calls: int) -> AsyncIterator[Agents]:
    from callvault.sip.endpoint import SipEndpoint

    agents = Agents(calls)
    agents.caller = SipEndpoint(answer_ok)
    agents.callee = SipEndpoint(agents.callee_handler)
    await agents.caller.listen(CALLER_HOST, 0, None)
    await agents.callee.listen(CALLEE_HOST, 0, None)
    try:
        yield agents
    finally:
        await agents.caller.close()
        await agents.callee.close()


# -- one step -------------------------------------------------------------------------------
@dataclass
class Step:
    calls: int
    up: int = 0
    setup_p50_ms: float = 0.0
    setup_p99_ms: float = 0.0
    sent: int = 0
    relayed: int = 0
    other: int = 0  # the relay's own packets (prompts, tones) during media
    captured: int = 0
    p50_us: int = 0
    p99_us: int = 0
    cpu_pct: float = 0.0
    others_pct: float = 0.0  # CPU 0 busy with other processes (a shared host)
    cpu_us_per_packet: float = 0.0
    socket_drops: int = 0
    host_drops: dict[str, int] = field(default_factory=dict)
    rss_idle_kib: int = 0
    rss_up_kib: int = 0
    rss_media_kib: int = 0
    byes_ok: int = 0
    stored: int = 0
    in_db: int = 0
    blobs_ok: int = 0
    finish_s: float = 0.0
    finished: bool = False
    gen: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    error: str = ""

    @property
    def loss(self) -> int:
        return self.sent - self.relayed

    @property
    def capture_loss(self) -> int:
        return self.sent - self.captured

    def lossless(self) -> bool:
        """Every call up, relayed, recorded, ended and stored; nothing dropped."""
        return (
            not self.error
            and self.up == self.calls
            and self.sent > 0
            and self.loss == 0
            and self.capture_loss == 0
            and self.socket_drops == 0
            and self.byes_ok == self.calls
            and self.finished
            and self.in_db == self.calls
            and self.blobs_ok == self.calls
        )

    def clean(self, max_p99_ms: float) -> bool:
        """Lossless, and the relay kept up: a relay that falls behind loses nothing
        while its socket buffers last (seconds), but its callers hear the delay."""
        return self.lossless() and self.p99_us <= max_p99_ms * 1e3


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu0_busy_s() -> float:
    """Seconds CPU 0 was busy (/proc/stat), whoever ran on it."""
    for line in Path("/proc/stat").read_text().splitlines():
        f = line.split()
        if f[0] == f"cpu{SERVER_CPU}":
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f[1:9])
            return (user + nice + system + irq + softirq + steal) / rr.CLK_TCK
    return 0.0


def check_database(data_dir: Path, tag: str) -> tuple[int, int]:
    """(calls with a recording row, recordings whose MP3 is in the blob store)."""
    db = sqlite3.connect(f"file:{data_dir / 'callvault.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT c.id, r.blob_key, r.size_bytes FROM calls c JOIN recordings r "
            "ON r.call_id = c.id WHERE c.sip_call_id LIKE ?",
            (f"{CALL_ID_PREFIX}{tag}-%",),
        ).fetchall()
    finally:
        db.close()
    blobs = data_dir / "blobs"
    with_blob = sum(1 for _, key, size in rows if size > 0 and (blobs / key).is_file())
    return len({call for call, _, _ in rows}), with_blob


class RtpGen:
    """bench/bin/rtpgen on CPU 1: the callers' and callees' RTP, both directions."""

    def __init__(self, calls: int, duration: int) -> None:
        cmd = ["taskset", "-c", DRIVER_CPU, str(relay_bench.RTPGEN), "--pairs", str(calls)]
        cmd += ["--rate", str(calls * 2 * PACKETS_PER_STREAM_S), "--duration", str(duration)]
        cmd += ["--bind-a", CALLER_HOST, "--bind-b", CALLEE_HOST]
        self.target_host = ""
        self.cmd = cmd
        self.proc: subprocess.Popen[str] | None = None
        self.lines: relay_bench.Lines | None = None

    def start(self, target_host: str) -> list[int]:
        self.proc = subprocess.Popen(
            [*self.cmd, "--target-host", target_host],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=rr.raise_nofile,
        )
        self.lines = relay_bench.Lines(self.proc)
        return [int(p) for p in self.lines.expect("PORTS", 30).split()[1:]]

    def send(self, line: str) -> None:
        assert self.proc is not None
        relay_bench.send_line(self.proc, line)

    def expect(self, prefix: str, timeout: float) -> str:
        assert self.lines is not None
        return self.lines.expect(prefix, timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def run_step(calls: int, args: argparse.Namespace) -> Step:
    step = Step(calls)
    tag = secrets.token_hex(3)
    data_dir = Path(tempfile.mkdtemp(prefix="callvault-b2bua-bench-"))
    server = rr.Server(data_dir, finish_workers=1)
    gen = RtpGen(calls, args.duration)
    low, high = rr.rtp_range()
    try:
        async with user_agents(calls) as agents:
            await asyncio.to_thread(seed, data_dir, agents.callee.udp_port, args.announce)
            await asyncio.to_thread(server.start)
            sip = ("127.0.0.1", server.sip_port)
            await asyncio.sleep(1.0)  # forkserver, imports: then the idle RSS
            step.rss_idle_kib = rr.proc_rss_kib(server.pid)
            ports = await asyncio.to_thread(gen.start, "127.0.0.1")
            agents.a_ports, agents.b_ports = ports[0::2], ports[1::2]

            await paced(
                calls, args.setup_rate, args.setup_window, lambda i: agents.call(i, sip, tag)
            )
            step.up = len(agents.dialogs)
            step.setup_p50_ms = percentile(agents.setup_ms, 0.5)
            step.setup_p99_ms = percentile(agents.setup_ms, 0.99)
            step.failures = dict(agents.failures)
            if step.up < calls:
                raise RuntimeError(f"{calls - step.up} calls not set up: {agents.failures}")
            hosts = {h for h, _ in agents.a_targets.values()} | {
                h for h, _ in agents.b_targets.values()
            }
            if hosts != {"127.0.0.1"}:
                raise RuntimeError(f"callvault's media on {hosts}, rtpgen sends to 127.0.0.1")
            targets = []
            for i in range(calls):
                targets += [agents.a_targets[i][1], agents.b_targets[i][1]]
            gen.send("TARGETS " + " ".join(map(str, targets)))
            await asyncio.to_thread(gen.expect, "PHASE primed", 30)
            # the start prompt to the callee and the tone to the user replace the
            # other side's audio while they play: media starts once they are over
            wait = agents.last_answer + args.settle - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            step.rss_up_kib = rr.proc_rss_kib(server.pid)
            m0 = await asyncio.to_thread(server.metrics)
            udp0 = rr.udp_counters()
            drops0 = rr.rtp_socket_queues(low, high)[2]
            cpu0, t0, core0 = rr.proc_cpu_s(server.pid), time.monotonic(), cpu0_busy_s()
            gen.send("go")
            await asyncio.to_thread(gen.expect, "PHASE media_done", args.duration + 60)
            cpu1, t1, core1 = rr.proc_cpu_s(server.pid), time.monotonic(), cpu0_busy_s()
            step.rss_media_kib = rr.proc_rss_kib(server.pid)
            gen.send("go")  # rtpgen drains 2 s: a relay running late is not loss
            result = await asyncio.to_thread(gen.expect, "RESULT", 60)
            step.gen = rr.keyvalues(result)
            m1 = await asyncio.to_thread(server.metrics)
            step.host_drops = rr.udp_drops(udp0, rr.udp_counters())
            step.socket_drops = rr.rtp_socket_queues(low, high)[2] - drops0
            step.sent = int(step.gen["sent"])
            step.relayed = int(step.gen["received"])
            step.other = int(step.gen.get("other", 0))
            step.p50_us = int(step.gen["p50_us"])
            step.p99_us = int(step.gen["p99_us"])
            key = "callvault_rtp_packets_received_total"
            step.captured = int(m1.get(key, 0) - m0.get(key, 0))
            step.cpu_pct = 100 * (cpu1 - cpu0) / max(1e-6, t1 - t0)
            step.others_pct = max(0.0, 100 * (core1 - core0) / max(1e-6, t1 - t0) - step.cpu_pct)
            step.cpu_us_per_packet = (cpu1 - cpu0) / max(1, step.relayed) * 1e6

            await paced(calls, args.setup_rate * 2, args.setup_window, lambda i: agents.bye(i, sip))
            step.byes_ok = agents.byes_ok
            deadline = time.monotonic() + 30
            while agents.callee_byes < calls and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            step.failures = dict(agents.failures)
            if agents.callee_byes < calls:
                step.failures["callee not BYEd"] = calls - agents.callee_byes
        step.finished, step.finish_s, m = await asyncio.to_thread(
            server.wait_finished, calls, args.finish_timeout
        )
        step.stored = int(m.get("callvault_recordings_stored_total", 0))
        step.in_db, step.blobs_ok = check_database(data_dir, tag)
    except (TimeoutError, RuntimeError, OSError, KeyError) as exc:
        step.error = f"{type(exc).__name__}: {exc}"
        print(f"  step {calls}: {step.error}\n  server log:\n{server.log_tail()}", flush=True)
    finally:
        gen.stop()
        await asyncio.to_thread(server.stop)
        if args.keep:
            print(f"  (data dir kept: {data_dir})")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return step


# -- the table --------------------------------------------------------------------------------
def print_table(steps: list[Step], args: argparse.Namespace) -> None:
    announce = "start/stop prompts on" if args.announce else "prompts off (user tone only)"
    print(
        f"\nConcurrent bridged calls (B2BUA, recorded, {announce}), callvault on CPU "
        f"{SERVER_CPU}, caller/callee UAs and RTP on CPU {DRIVER_CPU}; "
        f"{args.duration} s of two-way G.711 per step"
    )
    print(
        "| calls | set-up p50 / p99 | pkts sent | relayed | loss | recorded (tap) | "
        "prompt/tone pkts heard | UDP drops: server sockets; host rcvbuf/in/noport/softnet | "
        "latency p50 / p99 | server CPU (CPU 0 others) | CPU per call | CPU per pkt | "
        "RSS/call (up / media) | "
        "BYE 200 | stored / in DB / MP3 | finish | clean |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for s in steps:
        d = s.host_drops
        up = max(1, s.up)
        print(
            f"| {s.calls} | {s.setup_p50_ms:.1f} / {s.setup_p99_ms:.1f} ms | {s.sent} | "
            f"{s.relayed} | {s.loss} | {s.captured} | {s.other} | {s.socket_drops}; "
            f"{d.get('RcvbufErrors', 0)}/{d.get('InErrors', 0)}/{d.get('NoPorts', 0)}/"
            f"{d.get('SoftnetDropped', 0)} | {s.p50_us / 1e3:.2f} / {s.p99_us / 1e3:.2f} ms | "
            f"{s.cpu_pct:.0f}% ({s.others_pct:.0f}%) | {s.cpu_pct / up:.3f}% | "
            f"{s.cpu_us_per_packet:.1f} µs | "
            f"{(s.rss_up_kib - s.rss_idle_kib) / up:.0f} / "
            f"{(s.rss_media_kib - s.rss_idle_kib) / up:.0f} KiB | {s.byes_ok} | "
            f"{s.stored} / {s.in_db} / {s.blobs_ok} | {s.finish_s:.1f} s | "
            f"{'yes' if s.clean(args.max_p99_ms) else 'NO'} |"
        )
    for s in steps:
        if s.error or s.failures:
            print(f"  step {s.calls}: {s.error} {s.failures or ''}")
        late = s.gen.get("late_ticks", 0)
        if late:
            print(
                f"  step {s.calls}: rtpgen's late 1 ms ticks {late:.0f}, "
                f"{s.gen.get('pps', 0):.0f} pps"
            )
    print(
        f"clean: all up, zero loss relayed and recorded, no drops, every call BYEd and "
        f"stored with its MP3, and latency p99 <= {args.max_p99_ms:g} ms"
    )
    for label, good in (
        ("zero loss, every call stored", [s for s in steps if s.lossless()]),
        (
            f"clean (also p99 <= {args.max_p99_ms:g} ms)",
            [s for s in steps if s.clean(args.max_p99_ms)],
        ),
    ):
        if not good:
            print(f"\nHighest N {label}: none")
            continue
        best = max(good, key=lambda s: s.calls)
        per_core = best.calls / max(1e-6, best.cpu_pct / 100)
        print(
            f"\nHighest N {label}: {best.calls} (server CPU {best.cpu_pct:.0f}%, "
            f"{best.cpu_pct / max(1, best.calls):.3f}% of a core per call: about {per_core:.0f} "
            f"calls at 100%); latency p50 {best.p50_us / 1e3:.2f} ms, "
            f"p99 {best.p99_us / 1e3:.2f} ms"
        )
    print(f"host load average (1 min) at the end: {os.getloadavg()[0]:.2f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument(
        "--steps",
        default="50,100,200,400,800",
        help="comma-separated call counts, run in order until one is not clean",
    )
    p.add_argument("--duration", type=int, default=10, help="seconds of media per step")
    p.add_argument("--setup-rate", type=float, default=100.0, help="new calls per second")
    p.add_argument("--setup-window", type=int, default=100, help="INVITEs open at once")
    p.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="seconds after the last answer before media (the start prompt is up to 2.5 s)",
    )
    p.add_argument(
        "--no-announce",
        dest="announce",
        action="store_false",
        help="the tenant's start/stop prompts off (the user's tone still plays)",
    )
    p.add_argument(
        "--max-p99-ms",
        type=float,
        default=50.0,
        help="a step is clean only if the added one-way latency's p99 is at most this",
    )
    p.add_argument("--finish-timeout", type=float, default=600.0)
    p.add_argument("--keep", action="store_true", help="keep the data directories")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs 2 CPUs (callvault on CPU 0, the load on CPU 1)")
    for host in (CALLER_HOST, CALLEE_HOST):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))  # Linux routes all of 127/8 to lo; say so early if not
    relay_bench.build_rtpgen()
    os.sched_setaffinity(0, {int(DRIVER_CPU)})  # this driver and its UAs off callvault's core
    nofile = rr.effective_nofile()
    import uvloop

    steps: list[Step] = []
    for calls in (int(x) for x in args.steps.split(",") if x.strip()):
        if calls * rr.FDS_PER_CALL + 500 > nofile:
            print(f"-- {calls} calls skipped: RLIMIT_NOFILE {nofile} is too low")
            break
        print(f"-- {calls} bridged calls x {args.duration} s ...", flush=True)
        step = uvloop.run(run_step(calls, args))
        steps.append(step)
        print(
            f"   sent {step.sent} relayed {step.relayed} loss {step.loss} "
            f"recorded {step.captured} latency p50/p99 {step.p50_us}/{step.p99_us} µs "
            f"CPU {step.cpu_pct:.0f}% stored {step.stored} in DB {step.in_db} "
            f"finish {step.finish_s:.1f} s",
            flush=True,
        )
        if not step.clean(args.max_p99_ms):
            break
    print_table(steps, args)
    given = " ".join(argv if argv is not None else sys.argv[1:])
    print(f"\n(command: python bench/b2bua.py {given})".rstrip())
    return 0 if steps and steps[0].clean(args.max_p99_ms) else 1


if __name__ == "__main__":
    sys.exit(main())
