"""The job queue in the database: enqueue, schedule once per slot, claim, finish.

Claiming is one conditional UPDATE: on SQLite only one writer at a time, on
PostgreSQL the candidate row is read ``FOR UPDATE SKIP LOCKED``, so several
worker processes never take the same job. A running job carries a lease
(``locked_until``); a job whose worker died is taken again after it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callvault.db.models import Job

LEASE = timedelta(minutes=5)
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
        (Job.state == "running") & (Job.locked_until < at),
    )


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
    session: Session, job_id: int, done: int, total: int | None, message: str | None
) -> None:
    values: dict[str, Any] = {"progress_done": done}
    if total is not None:
        values["progress_total"] = total
    if message is not None:
        values["message"] = message[:2000]
    session.execute(update(Job).where(Job.id == job_id).values(**values))
    session.commit()


def complete(session: Session, job_id: int, result: dict[str, Any] | None, at: datetime) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(state="done", result=result, finished_at=at, locked_by=None, locked_until=None)
    )
    session.commit()


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
) -> str:
    """Record a failure: queued again after a backoff, or ``failed`` for good.

    Returns the new state.
    """
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        return "gone"
    if permanent or job.attempts >= job.max_attempts:
        job.state, job.finished_at = "failed", at
    else:
        job.state = "queued"
        job.run_after = at + (after if after is not None else backoff(job.attempts))
    job.message = error[:2000]
    job.locked_by = job.locked_until = None
    session.commit()
    return job.state
