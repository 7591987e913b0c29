"""The job runner on SQLite: retries with backoff, leases, permanent failures,
exactly once, and a runner that survives whatever a handler does (issue 8 section 1)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.db.models import Job
from callvault.jobs import queue
from callvault.jobs.registry import JobContext, JobFailed, RetryLater, handler
from callvault.jobs.runner import daily, hourly
from tests.jobs.conftest import Queue

SECOND = timedelta(seconds=1)


def _enqueue(db: Queue, kind: str, **options: Any) -> int:
    with db.sessions() as session:
        job = queue.enqueue(session, kind, {"n": 1}, at=db.clock(), **options)
        session.commit()
        return job.id


def _job(db: Queue, job_id: int) -> Job:
    with db.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def test_backoff_doubles_from_thirty_seconds_up_to_an_hour() -> None:
    assert [queue.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert queue.backoff(30) == timedelta(hours=1)


def test_a_job_whose_worker_died_is_taken_again_after_the_lease(jobs_db: Queue) -> None:
    runs: list[int] = []

    @handler("test.lease")
    def run(ctx: JobContext) -> dict[str, Any]:
        runs.append(ctx.attempt)
        return {"attempt": ctx.attempt}

    job_id = _enqueue(jobs_db, "test.lease")
    with jobs_db.sessions() as session:  # worker X takes it and dies
        taken = queue.claim(session, "worker-x", jobs_db.clock())
        assert taken is not None and taken.id == job_id
    runner = jobs_db.runner("worker-y")
    assert runner.run_due() == 0
    jobs_db.clock.advance(queue.LEASE - SECOND)
    assert runner.run_due() == 0  # X's lease still holds
    jobs_db.clock.advance(2 * SECOND)
    assert runner.run_due() == 1
    assert runs == [2]
    job = _job(jobs_db, job_id)
    assert (job.state, job.attempts, job.result, job.locked_by) == ("done", 2, {"attempt": 2}, None)
    # X comes back to life: it no longer holds the job and changes nothing
    with jobs_db.sessions() as session:
        now = jobs_db.clock()
        assert not queue.complete(session, job_id, {"x": 1}, now, worker="worker-x", attempt=1)
        assert queue.fail(session, job_id, "late", now, worker="worker-x", attempt=1) == "gone"
        assert not queue.report_progress(session, job_id, 5, 5, "x", worker="worker-x", attempt=1)
    job = _job(jobs_db, job_id)
    assert (job.state, job.result, job.progress_done) == ("done", {"attempt": 2}, 0)


def test_progress_renews_the_lease_of_a_long_job(jobs_db: Queue) -> None:
    job_id = _enqueue(jobs_db, "test.long")
    start = jobs_db.clock()
    with jobs_db.sessions() as session:
        assert queue.claim(session, "worker-x", start) is not None
        jobs_db.clock.advance(queue.LEASE - SECOND)
        assert queue.report_progress(
            session, job_id, 3, 10, "3 of 10", worker="worker-x", attempt=1, at=jobs_db.clock()
        )
        jobs_db.clock.advance(queue.LEASE - SECOND)  # past the first lease, inside the renewed
        assert queue.claim(session, "worker-y", jobs_db.clock()) is None
        jobs_db.clock.advance(2 * SECOND)
        taken = queue.claim(session, "worker-y", jobs_db.clock())
        assert taken is not None and (taken.locked_by, taken.attempts) == ("worker-y", 2)


def test_the_handlers_progress_is_stored_and_keeps_the_job(jobs_db: Queue) -> None:
    seen: list[tuple[int, int | None, str | None]] = []

    @handler("test.progress")
    def run(ctx: JobContext) -> None:
        for done in range(1, 4):
            ctx.services.clock.advance(queue.LEASE - SECOND)  # type: ignore[attr-defined]
            ctx.progress(done, 3, f"{done} of 3")
            with ctx.sessions() as session:
                job = session.get(Job, ctx.job_id)
                assert job is not None
                seen.append((job.progress_done, job.progress_total, job.message))
        return None

    job_id = _enqueue(jobs_db, "test.progress")
    assert jobs_db.runner().run_due() == 1
    assert seen == [(1, 3, "1 of 3"), (2, 3, "2 of 3"), (3, 3, "3 of 3")]
    job = _job(jobs_db, job_id)
    assert (job.state, job.attempts) == ("done", 1)  # never taken over, though it ran 15 minutes


def test_retry_later_waits_its_own_delay_or_the_backoff(jobs_db: Queue) -> None:
    runs: list[int] = []

    @handler("test.retry")
    def run(ctx: JobContext) -> dict[str, Any]:
        runs.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RetryLater("451 try again", after=timedelta(minutes=10))
        if ctx.attempt == 2:
            raise ConnectionError("mail server unreachable")
        return {"sent": True}

    job_id = _enqueue(jobs_db, "test.retry")
    runner = jobs_db.runner()
    assert runner.run_due() == 1
    job = _job(jobs_db, job_id)
    assert (job.state, job.message) == ("queued", "451 try again")
    jobs_db.clock.advance(timedelta(minutes=10) - SECOND)
    assert runner.run_due() == 0
    jobs_db.clock.advance(SECOND)
    assert runner.run_due() == 1
    job = _job(jobs_db, job_id)
    assert (job.state, job.message) == ("queued", "ConnectionError: mail server unreachable")
    jobs_db.clock.advance(queue.backoff(2) - SECOND)
    assert runner.run_due() == 0
    jobs_db.clock.advance(SECOND)
    assert runner.run_due() == 1
    assert runs == [1, 2, 3]
    assert _job(jobs_db, job_id).state == "done"


def test_a_permanent_failure_is_not_retried(jobs_db: Queue) -> None:
    runs: list[int] = []

    @handler("test.permanent")
    def run(ctx: JobContext) -> None:
        runs.append(ctx.attempt)
        raise JobFailed("550 no such mailbox")

    job_id = _enqueue(jobs_db, "test.permanent")
    runner = jobs_db.runner()
    assert runner.run_due() == 1
    jobs_db.clock.advance(timedelta(days=3))
    assert runner.run_due() == 0
    job = _job(jobs_db, job_id)
    assert (job.state, job.message, job.attempts, runs) == (
        "failed",
        "550 no such mailbox",
        1,
        [1],
    )
    assert job.finished_at is not None


def test_a_job_fails_for_good_once_its_attempts_are_spent(jobs_db: Queue) -> None:
    runs: list[int] = []

    @handler("test.flaky")
    def run(ctx: JobContext) -> None:
        runs.append(ctx.attempt)
        raise RetryLater("still down")

    job_id = _enqueue(jobs_db, "test.flaky", max_attempts=3)
    runner = jobs_db.runner()
    for _ in range(6):
        runner.run_due()
        jobs_db.clock.advance(queue.BACKOFF_MAX)
    assert runs == [1, 2, 3]
    job = _job(jobs_db, job_id)
    assert (job.state, job.attempts, job.message) == ("failed", 3, "still down")


def test_a_job_whose_worker_dies_on_every_attempt_fails(jobs_db: Queue) -> None:
    """A handler that kills its process (out of memory) is not taken forever."""
    job_id = _enqueue(jobs_db, "test.crash", max_attempts=2)
    for worker in ("worker-1", "worker-2"):
        with jobs_db.sessions() as session:
            assert queue.claim(session, worker, jobs_db.clock()) is not None
        jobs_db.clock.advance(queue.LEASE + SECOND)
    runs: list[int] = []

    @handler("test.crash")
    def run(ctx: JobContext) -> None:
        runs.append(ctx.attempt)

    assert jobs_db.runner().run_due() == 0
    assert runs == []
    job = _job(jobs_db, job_id)
    assert (job.state, job.attempts, job.message) == (
        "failed",
        2,
        "the worker stopped on every attempt",
    )


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no words")


class _Odd(BaseException):
    pass


def test_the_runner_survives_whatever_a_handler_raises_or_returns(jobs_db: Queue) -> None:
    outcomes: dict[str, Any] = {
        "value": ValueError("bad value"),
        "exit": SystemExit(3),
        "odd": _Odd("odd"),
        "unprintable": _Unprintable(),
        "not-json": {"when": object()},
        "not-a-dict": ["a", "list"],
        "fine": {"ok": True},
    }

    @handler("test.anything")
    def run(ctx: JobContext) -> Any:
        outcome = outcomes[ctx.payload["what"]]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    ids = {}
    with jobs_db.sessions() as session:
        for what in outcomes:
            job = queue.enqueue(session, "test.anything", {"what": what}, at=jobs_db.clock())
            ids[what] = job.id
        session.commit()
    assert jobs_db.runner().run_due() == len(outcomes)
    states = {what: (_job(jobs_db, i).state, _job(jobs_db, i).message) for what, i in ids.items()}
    assert states == {
        "value": ("queued", "ValueError: bad value"),
        "exit": ("queued", "SystemExit: 3"),
        "odd": ("queued", "_Odd: odd"),
        "unprintable": ("queued", "_Unprintable: (no message)"),
        "not-json": ("failed", states["not-json"][1]),
        "not-a-dict": ("failed", "the handler returned list, not a dict"),
        "fine": ("done", None),
    }
    assert "not JSON" in str(states["not-json"][1])


def test_a_keyboard_interrupt_stops_the_runner_and_the_job_runs_again(jobs_db: Queue) -> None:
    @handler("test.interrupted")
    def run(ctx: JobContext) -> None:
        if ctx.attempt == 1:
            raise KeyboardInterrupt
        return None

    job_id = _enqueue(jobs_db, "test.interrupted")
    runner = jobs_db.runner()
    with pytest.raises(KeyboardInterrupt):
        runner.run_due()
    assert (_job(jobs_db, job_id).state, _job(jobs_db, job_id).message) == ("queued", "interrupted")
    jobs_db.clock.advance(queue.backoff(1))
    assert runner.run_due() == 1
    assert _job(jobs_db, job_id).state == "done"


def test_a_job_committed_done_is_never_run_again(jobs_db: Queue) -> None:
    runs: list[str] = []

    @handler("test.once")
    def run(ctx: JobContext) -> None:
        runs.append(ctx.services.clock().isoformat())

    job_id = _enqueue(jobs_db, "test.once")
    first, second = jobs_db.runner("first"), jobs_db.runner("second")
    assert first.run_due() == 1
    for step in (SECOND, queue.LEASE, queue.BACKOFF_MAX, timedelta(days=30)):
        jobs_db.clock.advance(step)
        assert second.run_due() == 0 and first.run_due() == 0
        with jobs_db.sessions() as session:
            assert queue.claim(session, "third", jobs_db.clock()) is None
    assert len(runs) == 1 and _job(jobs_db, job_id).state == "done"


def test_two_runners_at_the_same_time_run_every_job_once(jobs_db: Queue) -> None:
    """Two threads, one SQLite file: every job once, the hour's slot once."""
    runs: Counter[int] = Counter()
    lock = threading.Lock()

    @handler("test.shared")
    def run(ctx: JobContext) -> None:
        with lock:
            runs[ctx.job_id] += 1

    @handler("test.hourly")
    def hourly_run(ctx: JobContext) -> None:
        with lock:
            runs[-1] += 1

    with jobs_db.sessions() as session:
        ids = [queue.enqueue(session, "test.shared", at=jobs_db.clock()).id for _ in range(60)]
        session.commit()
    runners = [jobs_db.runner(f"w{n}", (hourly("test.hourly"),)) for n in range(2)]
    start = threading.Barrier(len(runners))
    errors: list[BaseException] = []

    def work(index: int) -> None:
        start.wait()
        try:
            runners[index].run_due()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(runners))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert runs == Counter({**dict.fromkeys(ids, 1), -1: 1})


