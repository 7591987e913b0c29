"""The job queue in the database: enqueue, schedule once per slot, claim, finish
(issue 8 section 1).

Claiming is one conditional UPDATE: on SQLite only one writer at a time, on
PostgreSQL the candidate row is read ``FOR UPDATE SKIP LOCKED``, so several
worker processes never take the same job. A running job carries a lease
(``locked_until``, renewed by every progress report); a job whose worker died
is taken again after it, until ``max_attempts`` claims were spent, then it is
``failed`` (``reap_abandoned``).

Exactly once: ``done`` and ``failed`` are final (no claim matches them), and
finishing a job (``complete``, ``fail``, ``report_progress``) names the worker
and the attempt that hold it, so a worker whose lease ran out and was taken
over can no longer change the job.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callvault.db.models import Job

LEASE = timedelta(minutes=5)  # a handler reporting progress keeps its job longer
STATES = ("queued", "running", "done", "failed")
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    at: datetime,
    tenant_id: int | None = None,
    key: str | None = None,
    run_after: datetime | None = None,
    created_by: str | None = None,
    max_attempts: int = 8,
) -> Job:
    """Add a job (flushed, not committed: it commits with the caller's change).

    With ``key``, a job of that key that exists already is returned instead.
    """
    if key is not None:
        existing = session.scalar(select(Job).where(Job.key == key))
        if existing is not None:
            return existing
    job = Job(
        kind=kind,
        payload=payload or {},
        tenant_id=tenant_id,
        key=key,
        state="queued",
        attempts=0,
        max_attempts=max_attempts,
        run_after=run_after or at,
        created_at=at,
        created_by=created_by,
        progress_done=0,
    )
    session.add(job)
    session.flush()
    return job


def schedule_once(
    session: Session, kind: str, slot: str, *, at: datetime, payload: dict[str, Any] | None = None
) -> Job | None:
    """The job of ``kind`` for ``slot`` (``2026-12-01``), created and committed by
    whichever process comes first; None for the others."""
    key = f"{kind}:{slot}"
    if session.scalar(select(Job.id).where(Job.key == key)) is not None:
        return None
    try:
        job = enqueue(session, kind, payload, at=at, key=key, created_by="schedule")
        session.commit()
    except IntegrityError:
        session.rollback()
        return None
    return job


def _claimable(at: datetime) -> Any:
    return or_(
        (Job.state == "queued") & (Job.run_after <= at),
        # its worker died (lease ran out): again, unless its attempts are spent
        (Job.state == "running") & (Job.locked_until < at) & (Job.attempts < Job.max_attempts),
    )


def _held(job_id: int, worker: str | None, attempt: int | None) -> Any:
    """The job, while ``worker`` still holds it for ``attempt`` (either None: any holder)."""
    clause = Job.id == job_id
    if worker is not None:
        clause = clause & (Job.state == "running") & (Job.locked_by == worker)
    if attempt is not None:
        clause = clause & (Job.attempts == attempt)
    return clause


def reap_abandoned(session: Session, at: datetime) -> int:
    """Fail the running jobs whose lease ran out with no attempt left (committed).

    Their worker died on every attempt (a handler that kills its process must
    not be retried forever). Returns how many.
    """
    abandoned = (
        (Job.state == "running") & (Job.locked_until < at) & (Job.attempts >= Job.max_attempts)
    )
    # a read first: the runner asks every poll, and a write would hold SQLite's lock
    if session.scalar(select(Job.id).where(abandoned).limit(1)) is None:
        session.rollback()
        return 0
    gone = session.execute(
        update(Job)
        .where(abandoned)
        .values(
            state="failed",
            finished_at=at,
            locked_by=None,
            locked_until=None,
            message="the worker stopped on every attempt",
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(gone.rowcount)  # type: ignore[attr-defined]


def claim(
    session: Session, worker: str, at: datetime, kinds: frozenset[str] | None = None
) -> Job | None:
    """Take the next due job for ``worker`` (committed), or None."""
    postgres = session.get_bind().dialect.name == "postgresql"
    for _ in range(5):  # another worker may win the race for a candidate
        query = select(Job.id).where(_claimable(at)).order_by(Job.run_after, Job.id).limit(1)
        if kinds is not None:
            query = query.where(Job.kind.in_(kinds))
        if postgres:
            query = query.with_for_update(skip_locked=True)
        job_id = session.scalar(query)
        if job_id is None:
            session.rollback()
            return None
        taken = session.execute(
            update(Job)
            .where(Job.id == job_id, _claimable(at))
            .values(
                state="running",
                locked_by=worker,
                locked_until=at + LEASE,
                attempts=Job.attempts + 1,
                started_at=at,
            )
            .execution_options(synchronize_session=False)
        )
        session.commit()
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            return session.get(Job, job_id, populate_existing=True)
    return None


def report_progress(
    session: Session,
    job_id: int,
    done: int,
    total: int | None,
    message: str | None,
    *,
    worker: str | None = None,
    attempt: int | None = None,
    at: datetime | None = None,
) -> bool:
    """Store progress; with ``at`` the worker's lease is renewed from then on.

    False when ``worker`` no longer holds the job (its lease ran out and
    another worker took it): the handler should stop.
    """
    values: dict[str, Any] = {"progress_done": max(0, done)}
    if total is not None:
        values["progress_total"] = max(0, total)
    if message is not None:
        values["message"] = message[:2000]
    if at is not None:
        values["locked_until"] = at + LEASE
    changed = session.execute(
        update(Job)
        .where(_held(job_id, worker, attempt))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(changed.rowcount == 1)  # type: ignore[attr-defined]


def complete(
    session: Session,
    job_id: int,
    result: dict[str, Any] | None,
    at: datetime,
    *,
    worker: str | None = None,
    attempt: int | None = None,
) -> bool:
    """Mark the job ``done`` with its result (committed); False when ``worker``
    lost it (another worker's attempt decides)."""
    changed = session.execute(
        update(Job)
        .where(_held(job_id, worker, attempt))
        .values(state="done", result=result, finished_at=at, locked_by=None, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(changed.rowcount == 1)  # type: ignore[attr-defined]


def backoff(attempt: int) -> timedelta:
    """30 s, 1 min, 2 min, ... at most an hour."""
    delay: timedelta = BACKOFF_FIRST * (2 ** max(0, attempt - 1))
    return min(delay, BACKOFF_MAX)


def fail(
    session: Session,
    job_id: int,
    error: str,
    at: datetime,
    *,
    permanent: bool = False,
    after: timedelta | None = None,
    worker: str | None = None,
    attempt: int | None = None,
) -> str:
    """Record a failure: queued again after a backoff, or ``failed`` for good
    (``permanent``, or ``max_attempts`` spent).

    Returns the new state; "gone" when the job no longer exists or ``worker``
    lost it.
    """
    row = session.execute(
        select(Job.attempts, Job.max_attempts).where(_held(job_id, worker, attempt))
    ).first()
    if row is None:
        session.rollback()
        return "gone"
    attempts, max_attempts = row
    values: dict[str, Any] = {"message": error[:2000], "locked_by": None, "locked_until": None}
    if permanent or attempts >= max_attempts:
        values.update(state="failed", finished_at=at)
    else:
        delay = after if after is not None and after >= timedelta(0) else backoff(attempts)
        values.update(state="queued", run_after=at + delay)
    # only the attempt that was read: a worker that took the job over meanwhile wins
    changed = session.execute(
        update(Job)
        .where(_held(job_id, worker, attempts))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return str(values["state"]) if changed.rowcount == 1 else "gone"  # type: ignore[attr-defined]


def state_counts(session: Session) -> dict[str, int]:
    """How many jobs are queued, running and failed (for the metrics gauge).

    One GROUP BY on the ``(state, run_after)`` index; ``done`` is left out, it
    only grows and nobody alerts on it.
    """
    counts = dict.fromkeys(("queued", "running", "failed"), 0)
    rows = session.execute(
        select(Job.state, func.count()).where(Job.state.in_(tuple(counts))).group_by(Job.state)
    )
    for state, count in rows:
        counts[str(state)] = int(count)
    return counts
