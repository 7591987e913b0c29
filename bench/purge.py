"""The retention purge at scale: recordings per second, blob deletion included.

Run: ``python bench/purge.py`` (100,000 expired recordings, a few minutes at
most) or ``python bench/purge.py --n 1000000`` (the figure issue 8 asks for).
Builds a fresh SQLite database and a local blob store in a temp dir: ``--n``
expired recordings of ``--tenants`` tenants, each with a small real blob file
(``--size`` bytes), plus as many unexpired ones that must stay. Then times
one purge run (``retention.purge.purge``: select, mark, receipt, delete) and,
in the same run on the same disk, ``find DIR -type f -delete`` of the same
number of files of the same size, and prints both and their ratio. No
assertions beyond a sanity check that every expired blob went: this prints a
table, it is not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from callvault.admin import create_tenant, create_user
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.retention.purge import BATCH, purge
from callvault.storage.blobs import LocalBlobStore

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
FMT = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime in SQLite
INSERT_BATCH = 50_000


def _seed(url: str, root: Path, n: int, keep: int, tenants: int, size: int) -> None:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    owners: list[tuple[int, int]] = []
    with sessions() as session:
        for t in range(tenants):
            tenant = create_tenant(session, f"Bench {t}", [f"t{t}.bench.example"], [])
            user = create_user(session, tenant, f"User {t}", extension="100", recorded=True)
            session.flush()
            owners.append((tenant.id, user.id))
        session.commit()
    engine.dispose()
    body = os.urandom(size)
    digest = hashlib.sha256(body).hexdigest()
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    total = n + keep
    for start in range(0, total, INSERT_BATCH):
        calls, recordings = [], []
        for i in range(start, min(total, start + INSERT_BATCH)):
            tenant_id, user_id = owners[i % tenants]
            rid = f"r{i:012d}"
            started = NOW - timedelta(days=200, seconds=i)
            expires = NOW - timedelta(days=1) if i < n else NOW + timedelta(days=30)
            key = f"{tenant_id}/{i // 1000:04d}/{rid}.mp3"
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            (root / key).write_bytes(body)
            at = started.strftime(FMT)
            calls.append((rid, tenant_id, f"sip-{i}", "inbound", at, 30_000))
            recordings.append(
                (
                    rid,
                    tenant_id,
                    rid,
                    user_id,
                    key,
                    "mp3",
                    digest,
                    size,
                    30_000,
                    2,
                    8000,
                    "PCMU",
                    at,
                    at,
                    1,
                    expires.strftime(FMT),
                )
            )
        db.executemany(
            "INSERT INTO calls (id, tenant_id, sip_call_id, direction, started_at, duration_ms) "
            "VALUES (?,?,?,?,?,?)",
            calls,
        )
        db.executemany(
            "INSERT INTO recordings (id, tenant_id, call_id, user_id, blob_key, format, sha256, "
            "size_bytes, duration_ms, channels, sample_rate, codecs, started_at, created_at, "
            "saved, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            recordings,
        )
        db.commit()
    db.execute("ANALYZE")
    db.commit()
    db.close()


def _files(root: Path, n: int, size: int) -> None:
    body = os.urandom(size)
    for i in range(n):
        path = root / f"{i // 1000:04d}" / f"f{i:012d}.mp3"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)


def _drop_caches_hint() -> None:
    os.sync()  # both timings start with nothing dirty in the page cache


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="expired recordings")
    parser.add_argument("--keep", type=int, default=None, help="unexpired (default n/10)")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--size", type=int, default=4096, help="bytes per blob")
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--dir", type=Path, default=None, help="work here (default: a temp dir)")
    args = parser.parse_args(argv)
    keep = args.n // 10 if args.keep is None else args.keep
    work = Path(tempfile.mkdtemp(prefix="callvault-purge-", dir=args.dir))
    try:
        url = f"sqlite:///{work / 'db.sqlite'}"
        migrate(url)
        blobs_root = work / "blobs"
        t = time.perf_counter()
        _seed(url, blobs_root, args.n, keep, args.tenants, args.size)
        _files(work / "plain", args.n, args.size)
        seeded = time.perf_counter() - t
        print(
            f"seeded {args.n:,} expired + {keep:,} kept recordings, {args.tenants} tenants, "
            f"{args.size} B blobs, and {args.n:,} plain files in {seeded:.1f} s",
            flush=True,
        )

        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        blobs = LocalBlobStore(blobs_root)
        _drop_caches_hint()
        t = time.perf_counter()
        result = purge(sessions, blobs, NOW, batch=args.batch)
        purge_s = time.perf_counter() - t
        again = purge(sessions, blobs, NOW)
        engine.dispose()
        left = sum(1 for _ in blobs_root.rglob("*.mp3"))
        assert result["expired"] == args.n and left == keep, (result, left)
        assert again["expired"] == 0

        _drop_caches_hint()
        t = time.perf_counter()
        subprocess.run(["find", str(work / "plain"), "-type", "f", "-delete"], check=True)
        rm_s = time.perf_counter() - t

        rows = [
            ("purge (select, mark, receipt, delete blobs)", purge_s, args.n / purge_s),
            ("find -delete (the same number of files)", rm_s, args.n / rm_s),
        ]
        print(f"\n{'what':<46} {'seconds':>9} {'per second':>12}")
        for name, seconds, rate in rows:
            print(f"{name:<46} {seconds:>9.2f} {rate:>12,.0f}")
        print(
            f"\npurge / find -delete throughput: {rm_s / purge_s:.2f} "
            f"(1.00 would be as fast as deleting the files alone)"
        )
        print(
            f"receipts: {len(result['receipts'])} (one per tenant), "
            f"{result['bytes']:,} bytes of audio deleted, batch {args.batch}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
