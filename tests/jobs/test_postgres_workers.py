"""Several worker processes share one PostgreSQL queue: every job runs exactly
once (``FOR UPDATE SKIP LOCKED`` in ``queue.claim``), and a scheduled slot is
created once although every process ticks at the same moment."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Job
from callvault.jobs import queue
from callvault.jobs.registry import JobContext, JobServices, handler
from callvault.jobs.runner import JobRunner, hourly
from callvault.settings import load_settings
from callvault.storage.blobs import LocalBlobStore

JOBS = 200
WORKERS = 4


def _worker(url: str, blob_dir: str, name: str, start: Any) -> None:
    """One worker process: waits for the others, then runs what is due."""
    engine = make_engine(url)
    services = JobServices(
        make_sessionmaker(engine),
        LocalBlobStore(Path(blob_dir)),
        load_settings(),
        clock=lambda: datetime.now(UTC),
    )

    def run(ctx: JobContext) -> dict[str, Any]:
        with ctx.sessions() as session:
            session.execute(
                text("insert into job_runs (job_id, worker) values (:job, :worker)"),
                {"job": ctx.job_id, "worker": name},
            )
            session.commit()
        return {"worker": name}

    handler("test.pg-shared")(run)
    handler("test.pg-hourly")(run)
    runner = JobRunner(services, worker=name, schedules=(hourly("test.pg-hourly"),))
    start.wait(60)
    while runner.run_due():
        pass
    engine.dispose()


def test_worker_processes_share_the_queue_and_run_each_job_once(
    tmp_path: Path, postgres_url: str
) -> None:
    engine = make_engine(postgres_url)
    with engine.begin() as connection:  # a fresh schema for this test
        connection.execute(text("drop schema public cascade; create schema public"))
    migrate(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("create table job_runs (job_id integer, worker text)"))
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        now = datetime.now(UTC)
        ids = [queue.enqueue(session, "test.pg-shared", {"n": n}, at=now).id for n in range(JOBS)]
        session.commit()

    spawn = multiprocessing.get_context("spawn")  # fresh interpreters, as separate servers
    start = spawn.Barrier(WORKERS)
    processes = [
        spawn.Process(
            target=_worker, args=(postgres_url, str(tmp_path / "blobs"), f"worker-{n}", start)
        )
        for n in range(WORKERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * WORKERS

    with sessions() as session:
        runs = Counter(job for (job,) in session.execute(text("select job_id from job_runs")))
        workers = {w for (w,) in session.execute(text("select distinct worker from job_runs"))}
        [slot] = session.scalars(select(Job).where(Job.kind == "test.pg-hourly")).all()
        states = Counter(session.scalars(select(Job.state)))
    assert runs == Counter({**dict.fromkeys(ids, 1), slot.id: 1})  # every job exactly once
    assert states == Counter({"done": JOBS + 1})
    assert len(workers) >= 2  # the work was shared, not done by whoever started first
    engine.dispose()
