"""Reading jobs for people: a tenant's jobs (its admin, the operator) and all jobs
(the operator), newest first, keyset-paged on the id (issue 8 section 1,
"progress is visible in the API and the portal").

The API (``portal/jobs/http.py``) and the jobs page both read through here.
A job's payload is not shown (it may name addresses or users); its result is
shown as a summary of its plain top-level values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from callvault.db.models import Job
from callvault.jobs.queue import STATES

SUMMARY_KEYS = 20  # a result's top-level values shown at most
SUMMARY_TEXT = 200  # characters of a text value shown at most
Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class JobFilter:
    """Which jobs: one tenant's (``tenant_id``; None with ``all_tenants``: every job)."""

    tenant_id: int | None = None
    all_tenants: bool = False
    state: str | None = None
    kind: str | None = None
    before_id: int | None = None  # the cursor: jobs older than this one


def result_summary(result: dict[str, Any] | None) -> dict[str, Scalar]:
    """The result's plain values (numbers, yes/no, short texts); lists and nested
    objects (ids of deleted recordings, say) are counted, not shown."""
    summary: dict[str, Scalar] = {}
    for key, value in list((result or {}).items())[:SUMMARY_KEYS]:
        if isinstance(value, str):
            summary[str(key)] = value[:SUMMARY_TEXT]
        elif value is None or isinstance(value, int | float | bool):
            summary[str(key)] = value
        elif isinstance(value, list | dict):
            summary[str(key)] = len(value)
    return summary


def _query(wanted: JobFilter) -> Select[Job]:
    query = select(Job)
    if not wanted.all_tenants or wanted.tenant_id is not None:
        query = query.where(Job.tenant_id == wanted.tenant_id)
    if wanted.state is not None:
        query = query.where(Job.state == wanted.state)
    if wanted.kind is not None:
        query = query.where(Job.kind == wanted.kind)
    if wanted.before_id is not None:
        query = query.where(Job.id < wanted.before_id)
    return query


def list_jobs(session: Session, wanted: JobFilter, limit: int) -> tuple[list[Job], bool]:
    """Up to ``limit`` jobs, newest first, and whether there are more."""
    if wanted.state is not None and wanted.state not in STATES:
        return [], False
    rows = list(session.scalars(_query(wanted).order_by(Job.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def find_job(
    session: Session, job_id: int, tenant_id: int | None, *, any_tenant: bool
) -> Job | None:
    """The job, if it is the tenant's (or ``any_tenant``: the operator's view)."""
    job = session.get(Job, job_id)
    if job is None or (not any_tenant and job.tenant_id != tenant_id):
        return None
    return job
