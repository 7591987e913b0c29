"""PostgreSQL for the calls report bench (issue 13's figure): a throw-away server and
the calls generated in SQL.

``calls_report.py --database postgresql`` uses this. ``PgServer`` is one server
from Debian's binaries (initdb in a temp dir, loopback port, no fsync), the way
tests/databases.py starts the test suite's; it can be kept (``--keep``) and
started again on the same data directory (``--reuse``) to iterate on queries
without generating again. ``generate`` fills ``calls``, ``call_parties``,
``recordings`` and ``recording_labels`` with ``INSERT ... SELECT`` over
``generate_series``, with the same shape as the SQLite bench's Python generator
(one year, 45/45/10 % in/out/internal over 200 users and 50,000 outside numbers,
30 % recorded, 5 % of those labelled): the server does the work, no row crosses
the socket. The draws are hashes of the row number, so every run makes the same
data. Secondary indexes are dropped while loading and built once after, and the
load runs in the transaction that truncated the tables, so with
``wal_level=minimal`` it writes no WAL.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, create_engine, text

TABLES = ("calls", "call_parties", "recordings", "recording_labels")
# memory for the server: the calls' recent pages and the indexes stay cached
SERVER_SETTINGS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    " -c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=8GB"
    " -c shared_buffers=2GB -c effective_cache_size=8GB -c work_mem=16MB"
    " -c maintenance_work_mem=1GB -c max_parallel_maintenance_workers=2"
)


_INITDB_OPTIONS = ("-U", "callvault", "--auth=trust", "-E", "UTF8")


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise SystemExit(f"{name} not found: install Debian's postgresql package")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PgServer:
    """A running server on ``root``/data; ``url`` names its ``callvault`` database."""

    root: Path
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://callvault@127.0.0.1:{self.port}/callvault"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @classmethod
    def start(cls, root: Path | None = None) -> PgServer:
        """A new cluster in a temp dir, or the one kept in ``root`` (``--reuse``)."""
        fresh = root is None
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="callvault-bench-pg-"))
        as_user: list[str] = []
        if os.geteuid() == 0:  # postgres refuses to run as root
            shutil.chown(root, "postgres")
            as_user = ["runuser", "-u", "postgres", "--"]
        server = cls(root, _free_port(), as_user)
        if fresh:
            subprocess.run(
                [*as_user, _bin("initdb"), "-D", str(server.data), *_INITDB_OPTIONS],
                check=True,
                capture_output=True,
            )
        options = f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 {SERVER_SETTINGS}"
        logged = ("-l", str(root / "log"), "start")
        subprocess.run(
            [*as_user, _bin("pg_ctl"), "-D", str(server.data), "-o", options, "-w", *logged],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    server.stop(remove=fresh)
                    raise
                time.sleep(0.2)
        if fresh:
            admin = create_engine(server.url.rsplit("/", 1)[0] + "/postgres")
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("CREATE DATABASE callvault"))
            admin.dispose()
        return server

    def stop(self, *, remove: bool) -> None:
        subprocess.run(
            [*self.as_user, _bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"],
            capture_output=True,
        )
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)


# rnd(i, k): the k-th uniform draw in [0, 1) of row i, the same on every run
_RND = """
CREATE OR REPLACE FUNCTION pg_temp.rnd(i bigint, k bigint) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT (hashint8extended(i, k) & 140737488355327)::float8 / 140737488355328 $$
"""

# one row per call with its draws (i from 0, oldest first)
_DRAWS = """
SELECT g.i,
       md5(:tenant || ':' || g.i) AS id,
       :end_at - make_interval(secs => :span)
         + make_interval(secs => (g.i + pg_temp.rnd(g.i + :seed, 1)) * :span / :count) AS at,
       1 + floor(pg_temp.rnd(g.i + :seed, 2) * 19)::int AS ring_s,
       5 + floor(pg_temp.rnd(g.i + :seed, 3) * 895)::int AS talk_s,
       1 + floor(pg_temp.rnd(g.i + :seed, 4) * :n_users)::int AS u,
       pg_temp.rnd(g.i + :seed, 5) AS roll,
       '+316' || lpad((hashint8extended(floor(pg_temp.rnd(g.i + :seed, 6) * 50000)::bigint, 99)
                       & 67108863)::text, 8, '0') AS ext,
       1 + floor(pg_temp.rnd(g.i + :seed, 7) * :n_users)::int AS v,
       pg_temp.rnd(g.i + :seed, 8) AS rec,
       pg_temp.rnd(g.i + :seed, 9) AS rec_owner,
       pg_temp.rnd(g.i + :seed, 10) AS lab,
       1 + floor(pg_temp.rnd(g.i + :seed, 11) * 6)::int AS lab_k
FROM generate_series(0, :count - 1) AS g(i)
"""

# the draws turned into the call's two sides: (number, user id) of from and to
_SIDES = f"""
SELECT d.*,
       CASE WHEN d.roll < 0.45 THEN 'inbound' WHEN d.roll < 0.9 THEN 'outbound'
            ELSE 'internal' END AS direction,
       CASE WHEN d.roll < 0.45 THEN d.ext ELSE (CAST(:numbers AS text[]))[d.u] END AS from_number,
       CASE WHEN d.roll < 0.45 THEN NULL ELSE (CAST(:users AS int[]))[d.u] END AS from_user,
       CASE WHEN d.roll < 0.45 THEN (CAST(:numbers AS text[]))[d.u] WHEN d.roll < 0.9 THEN d.ext
            ELSE (CAST(:numbers AS text[]))[d.v] END AS to_number,
       CASE WHEN d.roll < 0.45 THEN (CAST(:users AS int[]))[d.u] WHEN d.roll < 0.9 THEN NULL
            ELSE (CAST(:users AS int[]))[d.v] END AS to_user
