"""How fast a bulk download is written, against the disk itself (issue 8 section 3).

For each size (MB): a month of MP3-like blobs (random bytes: MP3 does not
compress either, and the export stores rather than deflates) is seeded into a
fresh data directory, the export job runs in a child process, and then two
peers write into the same directory:

* ``dd if=/dev/zero bs=1M conv=fdatasync``: as many bytes as the export's
  ZIPs, from nothing (the raw disk write speed of the issue);
* ``cat <every recording's blob> > out`` followed by ``fdatasync(out)``: the
  same recordings copied, read from where the export reads them. It is the
  fairer peer (the export reads real files), and the export can at best
  match it: what it adds is the ZIP, the CRC-32 and two SHA-256 passes.

All count their flush to disk (the export fsyncs every ZIP part before it is
recorded) and are timed from start to exit; each MB/s is its own bytes over
its own seconds. Peak RSS is the export child's own (``os.wait4``;
``getrusage(RUSAGE_CHILDREN)`` would report the largest of all children so
far). The goal: the export at 80 % or more of dd, with the same peak RSS at
every size. The disk of a shared machine is noisy: ``--rounds`` repeats each
size (fresh data each round) so that one slow second does not decide, and
each measurement starts ``--settle`` seconds after a ``sync`` so that it does
not pay for the one before (a virtual disk's host may still be writing when
fsync has returned).

The source blobs were just written, so they are probably read from the page
cache, by the export and by cat alike: this measures the writing side, which
is what the disk bounds.

    python bench/export_speed.py                   # 200 MB and 1 GB
    python bench/export_speed.py --sizes 1000,10000 --dir /var/tmp --rounds 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

MB = 1_000_000
MIB = 1 << 20
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def seed(data_dir: Path, total_mb: int, recording_mb: float) -> list[Path]:
    """A tenant with ``total_mb`` of recordings in November 2026 and its queued export;
    the recordings' blob files."""
    from callvault.admin import create_tenant, create_user
    from callvault.db.engine import make_engine, make_sessionmaker, migrate
    from callvault.db.models import Call, Recording
    from callvault.exports.request import request_export
    from callvault.settings import load_settings
    from callvault.storage.blobs import LocalBlobStore

    settings = load_settings(data_dir=data_dir)
    migrate(settings.db_url)
    engine = make_engine(settings.db_url)
    sessions = make_sessionmaker(engine)
    blobs = LocalBlobStore(settings.blob_dir)
    size = int(recording_mb * MB)
    count = max(1, total_mb * MB // size)
    paths: list[Path] = []
    with sessions() as session:
        tenant = create_tenant(session, "Bench", ["bench.example"], ["+31201110000"])
        tenant.retention_days, tenant.bulk_download = 180, True
        user = create_user(session, tenant, "Agent", extension="100", role="admin", recorded=True)
        for n in range(count):
            started = datetime(2026, 11, 1, 8, tzinfo=UTC) + timedelta(minutes=10 * n)
            call = Call(
                tenant_id=tenant.id,
                sip_call_id=f"bench-{n}",
                direction="inbound",
                from_number="+31201234567",
                to_number="+31201110000",
                started_at=started,
                answered_at=started,
                ended_at=started + timedelta(minutes=5),
                duration_ms=300_000,
            )
            session.add(call)
            session.flush()
            key = f"{tenant.id}/{call.id}.mp3"
            path = blobs.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            paths.append(path)
            digest = hashlib.sha256()
            with open(path, "wb") as fh:
                left = size
                while left:
                    chunk = os.urandom(min(MIB, left))
                    digest.update(chunk)
                    fh.write(chunk)
                    left -= len(chunk)
            session.add(
                Recording(
                    id=call.id,
                    tenant_id=tenant.id,
                    call_id=call.id,
                    user_id=user.id,
                    blob_key=key,
                    sha256=digest.hexdigest(),
                    size_bytes=size,
                    duration_ms=300_000,
                    channels=2,
                    sample_rate=8000,
                    started_at=started,
                )
            )
        session.flush()
        request_export(
            session,
            tenant,
            month="2026-11",
            user_ids=None,
            requested_by=user.id,
            actor=f"user:{user.id}",
            at=NOW,
        )
        session.commit()
    engine.dispose()
    subprocess.run(["sync"], check=False)  # the seeding's dirty pages are not the export's
    return paths


def child(data_dir: Path) -> None:
    """Run the queued export; print its seconds and bytes as JSON."""
    import callvault.exports.job  # noqa: F401  (registers the handlers)
    from callvault.db.engine import make_engine, make_sessionmaker
    from callvault.db.models import Export
    from callvault.jobs.registry import JobServices
    from callvault.jobs.runner import JobRunner
    from callvault.settings import load_settings
    from callvault.storage.blobs import LocalBlobStore

    settings = load_settings(data_dir=data_dir)
    engine = make_engine(settings.db_url)
    sessions = make_sessionmaker(engine)
    runner = JobRunner(
        JobServices(sessions, LocalBlobStore(settings.blob_dir), settings, lambda: NOW)
    )
    began = time.perf_counter()
    runner.run_due()
    seconds = time.perf_counter() - began
    with sessions() as session:
        [export] = session.query(Export).all()
        result = {
            "seconds": seconds,
            "bytes": export.bytes_total,
            "state": export.state,
            "error": export.error,
            "parts": len(export.files),
            "recordings": export.recordings,
        }
    print(json.dumps(result))


def run_child(data_dir: Path) -> tuple[dict[str, Any], int]:
    """The export's result (the child's JSON) and the child's peak RSS in KiB."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    out = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"the export child failed ({process.returncode})")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss


def dd_speed(directory: Path, total_bytes: int) -> float:
    """MB/s of dd writing ``total_bytes`` with fdatasync, timed to its exit."""
    target = directory / "dd.bin"
    count = max(1, round(total_bytes / MIB))
    began = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={count}", "conv=fdatasync"],
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - began
    target.unlink()
    return count * MIB / MB / seconds


def settle(seconds: float) -> None:
    """Let the disk finish what came before: a virtual disk's host may still be writing
    when fsync has returned, and the next measurement would pay for it."""
    subprocess.run(["sync"], check=False)
    time.sleep(seconds)


def cat_speed(directory: Path, sources: list[Path]) -> float:
    """MB/s of cat copying ``sources`` into one file, fdatasync included."""
    target = directory / "cat.bin"
    began = time.perf_counter()
    with open(target, "wb") as out:
        subprocess.run(["cat", *map(str, sources)], stdout=out, check=True)
        os.fdatasync(out.fileno())
    seconds = time.perf_counter() - began
    size = target.stat().st_size
    target.unlink()
    return size / MB / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="200,1000", help="MB per month, comma-separated")
    parser.add_argument("--recording-mb", type=float, default=5.0, help="size of one recording")
    parser.add_argument("--part-mb", type=int, default=2000, help="export_part_max_bytes in MB")
    parser.add_argument("--dir", type=Path, default=Path("."), help="where the data dirs go")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds between runs")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each size")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)  # export_part_max_bytes comes in the environment
        return
    os.environ["CALLVAULT_EXPORT_PART_MAX_BYTES"] = str(args.part_mb * MB)
    rows = []
    for total_mb in (int(s) for s in args.sizes.split(",")):
        for _round in range(args.rounds):
            data_dir = Path(tempfile.mkdtemp(prefix="export-bench-", dir=args.dir))
            try:
                sources = seed(data_dir, total_mb, args.recording_mb)
                settle(args.settle)
                result, rss_kib = run_child(data_dir)
                if result["state"] != "ready":
                    raise SystemExit(f"export {result['state']}: {result['error']}")
                export_mbs = float(result["bytes"]) / MB / float(result["seconds"])
                settle(args.settle)
                disk_mbs = dd_speed(data_dir, int(result["bytes"]))
                settle(args.settle)
                copy_mbs = cat_speed(data_dir, sources)
                rows.append((total_mb, result, export_mbs, disk_mbs, copy_mbs, rss_kib))
            finally:
                if not args.keep:
                    shutil.rmtree(data_dir, ignore_errors=True)
    print(
        f"{'MB':>7} {'recs':>6} {'parts':>5} {'export MB/s':>12} {'dd MB/s':>9} {'cat MB/s':>9} "
        f"{'/dd':>5} {'/cat':>5} {'peak RSS MiB':>13}"
    )
    for total_mb, result, export_mbs, disk_mbs, copy_mbs, rss_kib in rows:
        print(
            f"{total_mb:>7} {result['recordings']:>6} {result['parts']:>5} {export_mbs:>12.1f} "
            f"{disk_mbs:>9.1f} {copy_mbs:>9.1f} {export_mbs / disk_mbs:>5.0%} "
            f"{export_mbs / copy_mbs:>5.0%} {rss_kib / 1024:>13.1f}"
        )

if __name__ == "__main__":
    main()
