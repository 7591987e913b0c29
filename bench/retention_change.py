"""The retention slider at scale (issue 8 section 2): one UPDATE over a tenant's recordings.

Run: ``python bench/retention_change.py`` (1,000,000 recordings of one tenant
in a fresh SQLite database) or ``--count 100000`` for a quick figure;
``--postgres postgresql+psycopg://...`` measures the same on a PostgreSQL
database (its tables are created by the migrations; the rows are removed
afterwards). A second tenant holds a tenth as many recordings, untouched.
Each slider move is ``retention.rule.recompute_expiry`` in its own
transaction, timed with its commit. No assertions: this prints a table.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, delete, func, insert, select

from callvault.admin import create_tenant
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Call, Recording, Tenant
from callvault.retention.rule import recompute_expiry

BATCH = 20_000
START = datetime(2025, 1, 1, tzinfo=UTC)


def _rows(
    tenant_id: int, call_id: str, count: int, prefix: str
) -> Iterator[list[dict[str, object]]]:
    batch: list[dict[str, object]] = []
    for n in range(count):
        started = START + timedelta(seconds=n * 29)
        batch.append(
            {
                "id": f"{prefix}{n:031x}"[-32:],
                "tenant_id": tenant_id,
                "call_id": call_id,
                "blob_key": f"{tenant_id}/{n}.mp3",
                "format": "mp3",
                "sha256": "0" * 64,
                "size_bytes": 240_000,
                "duration_ms": 60_000,
                "channels": 2,
                "sample_rate": 8000,
                "codecs": "PCMA",
                "started_at": started,
                "created_at": started,
                "expires_at": started + timedelta(days=7),
                "saved": n % 50 != 0,  # 2% unsaved Playback: left alone
            }
        )
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def seed(engine: Engine, count: int) -> tuple[int, float]:
    sessions = make_sessionmaker(engine)
    began = time.perf_counter()
    with sessions() as session:
        tenant = create_tenant(session, f"bench-{time.time_ns()}", [], [])
        other = create_tenant(session, f"bench-other-{time.time_ns()}", [], [])
        calls = []
        for t in (tenant, other):
            call = Call(tenant_id=t.id, sip_call_id=f"bench-{t.id}", direction="inbound")
            call.started_at = START
            session.add(call)
            calls.append(call)
        session.commit()
        for t, call, n, prefix in (
            (tenant, calls[0], count, "a"),
            (other, calls[1], count // 10, "b"),
        ):
            for batch in _rows(t.id, call.id, n, prefix):
                session.execute(insert(Recording), batch)
        session.commit()
        return tenant.id, time.perf_counter() - began


def measure(engine: Engine, tenant_id: int) -> list[tuple[str, float, int]]:
    sessions = make_sessionmaker(engine)
    out = []
    for days, when in ((180, datetime(2026, 3, 29, 10, tzinfo=UTC)), (30, None), (60, None)):
        with sessions() as session:
            tenant = session.get(Tenant, tenant_id)
            assert tenant is not None
            tenant.retention_days = days
            at = when or datetime.now(UTC)
            began = time.perf_counter()
            rows = recompute_expiry(session, tenant, at)
            session.commit()
            out.append((f"slider -> {days} days", time.perf_counter() - began, rows))
    return out


def cleanup(engine: Engine, tenant_id: int) -> None:
    with make_sessionmaker(engine)() as session:
        session.execute(delete(Recording).where(Recording.tenant_id >= tenant_id))
        session.execute(delete(Call).where(Call.tenant_id >= tenant_id))
        session.execute(delete(Tenant).where(Tenant.id >= tenant_id))
        session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1_000_000, help="recordings of the tenant")
    parser.add_argument("--postgres", metavar="URL", help="measure on this PostgreSQL database")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="callvault-retention-bench-"))
    url = args.postgres or f"sqlite:///{workdir / 'bench.sqlite'}"
    try:
        migrate(url)
        engine = make_engine(url)
        tenant_id, seeded = seed(engine, args.count)
        with engine.connect() as db:
            total = db.scalar(select(func.count()).select_from(Recording))
        print(f"database: {engine.dialect.name}; {total:,} recordings, seeded in {seeded:.1f} s")
        print(f"{'step':<24} {'seconds':>9} {'rows':>10} {'rows/s':>12}")
        for step, seconds, rows in measure(engine, tenant_id):
            print(f"{step:<24} {seconds:>9.2f} {rows:>10,} {rows / seconds:>12,.0f}")
        if args.postgres:
            cleanup(engine, tenant_id)
        engine.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