FROM ({_DRAWS}) AS d
"""

_CALLS = f"""
INSERT INTO calls (id, tenant_id, sip_call_id, direction, from_name, from_number, from_aor,
                   to_name, to_number, to_aor, started_at, answered_at, ended_at, duration_ms,
                   end_reason)
SELECT s.id, :tenant, s.id || '@pbx', s.direction,
       'Name ' || right(s.from_number, 4), s.from_number, s.from_number || '@pbx.example',
       'Name ' || right(s.to_number, 4), s.to_number, s.to_number || '@pbx.example',
       s.at, s.at + make_interval(secs => s.ring_s),
       s.at + make_interval(secs => s.ring_s + s.talk_s), s.talk_s * 1000, 'bye'
FROM ({_SIDES}) AS s
"""

_PARTIES = f"""
INSERT INTO call_parties (tenant_id, call_id, participant_id, aor, name, number, user_id,
                          side, joined_ms)
SELECT :tenant, s.id, s.id || '-' || p.side, p.number || '@pbx.example', NULL, p.number,
       p.user_id, CASE WHEN p.user_id IS NULL THEN 'other' ELSE 'user' END, 0
FROM ({_SIDES}) AS s
CROSS JOIN LATERAL (VALUES ('a', s.from_number, s.from_user),
                           ('b', s.to_number, s.to_user)) AS p(side, number, user_id)
"""

# recordings of 30 % of the calls, for the user (an internal call: either side)
_RECORDINGS = f"""
INSERT INTO recordings (id, tenant_id, call_id, user_id, blob_key, format, sha256, size_bytes,
                        duration_ms, channels, sample_rate, codecs, started_at, created_at,
                        saved)
SELECT s.id, :tenant, s.id,
       CASE WHEN s.direction = 'internal' AND s.rec_owner >= 0.5 THEN s.to_user
            WHEN s.direction = 'inbound' THEN s.to_user ELSE s.from_user END,
       :tenant || '/' || s.id || '.mp3', 'mp3', repeat('0', 64), s.talk_s * 4000,
       s.talk_s * 1000, 2, 8000, 'PCMU', s.at,
       s.at + make_interval(secs => s.ring_s + s.talk_s), true
FROM ({_SIDES}) AS s
WHERE s.rec < 0.3
"""

_LABELS = f"""
INSERT INTO recording_labels (tenant_id, recording_id, call_id, started_at, text)
SELECT :tenant, d.id, d.id, d.at, (CAST(:labels AS text[]))[d.lab_k]
FROM ({_DRAWS}) AS d
WHERE d.rec < 0.3 AND d.lab < 0.05
"""


def _secondary_indexes(connection: Connection) -> list[tuple[str, str]]:
    """(name, CREATE INDEX) of the four tables' indexes that back no constraint."""
    rows = connection.execute(
        text(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = ANY(:tables)"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
        ),
        {"tables": list(TABLES)},
    )
    return [(str(name), str(sql)) for name, sql in rows]


@dataclass(frozen=True)
class TenantRows:
    """What ``generate`` needs of a seeded tenant: its users and their numbers."""

    tenant_id: int
    user_ids: list[int]
    user_numbers: list[str]
    calls: int


def generate(
    url: str,
    tenants: list[TenantRows],
    labels: list[str],
    *,
    end_at: datetime,
    span_s: int,
    log: bool = True,
) -> None:
    """Fills the four tables for ``tenants`` in one transaction, then VACUUM ANALYZE:
    ``span_s`` seconds of calls up to ``end_at``."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("SET session_replication_role = replica"))  # no FK triggers
        connection.execute(text("SET maintenance_work_mem = '1GB'"))
        connection.execute(text(_RND))
        indexes = _secondary_indexes(connection)
        # truncated in this transaction: with wal_level=minimal the load skips the WAL
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
        for name, _sql in indexes:
            connection.execute(text(f'DROP INDEX "{name}"'))
        for seed, tenant in enumerate(tenants):
            params = {
                "tenant": tenant.tenant_id,
                "count": tenant.calls,
                "seed": seed * 1_000_000_007,
                "end_at": end_at,
                "span": span_s,
                "n_users": len(tenant.user_ids),
                "users": tenant.user_ids,
                "numbers": tenant.user_numbers,
                "labels": labels,
            }
            for what, sql in (
                ("calls", _CALLS),
                ("parties", _PARTIES),
                ("recordings", _RECORDINGS),
                ("labels", _LABELS),
            ):
                began = time.perf_counter()
                connection.execute(text(sql), params)
                if log:
                    print(
                        f"  tenant {tenant.tenant_id}: {what} in "
                        f"{time.perf_counter() - began:.1f} s",
                        flush=True,
                    )
        began = time.perf_counter()
        for _name, sql in indexes:
            connection.execute(text(sql))
        if log:
            print(f"  {len(indexes)} indexes in {time.perf_counter() - began:.1f} s", flush=True)
    engine.dispose()
    began = time.perf_counter()
    vacuum_analyze(url)
    if log:
        print(f"  VACUUM ANALYZE in {time.perf_counter() - began:.1f} s", flush=True)


def vacuum_analyze(url: str) -> None:
    """VACUUM ANALYZE of the four tables: statistics, and the visibility map that
    lets index-only scans skip the table."""
    engine = create_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"VACUUM (ANALYZE, INDEX_CLEANUP ON) {', '.join(TABLES)}"))
    engine.dispose()


def database_size(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        size = connection.scalar(text("SELECT pg_database_size(current_database())"))
    engine.dispose()
    return int(size or 0)
