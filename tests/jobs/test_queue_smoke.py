"""The job queue's core: enqueue, claim, retry with backoff, run once per slot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Job
from callvault.jobs import queue
from callvault.jobs.registry import HANDLERS, JobContext, JobServices, RetryLater, handler
from callvault.jobs.runner import JobRunner, daily
from callvault.settings import load_settings
from callvault.storage.blobs import LocalBlobStore


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_failing_job_is_retried_after_its_backoff_and_a_slot_runs_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    sessions = make_sessionmaker(make_engine(url))
    clock = Clock()
    runs: list[int] = []

    @handler("test.flaky")
    def flaky(ctx: JobContext) -> dict[str, Any]:
        runs.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RetryLater("mail server said 451")
        ctx.progress(1, 1, "sent")
        return {"ok": True}

    try:
        services = JobServices(
            sessions, LocalBlobStore(tmp_path / "blobs"), load_settings(), clock=clock
        )
        runner = JobRunner(services, schedules=(daily("test.flaky"),))
        assert runner.run_due() == 1  # the day's slot, first attempt fails
        assert runner.run_due() == 0  # not due yet: backoff
        clock.now += queue.backoff(1) + timedelta(seconds=1)
        assert runner.run_due() == 1
        assert runs == [1, 2]
        with sessions() as session:
            [job] = session.query(Job).all()
            assert (job.state, job.key) == ("done", "test.flaky:2026-12-01")
            assert job.result == {"ok": True}
            assert (job.progress_done, job.progress_total, job.message) == (1, 1, "sent")
        clock.now += timedelta(hours=1)
        assert runner.run_due() == 0  # same day: the slot exists already
        clock.now += timedelta(days=1)
        assert runner.run_due() == 1
    finally:
        HANDLERS.pop("test.flaky", None)
