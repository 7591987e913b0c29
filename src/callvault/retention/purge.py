"""The retention purge job ``retention.purge`` (SPEC section 4; issue 8 section 2).

Daily (``jobs/kinds.py``), or at once when the operator asks
(``POST /api/v1/operator/purge``). One run:

1. finishes what a crashed run or deletion left (``sweep``): rows marked
   deleted whose blobs may remain get their blobs deleted and their receipt
   finished;
2. deletes the audio of every expired recording (``expires_at <= now``, audio
   not yet deleted, no legal hold), ``BATCH`` rows at a time; the row stays
   and says "expired";
3. for each tenant whose plan has a minute quota and is over it, deletes the
   oldest recordings (by ``started_at``) not under a hold until it is within
   it (reason ``quota``).

Per batch the rows are marked and committed first and the blobs deleted
after, so a crash loses nothing that should stay; the receipt of a crashed
run is rebuilt from the rows it marked (``audio_deleted_at`` is the run's
instant) by the next run's sweep, which also deletes the blobs left behind.
Each tenant touched gets one ``DeletionReceipt`` per run (its JSON lines list
recording id, blob key, SHA-256, size and reason; tenants never see each
other's) and one audit row with the counts and the receipt's id. A second run
finds nothing: it is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from callvault.db.models import AuditEvent, DeletionReceipt, Job, Recording, Tenant
from callvault.jobs.registry import JobContext, handler
from callvault.retention.access import audio_available, held
from callvault.retention.deletion import (
    PURGE_KIND,
    ReceiptWriter,
    delete_blobs,
    mark_audio_deleted,
    open_receipt,
    sweep_unfinished,
    unfinished_receipts,
)
from callvault.retention.quota import MS_PER_MINUTE, tenants_with_quota, used_ms
from callvault.storage.blobs import BlobStore

log = logging.getLogger(__name__)

KIND = "retention.purge"
ACTOR = "job:retention.purge"
BATCH = 1000
EXPIRED, QUOTA = "expired", "quota"
REASONS = (EXPIRED, QUOTA)
Progress = Callable[[int, "int | None", "str | None"], None]
_Row = Any  # a row of _COLUMNS

_COLUMNS = (
    Recording.id,
    Recording.tenant_id,
    Recording.call_id,
    Recording.blob_key,
    Recording.sha256,
    Recording.size_bytes,
    Recording.duration_ms,
)


def expired_clause(at: datetime) -> Any:
    """SQL: audio the purge deletes as expired at ``at``."""
    return (
        Recording.audio_deleted_at.is_(None),
        Recording.expires_at.is_not(None),
        Recording.expires_at <= at,
        ~held(),
    )


def _line(row: _Row, reason: str) -> dict[str, object]:
    return {
        "recording_id": row.id,
        "call_id": row.call_id,
        "blob_key": row.blob_key,
        "sha256": row.sha256,
        "size_bytes": row.size_bytes,
        "reason": reason,
    }


@dataclass
class TenantRun:
    """One tenant's share of a run: its receipt and what went."""

    receipt_id: int
    writer: ReceiptWriter = field(default_factory=ReceiptWriter)
    counts: dict[str, int] = field(default_factory=lambda: {EXPIRED: 0, QUOTA: 0, "bytes": 0})