def test_a_slot_is_created_once_when_two_sessions_race_for_it(jobs_db: Queue) -> None:
    """Both see no job for the slot, both insert: the unique key lets one win."""
    both_looked = threading.Barrier(2)
    results: list[Job | None] = []
    errors: list[BaseException] = []

    def tick() -> None:
        with jobs_db.sessions() as session:
            looks = session.scalar

            def look_then_wait(*args: Any, **kwargs: Any) -> Any:
                found = looks(*args, **kwargs)
                both_looked.wait(10)  # the other session looked too: neither saw a job
                session.scalar = looks  # type: ignore[method-assign, assignment]
                return found

            session.scalar = look_then_wait  # type: ignore[method-assign]
            try:
                results.append(
                    queue.schedule_once(session, "test.daily", "2026-12-01", at=jobs_db.clock())
                )
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(r is None for r in results) == [False, True]
    with jobs_db.sessions() as session:
        assert _keys(session) == ["test.daily:2026-12-01"]


def test_a_daily_schedule_makes_one_job_per_day(jobs_db: Queue) -> None:
    @handler("test.daily")
    def run(ctx: JobContext) -> None:
        return None

    runner = jobs_db.runner(schedules=(daily("test.daily"),))
    assert runner.run_due() == 1
    jobs_db.clock.advance(timedelta(hours=10))
    assert runner.run_due() == 0
    jobs_db.clock.advance(timedelta(hours=14))
    assert runner.run_due() == 1
    with jobs_db.sessions() as session:
        assert _keys(session) == ["test.daily:2026-12-01", "test.daily:2026-12-02"]


def test_state_counts_are_per_state(jobs_db: Queue) -> None:
    @handler("test.count")
    def run(ctx: JobContext) -> None:
        raise JobFailed("no")

    _enqueue(jobs_db, "test.count")
    _enqueue(jobs_db, "test.count", run_after=jobs_db.clock() + timedelta(days=1))
    with jobs_db.sessions() as session:
        assert queue.state_counts(session) == {"queued": 2, "running": 0, "failed": 0}
    jobs_db.runner().run_due()
    _enqueue(jobs_db, "test.unknown-kind")
    with jobs_db.sessions() as session:
        assert queue.claim(session, "x", jobs_db.clock(), frozenset({"test.unknown-kind"}))
        assert queue.state_counts(session) == {"queued": 1, "running": 1, "failed": 1}


def _keys(session: Session) -> list[str]:
    return sorted(k for k in session.scalars(select(Job.key)) if k is not None)
