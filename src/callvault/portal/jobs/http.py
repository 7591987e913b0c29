"""Background jobs' progress: a tenant's jobs (its admin, the operator) and every
job (the operator), issue 8 section 1.

Newest first, keyset-paged on the job id (``next_cursor``); filters by state
and kind. A job of another tenant is 404, as is one that does not exist.
Reading changes nothing, so nothing is audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from callvault.db.models import Job
from callvault.errors import ErrorId, InvalidInput, NotFound
from callvault.jobs.listing import JobFilter, Scalar, find_job, list_jobs, result_summary
from callvault.portal.api.schemas import Page
from callvault.portal.auth import MAX_ID, DbId, SessionDep, as_utc
from callvault.portal.roles import AdminTenant, OperatorOnly
from callvault.portal.timefmt import UtcDateTime

router = APIRouter(prefix="/api/v1", tags=["jobs"])

Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=20, description="next_cursor of the last page")]
State = Annotated[Literal["queued", "running", "done", "failed"] | None, Query()]
Kind = Annotated[str | None, Query(max_length=64, description="e.g. retention.purge")]


class ProgressOut(BaseModel):
    done: int
    total: int | None


class JobOut(BaseModel):
    id: int
    kind: str
    tenant_id: int | None
    state: str
    attempts: int
    max_attempts: int
    progress: ProgressOut
    message: str | None  # the last progress note, or why it failed
    created_at: UtcDateTime
    created_by: str | None
    run_after: UtcDateTime
    started_at: UtcDateTime | None
    finished_at: UtcDateTime | None
    result: dict[str, Scalar]  # a summary: plain values; lists and objects as their size


def _maybe_utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


def job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
        kind=job.kind,
        tenant_id=job.tenant_id,
        state=job.state,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        progress=ProgressOut(done=job.progress_done, total=job.progress_total),
        message=job.message,
        created_at=as_utc(job.created_at),
        created_by=job.created_by,
        run_after=as_utc(job.run_after),
        started_at=_maybe_utc(job.started_at),
        finished_at=_maybe_utc(job.finished_at),
        result=result_summary(job.result),
    )


def _before(cursor: str | None) -> int | None:
    if not cursor:
        return None
    if not cursor.isdigit() or int(cursor) > MAX_ID + 1:
        raise InvalidInput("the cursor is not valid", error_id=ErrorId.BAD_CURSOR)
    return int(cursor)


def _page(session: SessionDep, wanted: JobFilter, limit: int) -> Page[JobOut]:
    rows, more = list_jobs(session, wanted, limit)
    return Page[JobOut](
        items=[job_out(job) for job in rows],
        next_cursor=str(rows[-1].id) if more and rows else None,
    )


@router.get("/tenants/{tenant_id}/jobs", response_model=Page[JobOut])
def tenant_jobs(
    tenant: AdminTenant,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    state: State = None,
    kind: Kind = None,
) -> Page[JobOut]:
    wanted = JobFilter(tenant_id=tenant.id, state=state, kind=kind, before_id=_before(cursor))
    return _page(session, wanted, limit)


@router.get("/tenants/{tenant_id}/jobs/{job_id}", response_model=JobOut)
def tenant_job(tenant: AdminTenant, job_id: DbId, session: SessionDep) -> JobOut:
    job = find_job(session, job_id, tenant.id, any_tenant=False)
    if job is None:
        raise NotFound("no such job", error_id=ErrorId.JOB_NOT_FOUND)
    return job_out(job)


@router.get("/jobs", response_model=Page[JobOut])
def all_jobs(
    _operator: OperatorOnly,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    state: State = None,
    kind: Kind = None,
    tenant_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="one tenant only")] = None,
) -> Page[JobOut]:
    """Every job, the tenant-less ones (session clean-up, the daily purge) included."""
    wanted = JobFilter(
        tenant_id=tenant_id, all_tenants=True, state=state, kind=kind, before_id=_before(cursor)
    )
    return _page(session, wanted, limit)


@router.get("/jobs/{job_id}", response_model=JobOut)
def any_job(_operator: OperatorOnly, job_id: DbId, session: SessionDep) -> JobOut:
    job = find_job(session, job_id, None, any_tenant=True)
    if job is None:
        raise NotFound("no such job", error_id=ErrorId.JOB_NOT_FOUND)
    return job_out(job)