class Purge:
    """One run of the purge at the instant ``at``; ``run()`` returns the job's result."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        at: datetime,
        *,
        actor: str = ACTOR,
        batch: int = BATCH,
        progress: Progress | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.sessions = sessions
        self.blobs = blobs
        self.at = at
        self.actor = actor
        self.batch = batch
        self.progress = progress or (lambda _done, _total, _message: None)
        self.clock = clock or (lambda: at)
        self.tenants: dict[int, TenantRun] = {}
        self.done = 0

    def run(self) -> dict[str, Any]:
        with self.sessions() as session:
            self.at = _unique_instant(session, self.at)
        swept = self.sweep()
        try:
            self.purge_expired()
            self.purge_over_quota()
            receipts = self.finish()
        finally:
            for run in self.tenants.values():
                run.writer.discard()
        totals = {
            key: sum(r.counts[key] for r in self.tenants.values()) for key in (*REASONS, "bytes")
        }
        return {**totals, "tenants": len(self.tenants), "receipts": receipts, "swept": swept}

    # --- the passes -----------------------------------------------------------------

    def purge_expired(self) -> None:
        with self.sessions() as session:
            total = session.scalar(
                select(func.count()).select_from(Recording).where(*expired_clause(self.at))
            )
        self.progress(0, total or 0, "purging expired audio")
        while True:
            with self.sessions() as session:
                rows = session.execute(
                    select(*_COLUMNS)
                    .where(*expired_clause(self.at))
                    # the index's order only: after a slider change a whole tenant shares
                    # one expires_at, and a tie-break would sort all of it for each batch
                    .order_by(Recording.expires_at)
                    .limit(self.batch)
                ).all()
            if not rows:
                return
            if self.delete(rows, EXPIRED) == 0:
                return  # every row was taken by another deletion meanwhile: none left to do
            self.progress(self.done, total, f"{self.done} expired recordings purged")

    def purge_over_quota(self) -> None:
        with self.sessions() as session:
            quotas = tenants_with_quota(session)
        for tenant_id, quota in quotas:
            with self.sessions() as session:
                excess = used_ms(session, tenant_id, self.at) - quota * MS_PER_MINUTE
            while excess > 0:
                with self.sessions() as session:
                    rows = session.execute(
                        select(*_COLUMNS)
                        .where(Recording.tenant_id == tenant_id, audio_available(self.at), ~held())
                        .order_by(Recording.started_at, Recording.id)
                        .limit(self.batch)
                    ).all()
                taken: list[_Row] = []
                for row in rows:
                    if excess <= 0:
                        break
                    taken.append(row)
                    excess -= row.duration_ms
                if not taken or self.delete(taken, QUOTA) == 0:
                    break  # what is left is held: the quota stays exceeded until lifted
            self.progress(self.done, None, f"{self.done} recordings purged")

    def delete(self, rows: Sequence[_Row], reason: str) -> int:
        """Marks ``rows`` (committed), lists them in their tenants' receipts, deletes the blobs."""
        with self.sessions() as session:
            for tenant_id in {row.tenant_id for row in rows} - set(self.tenants):
                receipt = open_receipt(
                    session, kind=PURGE_KIND, actor=self.actor, at=self.at, tenant_id=tenant_id
                )
                receipt.tenant_name = _tenant_name(session, tenant_id)
                self.tenants[tenant_id] = TenantRun(receipt.id)
            marked = mark_audio_deleted(
                session, [row.id for row in rows], reason=reason, at=self.at
            )
            session.commit()
        gone = [row for row in rows if row.id in marked]
        for row in gone:
            run = self.tenants[row.tenant_id]
            run.writer.add(_line(row, reason))
            run.counts[reason] += 1
            run.counts["bytes"] += row.size_bytes
        delete_blobs(self.blobs, (row.blob_key for row in gone))
        self.done += len(gone)
        return len(gone)

    # --- receipts -------------------------------------------------------------------

    def finish(self) -> list[int]:
        """Stores each tenant's receipt, marks it finished and audits it (committed)."""
        finished = self.clock()
        with self.sessions() as session:
            for tenant_id, run in self.tenants.items():
                receipt = session.get(DeletionReceipt, run.receipt_id)
                if receipt is None:  # the tenant was terminated meanwhile; its receipt went too
                    continue
                run.writer.store(self.blobs, receipt)
                _close(session, receipt, tenant_id, run.counts, finished)
            session.commit()
        return [run.receipt_id for run in self.tenants.values()]

    def sweep(self) -> int:
        """Finishes what crashed runs and deletions left: their blobs and their receipts."""
        with self.sessions() as session:
            swept = sweep_unfinished(session, self.blobs, self.clock())
            for receipt in unfinished_receipts(session, kind=PURGE_KIND):
                rebuild_purge_receipt(session, self.blobs, receipt, self.clock())
                swept += 1
        return swept


