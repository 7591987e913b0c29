"""The retention purge job (issue 8 section 2): expired audio goes, the call's record
stays, legal holds are respected; batched, idempotent, audited, one receipt per tenant
per run with the SHA-256 of every deleted file; a crash between marking and deleting
loses nothing and leaves no orphan blob."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from callvault.db.models import AuditEvent, Job, LegalHold, Recording
from callvault.jobs import queue
from callvault.retention.deletion import delete_audio
from callvault.retention.purge import purge
from callvault.storage.blobs import LocalBlobStore
from tests.retention.purge_world import NOW, PurgeWorld, make_world

DAY = timedelta(days=1)


@pytest.fixture
def world(tmp_path: Path) -> PurgeWorld:
    return make_world(tmp_path)


def _enqueue_purge(world: PurgeWorld) -> int:
    with world.sessions() as session:
        job = queue.enqueue(session, "retention.purge", at=world.clock.now)
        session.commit()
        return job.id


def test_expired_audio_goes_the_record_stays_holds_respected_one_receipt_per_tenant(
    world: PurgeWorld,
) -> None:
    expired = world.recording("a", "anna", started=-40 * DAY, expires=-DAY)
    just_expired = world.recording("a", "arie", started=-30 * DAY, expires=timedelta(0))
    alive = world.recording("a", "anna", started=-2 * DAY, expires=5 * DAY)
    forever = world.recording("a", "anna", started=-2 * DAY, expires=None)
    held = world.recording("a", "arie", started=-40 * DAY, expires=-DAY)
    expired_b = world.recording("b", "bob", started=-40 * DAY, expires=-2 * DAY)
    with world.sessions() as session:
        session.add(
            LegalHold(
                tenant_id=world.tenants["a"],
                scope="recording",
                recording_id=held,
                reason="court order",
                placed_by="operator:1",
            )
        )
        session.commit()

    _enqueue_purge(world)
    assert world.runner().run_due() == 1

    gone = {expired: "expired", just_expired: "expired", expired_b: "expired"}
    for recording_id in (expired, just_expired, alive, forever, held, expired_b):
        assert world.deleted_reason(recording_id) == gone.get(recording_id), recording_id
        assert world.has_blob(recording_id) is (recording_id not in gone), recording_id
    with world.sessions() as session:  # the call's record stays
        assert session.get(Recording, expired) is not None

    receipts = world.receipts()
    assert [(r.kind, r.tenant_id, r.counts["expired"]) for r in receipts] == [
        ("purge", world.tenants["a"], 2),
        ("purge", world.tenants["b"], 1),
    ]
    assert all(r.finished_at is not None for r in receipts)
    lines_a = world.receipt_lines(receipts[0])
    assert {line["recording_id"] for line in lines_a} == {expired, just_expired}
    for line in lines_a:  # the SHA-256 of each deleted file, as stored when it was finished
        with world.sessions() as session:
            row = session.get(Recording, line["recording_id"])
            assert row is not None
            assert line["sha256"] == row.sha256 and line["reason"] == "expired"
    assert [line["recording_id"] for line in world.receipt_lines(receipts[1])] == [expired_b]

    with world.sessions() as session:
        audits = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "retention.purge").order_by(AuditEvent.id)
        ).all()
        assert [(a.tenant_id, a.details["receipt_id"], a.details["expired"]) for a in audits] == [
            (world.tenants["a"], receipts[0].id, 2),
            (world.tenants["b"], receipts[1].id, 1),
        ]
        job = session.scalars(select(Job)).one()
        assert job.state == "done" and job.result is not None
        assert (job.result["expired"], job.result["receipts"]) == (3, [r.id for r in receipts])

    # idempotent: a second run finds nothing, writes no receipt and no audit row
    assert purge(world.sessions, world.blobs, NOW)["expired"] == 0
    assert len(world.receipts()) == 2


def test_batches_report_progress_and_take_every_expired_recording(world: PurgeWorld) -> None:
    ids = [world.recording("a", "anna", started=-9 * DAY, expires=-DAY * n) for n in range(1, 8)]
    seen: list[tuple[int, int | None]] = []
    result = purge(
        world.sessions, world.blobs, NOW, batch=3, progress=lambda d, t, _m: seen.append((d, t))
    )
    assert result["expired"] == 7 and result["receipts"] == [world.receipts()[0].id]
    assert seen[:4] == [(0, 7), (3, 7), (6, 7), (7, 7)]
    assert not any(world.has_blob(i) for i in ids)
    assert len(world.receipt_lines(world.receipts()[0])) == 7


class FailingOnce(LocalBlobStore):
    """A blob store whose first delete of a recording's blob dies (a crash mid-purge)."""

    failed = False

    def delete(self, key: str) -> None:
        if not self.failed and key.endswith(".mp3"):
            self.failed = True
            raise OSError("disk went away")
        super().delete(key)


def test_a_crash_between_marking_and_deleting_loses_nothing_and_leaves_no_orphan(
    world: PurgeWorld,
) -> None:
    first = world.recording("a", "anna", started=-9 * DAY, expires=-2 * DAY)
    second = world.recording("a", "anna", started=-9 * DAY, expires=-DAY)
    alive = world.recording("a", "anna", started=-DAY, expires=DAY)
    failing = FailingOnce(world.blobs.root)
    runner = world.runner(failing)
    _enqueue_purge(world)
    assert runner.run_due() == 1
    with world.sessions() as session:
        job = session.scalars(select(Job)).one()
        assert job.state == "queued" and "disk went away" in (job.message or "")
    # the rows are marked, their blobs still there: unreachable, but not yet gone
    assert world.deleted_reason(first) == world.deleted_reason(second) == "expired"
    assert world.has_blob(first) and world.has_blob(second)
    [receipt] = world.receipts()
    assert receipt.finished_at is None

    world.clock.now += queue.backoff(1) + timedelta(seconds=1)
    assert runner.run_due() == 1  # the retry sweeps what the crash left
    assert not world.has_blob(first) and not world.has_blob(second)
    assert world.has_blob(alive) and world.deleted_reason(alive) is None
    [receipt] = world.receipts()
    assert receipt.finished_at is not None and receipt.counts["recovered"] is True
    lines = world.receipt_lines(receipt)
    assert sorted(str(line["recording_id"]) for line in lines) == sorted([first, second])
    assert purge(world.sessions, world.blobs, world.clock.now)["expired"] == 0
    assert len(world.receipts()) == 1


def test_an_interrupted_deletion_of_another_kind_is_finished_by_the_sweep(
    world: PurgeWorld,
) -> None:
    mailed = world.recording("a", "anna", started=-DAY, expires=30 * DAY)
    failing = FailingOnce(world.blobs.root)
    with world.sessions() as session:
        row = session.get(Recording, mailed)
        assert row is not None
        with pytest.raises(OSError):
            delete_audio(
                session, failing, [row], reason="mailed", kind="mailed", actor="job:x", at=NOW
            )
    assert world.has_blob(mailed) and world.deleted_reason(mailed) == "mailed"
    result = purge(world.sessions, world.blobs, NOW)
    assert result["swept"] == 1 and not world.has_blob(mailed)
    [receipt] = world.receipts()
    assert receipt.finished_at is not None
    body = world.blobs.read(receipt.blob_key or "")
    assert hashlib.sha256(body).hexdigest() == receipt.sha256
