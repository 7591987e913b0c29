"""Reports › Calls at scale: API latency of the calls list over a big SQLite or
PostgreSQL database.

Run: ``python bench/calls_report.py`` (200,000 calls, quick) or
``python bench/calls_report.py --calls 1000000`` (the figure SPEC section 11
asks for), ``--database postgresql --calls 10000000`` for issue 13's figure
(a throw-away PostgreSQL server, ``bench/calls_report_pg.py``; ``--keep`` keeps
it, ``--reuse DIR`` times again on the kept one). Builds a fresh database in a
temp dir: one tenant with
``--calls`` calls, a second tenant with a tenth of that, two parties per call,
about 30% recorded, some recordings labelled; then serves the app in-process
(FastAPI ``TestClient``) and prints p50/p95/p99 per query, for an admin (the
whole tenant) and for a listener (own calls and the team's). No assertions:
this prints a table, it is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

BENCH = Path(__file__).resolve().parent
if str(BENCH.parent) not in sys.path:  # run as a script: ``bench`` is the package next door
    sys.path.insert(0, str(BENCH.parent))

from bench.calls_report_pg import (  # noqa: E402
    PgServer,
    TenantRows,
    database_size,
    generate,
    vacuum_analyze,
)

from callvault.admin import bootstrap_operator, create_tenant, create_user  # noqa: E402
from callvault.db.engine import make_engine, make_sessionmaker, migrate  # noqa: E402
from callvault.db.models import Team, TeamMember  # noqa: E402
from callvault.portal.app import create_app  # noqa: E402
from callvault.portal.auth import issue_token  # noqa: E402
from callvault.portal.context import PortalContext  # noqa: E402
from callvault.storage.blobs import LocalBlobStore  # noqa: E402

USERS_PER_TENANT = 200
TEAM_SIZE = 10
LABELS = ["sales", "support", "complaint", "training", "escalation", "vip"]
END = datetime(2026, 11, 1, tzinfo=UTC)
SPAN_S = 365 * 24 * 3600  # one year of calls
BATCH = 50_000
FMT = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime in SQLite


@dataclass
class Seeded:
    tenant_id: int
    admin_token: str
    listener_token: str
    user_ids: list[int]
    user_numbers: list[str]
    labelled: str  # a label in use


def _seed_accounts(url: str, name: str, index: int) -> Seeded:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        bootstrap_operator(session)
        tenant = create_tenant(
            session,
            name,
            [f"{name.lower()}.example"],
            [f"+3120{index}000000"],
            blocks=[f"+3120{index}*"],  # the users' numbers lie in the tenant's block
        )
        users = []
        numbers = []
        for n in range(USERS_PER_TENANT):
            number = f"+3120{index}{n + 1:06d}"
            role = "admin" if n == 0 else "listener" if n % TEAM_SIZE == 1 else "user"
            users.append(
                create_user(
                    session,
                    tenant,
                    f"User {n}",
                    extension=str(1000 + n),
                    numbers=[number],
                    role=role,
                    recorded=True,
                )
            )
            numbers.append(number)
        for t in range(USERS_PER_TENANT // TEAM_SIZE):
            team = Team(tenant_id=tenant.id, name=f"Team {t}")
            session.add(team)
            session.flush()
            for k in range(TEAM_SIZE):
                member = users[t * TEAM_SIZE + k]
                session.add(
                    TeamMember(
                        tenant_id=tenant.id,
                        team_id=team.id,
                        user_id=member.id,
                        is_lead=member.role == "listener",
                    )
                )
        admin_token = issue_token(session, "bench-admin", user=users[0])
        listener_token = issue_token(session, "bench-listener", user=users[1])
        session.commit()
        seeded = Seeded(
            tenant.id, admin_token, listener_token, [u.id for u in users], numbers, "escalation"
        )
    engine.dispose()
    return seeded


def _rows(
    rng: random.Random, tenant: Seeded, count: int
) -> Iterator[
    tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], list[Any]]
]:
    """Batches of (calls, parties, recordings, labels), calls in time order."""
    step = SPAN_S / count
    start = END - timedelta(seconds=SPAN_S)
    externals = [f"+316{rng.randrange(10**8):08d}" for _ in range(50_000)]
    calls: list[tuple[Any, ...]] = []
    parties: list[tuple[Any, ...]] = []
    recordings: list[tuple[Any, ...]] = []
    labels: list[tuple[Any, ...]] = []
    tid = tenant.tenant_id
    n_users = len(tenant.user_ids)
    for i in range(count):
        call_id = rng.randbytes(16).hex()
        at = start + timedelta(seconds=i * step + rng.random() * step)
        answer = at + timedelta(seconds=rng.randrange(1, 20))
        talk = rng.randrange(5, 900)
        end = answer + timedelta(seconds=talk)
        u = rng.randrange(n_users)
        uid, unum = tenant.user_ids[u], tenant.user_numbers[u]
        roll = rng.random()
        ext = externals[rng.randrange(len(externals))]
        frm: tuple[str, int | None]  # (number, user id or none for an outside number)
        to: tuple[str, int | None]
        other_uid: int | None
        if roll < 0.45:
            direction, frm, to, other_uid = "inbound", (ext, None), (unum, uid), None
        elif roll < 0.9:
            direction, frm, to, other_uid = "outbound", (unum, uid), (ext, None), None
        else:
            v = rng.randrange(n_users)
            direction = "internal"
            frm, to = (unum, uid), (tenant.user_numbers[v], tenant.user_ids[v])
            other_uid = tenant.user_ids[v]
        calls.append(
            (
                call_id,
                tid,
                f"{call_id}@pbx",
                direction,
                f"Name {frm[0][-4:]}",
                frm[0],
                f"{frm[0]}@pbx.example",
                f"Name {to[0][-4:]}",
                to[0],
                f"{to[0]}@pbx.example",
                at.strftime(FMT),
                answer.strftime(FMT),
                end.strftime(FMT),
                talk * 1000,
                "bye",
            )
        )
        for side, (number, party_uid) in (("a", frm), ("b", to)):
            parties.append(
                (
                    tid,
                    call_id,
                    f"{call_id}-{side}",
                    f"{number}@pbx.example",
                    None,
                    number,
                    party_uid,
                    "user" if party_uid is not None else "other",
                    0,
                )
            )
        if rng.random() < 0.3:
            recordings.append(
                (
                    call_id,
                    tid,
                    call_id,
                    uid if other_uid is None or rng.random() < 0.5 else other_uid,
                    f"{tid}/{call_id}.mp3",
                    "mp3",
                    "0" * 64,
                    talk * 4000,
                    talk * 1000,
                    2,
                    8000,
                    "PCMU",
                    at.strftime(FMT),
                    end.strftime(FMT),
                    1,
                )
            )
            if rng.random() < 0.05:
                # the recording has the call's id; the label copies it and its start
                label = LABELS[rng.randrange(len(LABELS))]
                labels.append((tid, call_id, call_id, at.strftime(FMT), label))
        if len(calls) >= BATCH:
            yield calls, parties, recordings, labels
            calls, parties, recordings, labels = [], [], [], []
    if calls:
        yield calls, parties, recordings, labels


def build(path: Path, calls: int) -> tuple[Seeded, Seeded]:
    url = f"sqlite:///{path}"
    migrate(url)
    big = _seed_accounts(url, "Big", 1)
    small = _seed_accounts(url, "Small", 2)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    tables = ("calls", "call_parties", "recordings", "recording_labels")
    # drop the indexes while loading, then build them once: much faster than
    # keeping five B-trees in order row by row
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL "
        f"AND tbl_name IN ({','.join('?' * len(tables))})",
        tables,
    ).fetchall()
    for name, _sql in indexes:
        db.execute(f'DROP INDEX "{name}"')
    rng = random.Random(7)
    for tenant, count in ((big, calls), (small, max(1, calls // 10))):
        for c, p, r, lab in _rows(rng, tenant, count):
            db.executemany(
                "INSERT INTO calls (id, tenant_id, sip_call_id, direction, from_name, "
                "from_number, from_aor, to_name, to_number, to_aor, started_at, answered_at, "
                "ended_at, duration_ms, end_reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                c,
            )
            db.executemany(
                "INSERT INTO call_parties (tenant_id, call_id, participant_id, aor, name, "
                "number, user_id, side, joined_ms) VALUES (?,?,?,?,?,?,?,?,?)",
                p,
            )
            db.executemany(
                "INSERT INTO recordings (id, tenant_id, call_id, user_id, blob_key, format, "
                "sha256, size_bytes, duration_ms, channels, sample_rate, codecs, started_at, "
                "created_at, saved) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                r,
            )
            db.executemany(
                "INSERT INTO recording_labels (tenant_id, recording_id, call_id, started_at, "
                "text) VALUES (?,?,?,?,?)",
                lab,
            )
            db.commit()
    for _name, sql in indexes:
        db.execute(sql)
    db.commit()
    db.close()
    return big, small


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    qs = statistics.quantiles(samples, n=100, method="inclusive")
    return qs[49], qs[94], qs[98]


def build_postgres(url: str, calls: int) -> Seeded:
    """Migrates, seeds both tenants' accounts, generates their calls in SQL."""
    migrate(url)
    big = _seed_accounts(url, "Big", 1)
    small = _seed_accounts(url, "Small", 2)
    generate(
        url,
        [
            TenantRows(t.tenant_id, t.user_ids, t.user_numbers, count)
            for t, count in ((big, calls), (small, max(1, calls // 10)))
        ],
        LABELS,
        end_at=END,
        span_s=SPAN_S,
    )
    return big


def time_queries(url: str, blobs: Path, big: Seeded, requests: int, depth_max: int) -> None:
    """The table: each filter, for an admin and for a listener, through the API."""
    engine = make_engine(url)
    app = create_app(PortalContext(make_sessionmaker(engine), LocalBlobStore(blobs)))
    base = f"/api/v1/tenants/{big.tenant_id}/calls"
    period = {"from": "2026-03-01T00:00:00Z", "to": "2026-06-01T00:00:00Z"}
    member = big.user_ids[5]  # in the listener's team (users 0..9)
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for who in ("admin", "listener"):
        rows += [
            (who, "first page", {}),
            (who, "deep page", {"_deep": True}),
            (who, "direction + period", {"direction": "inbound", **period}),
            (who, "number", {"number": big.user_numbers[5]}),
            (who, "label", {"label": big.labelled}),
            (who, "user", {"user_id": member}),
            (who, "recorded", {"recorded": "true"}),
        ]
    tokens = {"admin": big.admin_token, "listener": big.listener_token}
    print(f"load average before: {_load()}")
    print("\n| who | query | rows | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|---|")
    with TestClient(app) as client:
        for who, name, params in rows:
            headers = {"Authorization": f"Bearer {tokens[who]}"}
            query = {"limit": 50} | {k: v for k, v in params.items() if not k.startswith("_")}
            if params.get("_deep"):
                depth = 0
                for _ in range(depth_max):
                    page = client.get(base, params=query, headers=headers).json()
                    if not page["next_cursor"]:
                        break
                    query["cursor"] = page["next_cursor"]
                    depth += 1
                name = f"deep page ({depth} pages in)"
            got = client.get(base, params=query, headers=headers)
            assert got.status_code == 200, got.text
            count = len(got.json()["items"])
            samples = []
            for _ in range(requests):
                t0 = time.perf_counter()
                client.get(base, params=query, headers=headers)
                samples.append((time.perf_counter() - t0) * 1000)
            p50, p95, p99 = _percentiles(samples)
            print(f"| {who} | {name} | {count} | {p50:.1f} | {p95:.1f} | {p99:.1f} |", flush=True)
    print(f"\nload average after: {_load()}")
    engine.dispose()


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls of the big tenant")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per row")
    parser.add_argument("--depth", type=int, default=200, help="pages walked for the deep page")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--reuse", type=Path, help="postgresql: time again on a kept server directory"
    )
    args = parser.parse_args(argv)
    if args.database == "postgresql":
        return _main_postgres(args)
    directory = Path(tempfile.mkdtemp(prefix="callvault-bench-"))
    path = directory / "db.sqlite"
    began = time.perf_counter()
    big, _small = build(path, args.calls)
    size = os.path.getsize(path) / 1e6
    print(
        f"built {args.calls:,} + {max(1, args.calls // 10):,} calls in "
        f"{time.perf_counter() - began:.1f} s ({size:.0f} MB)",
        flush=True,
    )
    time_queries(f"sqlite:///{path}", directory / "blobs", big, args.requests, args.depth)
    if args.keep:
        print(f"\nkept {path}")
    else:
        shutil.rmtree(directory)
    return 0


def _main_postgres(args: argparse.Namespace) -> int:
    server = PgServer.start(args.reuse)
    seeded = server.root / "seeded.json"
    blobs = Path(tempfile.mkdtemp(prefix="callvault-bench-blobs-"))
    try:
        if args.reuse is not None:
            big = Seeded(**json.loads(seeded.read_text()))
            print(f"reusing {server.root}", flush=True)
            # kept by an older checkout: its schema brought to head (backfills and
            # indexes at this size are part of what a migration is measured by)
            began = time.perf_counter()
            migrate(server.url)
            vacuum_analyze(server.url)  # as after generating (and as autovacuum would)
            print(f"migrated to head in {time.perf_counter() - began:.1f} s", flush=True)
        else:
            began = time.perf_counter()
            big = build_postgres(server.url, args.calls)
            seeded.write_text(json.dumps(big.__dict__))
            print(
                f"built {args.calls:,} + {max(1, args.calls // 10):,} calls in "
                f"{time.perf_counter() - began:.1f} s "
                f"({database_size(server.url) / 1e6:.0f} MB)",
                flush=True,
            )
        time_queries(server.url, blobs, big, args.requests, args.depth)
    finally:
        server.stop(remove=not args.keep)
        shutil.rmtree(blobs, ignore_errors=True)
    if args.keep:
        print(f"\nkept {server.root}: --reuse {server.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
