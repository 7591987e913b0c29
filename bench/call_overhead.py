"""Per-call overhead of recording a call, outside decoding and encoding (issue 12).

Issue 12's goal: "per-call overhead (database, files, process hand-off) at most
10 ms". This bench finishes N very short calls (1 s, two G.711 streams, a
recorded user under an "always" policy) through the real pipeline as the server
runs it: each spool is written by ``SpoolWriter`` as capture writes it, then
``Finisher.submit`` (``recording/pipeline.py``) for every call at once, as
hang-ups queue them: the journal summary on the event loop, the process
hand-off to the finisher pool (forkserver, nice 10, ``SCHED_BATCH``),
``finish_all`` in the worker, the database writer's batched transaction
(a fresh SQLite file; ``--database postgresql``: a throw-away PostgreSQL 15
from ``bench/calls_report_pg.py``, fsync off, its processes' CPU counted; or
``--database-url``), the MP3 blob (``LocalBlobStore.put``: written and
fsynced) and the spool's removal.

Each part is timed where it runs, CPU and wall:

- spool files: ``SpoolWriter`` (directory, journal lines, stream files, close),
  the packets' bytes prepared beforehand (their appends are capture's per-packet
  cost, not per-call);
- event loop: this process's CPU minus the database writer thread's (journal
  summary, futures, pickling to and from the pool);
- worker hand-off: the pool worker's CPU (``/proc``) minus ``finish_all`` of the
  same spools timed in this process beforehand (unpickling, pickling the results,
  the executor);
- database: the writer thread's CPU and wall minus what the blob and removal took;
- MP3 blob: ``blobs.put`` (CPU and wall; wall includes the fsync);
- spool removal: after the commit, ``ReadySpools.recycle`` (a later call's spool, or removed).

``finish_all`` itself (decode, timeline, policy, mix, LAME) is reported beside it
for scale, with LAME alone on the same audio. Run:
``python bench/call_overhead.py [--calls 200 --seconds 1 --database postgresql]``
(pinned to one CPU, as the server's core is shared with capture).
"""

from __future__ import annotations

# first: importing callvault keeps numpy's BLAS to one thread, as in the finisher's worker
import callvault  # noqa: F401

# isort: split
import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.media.codec import Codec
from callvault.media.codecs import ALAW_TABLE, ULAW_TABLE, encode_pcma, encode_pcmu
from callvault.media.rtp import RtpPacket
from callvault.recording.finisher import finish_all
from callvault.recording.journal import Answer, End, StreamLayout, parse_event
from callvault.recording.mp3 import encode_mp3
from callvault.recording.pipeline import Finisher
from callvault.recording.ready_spools import DEPTH as SPOOLS_AHEAD
from callvault.recording.ready_spools import ReadySpools
from callvault.recording.spool import RECORD_HEADER, SpoolReader, SpoolWriter
from callvault.storage.blobs import LocalBlobStore
from callvault.tenants.service import create_tenant, create_user

R = TypeVar("R")
STARTED_AT = 1_700_000_000_000


