"""The purge on PostgreSQL: the same run, crash and recovery as on SQLite (``UPDATE ...
RETURNING``, the partial index, a crashed run's receipt found again by its instant)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from callvault.db.models import Job
from callvault.jobs import queue
from callvault.retention.purge import purge
from tests.retention.purge_world import make_world
from tests.retention.test_purge import DAY, FailingOnce


def _fresh_database(server_url: str) -> str:
    name = f"purge_{secrets.token_hex(4)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def test_purge_crash_and_recovery_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    world = make_world(tmp_path, _fresh_database(postgres_url))
    first = world.recording("a", "anna", started=-9 * DAY, expires=-2 * DAY)
    second = world.recording("b", "bob", started=-9 * DAY, expires=-DAY)
    alive = world.recording("a", "arie", started=-DAY, expires=DAY)
    runner = world.runner(FailingOnce(world.blobs.root))
    with world.sessions() as session:
        queue.enqueue(session, "retention.purge", at=world.clock.now)
        session.commit()
    assert runner.run_due() == 1
    with world.sessions() as session:
        assert session.query(Job).one().state == "queued"  # the crash: retried later
    world.clock.now += queue.backoff(1) + timedelta(seconds=1)
    assert runner.run_due() == 1
    assert not world.has_blob(first) and not world.has_blob(second) and world.has_blob(alive)
    receipts = world.receipts()
    assert all(r.finished_at is not None for r in receipts)
    listed = sorted(str(line["recording_id"]) for r in receipts for line in world.receipt_lines(r))
    assert listed == sorted([first, second])
    assert purge(world.sessions, world.blobs, world.clock.now)["expired"] == 0