def rebuild_purge_receipt(
    session: Session, blobs: BlobStore, receipt: DeletionReceipt, at: datetime
) -> None:
    """A crashed run's receipt, from the rows it marked (``audio_deleted_at`` is its
    instant): deletes their blobs that may remain, stores the list, finishes it (commits)."""
    counts = {EXPIRED: 0, QUOTA: 0, "bytes": 0}
    writer = ReceiptWriter()
    try:
        rows: Iterable[_Row] = (
            session.execute(
                select(*_COLUMNS, Recording.audio_deleted_reason)
                .where(
                    Recording.tenant_id == receipt.tenant_id,
                    Recording.audio_deleted_at == receipt.started_at,
                    Recording.audio_deleted_reason.in_(REASONS),
                )
                .order_by(Recording.id)
                .execution_options(yield_per=BATCH)
            )
            if receipt.tenant_id is not None
            else ()
        )
        for row in rows:
            blobs.delete(row.blob_key)
            writer.add(_line(row, row.audio_deleted_reason))
            counts[row.audio_deleted_reason] += 1
            counts["bytes"] += row.size_bytes
        writer.store(blobs, receipt)
    finally:
        writer.discard()
    _close(session, receipt, receipt.tenant_id, counts, at, recovered=True)
    session.commit()


def _close(
    session: Session,
    receipt: DeletionReceipt,
    tenant_id: int | None,
    counts: dict[str, int],
    at: datetime,
    *,
    recovered: bool = False,
) -> None:
    receipt.counts = {
        "recordings": counts[EXPIRED] + counts[QUOTA],
        "expired": counts[EXPIRED],
        "quota": counts[QUOTA],
        "bytes": counts["bytes"],
        **({"recovered": True} if recovered else {}),
    }
    receipt.finished_at = at
    if tenant_id is not None:
        session.add(
            AuditEvent(
                tenant_id=tenant_id,
                at=at,
                actor=receipt.actor,
                action="retention.purge",
                target=f"deletion-receipt:{receipt.id}",
                details={"receipt_id": receipt.id, **receipt.counts},
            )
        )


def _tenant_name(session: Session, tenant_id: int) -> str | None:
    tenant = session.get(Tenant, tenant_id)
    return tenant.name if tenant else None


def _unique_instant(session: Session, at: datetime) -> datetime:
    """``at``, or just after the last purge's instant: a run's receipt is found again by
    its instant (``rebuild_purge_receipt``), so two runs never share one."""
    last = session.scalar(
        select(func.max(DeletionReceipt.started_at)).where(DeletionReceipt.kind == PURGE_KIND)
    )
    if last is None:
        return at
    last = last.replace(tzinfo=at.tzinfo) if last.tzinfo is None and at.tzinfo else last
    return at if at > last else last + timedelta(microseconds=1)


def purge(
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    at: datetime,
    *,
    actor: str = ACTOR,
    batch: int = BATCH,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """One purge run at ``at`` (the job's, the bench's and the tests' entry point)."""
    return Purge(sessions, blobs, at, actor=actor, batch=batch, progress=progress).run()


def _another_run_active(session: Session, job_id: int, at: datetime) -> bool:
    return (
        session.scalar(
            select(Job.id)
            .where(
                Job.kind == KIND, Job.state == "running", Job.id != job_id, Job.locked_until > at
            )
            .limit(1)
        )
        is not None
    )


@handler(KIND)
def run(ctx: JobContext) -> dict[str, Any]:
    at = ctx.now()
    with ctx.sessions() as session:
        if _another_run_active(session, ctx.job_id, at):
            # two runs at once would sweep each other's receipts; the other one does the work
            return {"skipped": "another purge is running"}
    actor = str(ctx.payload.get("actor") or ACTOR)
    result = Purge(
        ctx.sessions, ctx.blobs, at, actor=actor, progress=ctx.progress, clock=ctx.now
    ).run()
    # quiet when there was nothing to do (it runs at every start: one start-up line)
    if result.get("expired") or result.get("quota") or result.get("swept"):
        log.info("retention purge: %s", result)
    else:
        log.debug("retention purge: nothing expired")
    return result