@dataclass
class Clock:
    """CPU (of the calling thread) and wall seconds spent in one part."""

    cpu: float = 0.0
    wall: float = 0.0
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def time(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with self.lock:
                self.cpu += time.thread_time() - cpu
                self.wall += time.perf_counter() - wall
                self.calls += 1


@dataclass
class Call:
    uuid: str
    streams: list[bytes]  # each stream file's records, as capture buffers them
    left: npt.NDArray[np.int16]
    right: npt.NDArray[np.int16]


def make_call(seconds: float, tenant_id: int, user_id: int, seed: int) -> Call:
    """A recorded two-stream G.711 call: tones either side, 20 ms packets with jitter."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 8000) // 160 * 160
    t = np.arange(n) / 8000
    payloads = [
        encode_pcmu((8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)),
        encode_pcma((8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)),
    ]
    streams = []
    for index, (pt, payload) in enumerate(((0, payloads[0]), (8, payloads[1]))):
        records = bytearray()
        jitter = rng.integers(0, 30, size=n // 160)
        for k in range(n // 160):
            packet = bytes(
                RtpPacket(
                    pt,
                    k & 0xFFFF,
                    (k * 160) & 0xFFFFFFFF,
                    0x1000 + index,
                    payload[k * 160 : (k + 1) * 160],
                )
            )
            records += RECORD_HEADER.pack(100 + k * 20 + int(jitter[k]), len(packet)) + packet
        streams.append(bytes(records))
    left = ULAW_TABLE[np.frombuffer(payloads[0], dtype=np.uint8)]
    right = ALAW_TABLE[np.frombuffer(payloads[1], dtype=np.uint8)]
    return Call(uuid.uuid4().hex, streams, left, right)


def _start(call: Call, tenant_id: int, user_id: int) -> dict[str, Any]:
    streams = [
        StreamLayout(0, "user", {0: Codec("PCMU", 8000)}, "left", participant_id="pu"),
        StreamLayout(1, "other", {8: Codec("PCMA", 8000)}, "right", participant_id="po"),
    ]
    parties = [
        {"participant_id": "pu", "aor": "sip:101@alpha.example", "name": "Anna",
         "number": None, "user_id": user_id, "side": "user"},
        {"participant_id": "po", "aor": "sip:+31201234567@trunk.example", "name": None,
         "number": "+31201234567", "user_id": None, "side": "other"},
    ]  # fmt: skip
    return {
        "type": "start",
        "t": 0,
        "call_uuid": call.uuid,
        "sip_call_id": f"{call.uuid}@bench",
        "started_at": STARTED_AT,
        "streams": [s.to_dict() for s in streams],
        "parties": parties,
        "tenant_id": tenant_id,
        "recorded_user_id": user_id,
        "policy": {
            "short_code": "*1",
            "pause_mode": "cut",
            "channels": "both",
            "modes": {str(user_id): "always"},
            "contacts": {},
        },
    }


def write_spool(directory: Path, call: Call, tenant_id: int, user_id: int, seconds: float) -> None:
    """The spool as capture writes it: journal events, stream buffers flushed, closed."""
    writer = SpoolWriter(directory)
    writer.record(parse_event(_start(call, tenant_id, user_id)))
    writer.record(Answer(t=100))
    for index, records in enumerate(call.streams):
        writer.stream(index).buffer.extend(records)
    writer.flush()
    writer.record(End(t=100 + int(seconds * 1000), reason="bye"))
    writer.close()


def _proc_cpu(pid: int) -> float:
    """utime + stime of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_cpu(data: Path | None) -> float:
    """CPU of a PostgreSQL server's processes (postmaster and its children), seconds."""
    if data is None:
        return 0.0
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    return sum(_proc_cpu(pid) for pid in [postmaster, *map(int, children)])


def _pool_cpu(finisher: Finisher) -> float:
    processes = getattr(finisher.pool, "_processes", None) or {}
    return sum(_proc_cpu(pid) for pid in processes)


async def run(args: argparse.Namespace, root: Path) -> None:
    url = args.database_url or f"sqlite:///{root / 'db.sqlite'}"
    migrate(url)
    sessions = make_sessionmaker(make_engine(url))
    with sessions() as session:
        tenant = create_tenant(session, f"Bench {uuid.uuid4().hex[:8]}", [], [])
        user = create_user(session, tenant, "Anna", extension="101", recorded=True)
        session.commit()
        tenant_id, user_id = tenant.id, user.id
    blobs = LocalBlobStore(root / "blobs")
    spool_root = root / "spool"
    spool_root.mkdir()

    calls = [make_call(args.seconds, tenant_id, user_id, k) for k in range(args.calls + 1)]
    warm, calls = calls[0], calls[1:]

    # spool files, as capture writes them
    spooling = Clock()
    for call in [warm, *calls]:
        spooling.time(write_spool, spool_root / call.uuid, call, tenant_id, user_id, args.seconds)
    spooling = Clock()  # the warm-up call's spool is not counted
    for call in calls:
        directory = spool_root / call.uuid
        # written again, timed, into a fresh directory: the first pass warmed the code
        os.rename(directory, root / f"{call.uuid}.first")
        spooling.time(write_spool, directory, call, tenant_id, user_id, args.seconds)

    # finish_all of the same spools in this process, and LAME alone on their audio
    finishing, lame = Clock(), Clock()
    finish_all(SpoolReader(spool_root / warm.uuid))
    for call in calls:
        finishing.time(finish_all, SpoolReader(spool_root / call.uuid))
        lame.time(encode_mp3, call.left, call.right, 8000, 32)

    # the pipeline, its parts timed where they run
    store, blob, removal = Clock(), Clock(), Clock()
    finisher = Finisher(spool_root, sessions, blobs)
    store_batch = finisher._store_batch
    setattr(finisher, "_store_batch", lambda batch: store.time(store_batch, batch))  # noqa: B010
    put = blobs.put
    setattr(blobs, "put", lambda key, data: blob.time(put, key, data))  # noqa: B010
    # what a server does with a stored call's spool: recycled as a later call's while
    # fewer than 2 x DEPTH wait, else removed (recording/ready_spools.py)
    spools = ReadySpools(spool_root, SPOOLS_AHEAD)
    finisher.done_with_spool = lambda directory: removal.time(spools.recycle, directory)
    try:
        await finisher.submit(warm.uuid)  # starts the worker (imports, tables)
        store.__init__(), blob.__init__(), removal.__init__()  # type: ignore[misc]
        worker_before, server_before = _pool_cpu(finisher), _server_cpu(args.server_data)
        cpu, wall = time.process_time(), time.perf_counter()
        ids = await asyncio.gather(*(finisher.submit(call.uuid) for call in calls))
        wall = time.perf_counter() - wall
        parent = time.process_time() - cpu
        worker = _pool_cpu(finisher) - worker_before
        server = _server_cpu(args.server_data) - server_before
    finally:
        finisher.close()
        spools.close()
    stored = sum(1 for i in ids if i is not None)
    leftover = sum(1 for call in calls if (spool_root / call.uuid).exists())
    report(args, calls, stored, leftover, wall, parent, worker, server, spooling, finishing, lame,
           store, blob, removal)  # fmt: skip


def report(
    args: argparse.Namespace,
    calls: list[Call],
    stored: int,
    leftover: int,
    wall: float,
    parent: float,
    worker: float,
    server: float,
    spooling: Clock,
    finishing: Clock,
    lame: Clock,
    store: Clock,
    blob: Clock,
    removal: Clock,
) -> None:
    n = len(calls)

    def ms(seconds: float) -> str:
        return f"{seconds * 1000 / n:.2f}"

    database_cpu = store.cpu - blob.cpu - removal.cpu
    database_wall = store.wall - blob.wall - removal.wall
    event_loop = parent - store.cpu
    hand_off = worker - finishing.cpu
    rows = [
        ("spool files at capture (SpoolWriter: directory, journal, streams, close)",
         spooling.cpu, spooling.wall),
        ("event loop: journal summary, queueing, pickling to/from the pool", event_loop, None),
        ("pool worker outside finish_all (unpickle, pickle results, executor)", hand_off, None),
        ("database rows (writer thread, batched transaction)", database_cpu, database_wall),
        *([("database server (PostgreSQL processes, /proc)", server, None)] if server else []),
        ("MP3 blob (LocalBlobStore.put, fsync)", blob.cpu, blob.wall),
        ("spool recycled (or removed) after the commit", removal.cpu, removal.wall),
    ]  # fmt: skip
    total_cpu = sum(cpu for _, cpu, _ in rows)
    out = sys.stdout
    database = (args.database_url or "sqlite").split(":", 1)[0]
    out.write(
        f"{n} calls of {args.seconds:g} s (two G.711 streams, policy 'always'), {database}; "
        f"stored {stored}/{n}, spools left {leftover}; pipeline wall {wall:.2f} s "
        f"({n / wall:.0f} calls/s)\n\n"
    )
    out.write("| per call | CPU ms | wall ms |\n|:---|---:|---:|\n")
    for name, cpu, part_wall in rows:
        out.write(f"| {name} | {ms(cpu)} | {'' if part_wall is None else ms(part_wall)} |\n")
    out.write(f"| **overhead, total** (goal <= 10 ms) | **{ms(total_cpu)}** | |\n")
    out.write(f"| the pool worker's CPU, all of it (/proc, 10 ms ticks) | {ms(worker)} | |\n")
    out.write(f"| for scale: finish_all (decode, policy, mix, LAME) | {ms(finishing.cpu)} | "
              f"{ms(finishing.wall)} |\n")  # fmt: skip
    out.write(f"| for scale: LAME alone, same audio | {ms(lame.cpu)} | {ms(lame.wall)} |\n")


def main() -> None:
    parser = argparse.ArgumentParser(description="per-call overhead of the finishing pipeline")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=1.0, help="call length")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="a fresh SQLite file, or a throw-away PostgreSQL server (bench/calls_report_pg.py)",
    )
    parser.add_argument("--database-url", help="an existing database instead")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    server = None
    if args.database == "postgresql" and not args.database_url:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # ``bench`` next door
        from bench.calls_report_pg import PgServer

        server = PgServer.start()
        args.database_url = server.url
    args.server_data = None if server is None else server.data
    try:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(args, Path(tmp)))
    finally:
        if server is not None:
            server.stop(remove=True)


if __name__ == "__main__":
    main()
