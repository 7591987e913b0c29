"""The purge through the portal (issue 8 sections 2 and 5): the operator's "purge now",
then the tenant's receipts, their lists checked against their SHA-256, tenant-isolated."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from sqlalchemy import select

from callvault.db.models import AuditEvent, Job, Recording
from callvault.jobs.kinds import load_handlers
from callvault.jobs.registry import JobServices
from callvault.jobs.runner import JobRunner
from callvault.settings import load_settings
from tests.api import conftest as api

world, clock = api.world, api.clock  # the API tests' fixtures


def _expire(world: api.World, recording_id: str, at: object) -> None:
    with world.sessions() as session:
        row = session.get(Recording, recording_id)
        assert row is not None
        row.expires_at = at  # type: ignore[assignment]
        session.commit()


def test_purge_now_then_the_tenant_reads_and_downloads_its_receipt(
    world: api.World, clock: api.Clock
) -> None:
    _expire(world, world.recording_a, clock.now - timedelta(days=1))
    _expire(world, world.recording_b, clock.now - timedelta(days=1))
    enqueued: list[int] = []
    world.app.state.context.on_job_enqueued = lambda: enqueued.append(1)

    assert (
        world.client.post("/api/v1/operator/purge", headers=world.auth("a_admin")).status_code
        == 403
    )
    r = world.client.post("/api/v1/operator/purge", headers=world.auth("operator"))
    assert r.status_code == 202 and r.json()["kind"] == "retention.purge" and enqueued == [1]
    load_handlers()
    runner = JobRunner(JobServices(world.sessions, world.blobs, load_settings(), clock=clock))
    assert runner.run_one()
    with world.sessions() as session:
        job = session.get(Job, r.json()["job_id"])
        assert job is not None and job.state == "done", job and job.message
        assert job.result is not None and job.result["expired"] == 2

    base = f"/api/v1/tenants/{world.tenant_a}/deletion-receipts"
    page = world.client.get(base, headers=world.auth("a_admin")).json()
    [receipt] = page["items"]
    assert (receipt["kind"], receipt["tenant_id"], receipt["counts"]["expired"]) == (
        "purge",
        world.tenant_a,
        1,
    )
    assert receipt["actor"].startswith("operator:")  # who asked for the run
    r = world.client.get(receipt["download"], headers=world.auth("a_admin"))
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == receipt["sha256"]
    [line] = [json.loads(x) for x in r.text.splitlines()]
    assert line["recording_id"] == world.recording_a and line["reason"] == "expired"
    assert line["sha256"] == hashlib.sha256(world.audio).hexdigest()

    # tenant isolation: another tenant's receipt is 404 for the admin, a user gets 403
    foreign = f"/api/v1/tenants/{world.tenant_b}/deletion-receipts"
    assert world.client.get(foreign, headers=world.auth("a_admin")).status_code == 404
    r = world.client.get(f"{base}/{receipt['id'] + 1}", headers=world.auth("a_admin"))
    assert (r.status_code, r.json()["error"]["id"]) == (404, "receipt-not-found")
    assert world.client.get(base, headers=world.auth("a_user")).status_code == 403
    everything = world.client.get(
        "/api/v1/operator/deletion-receipts", headers=world.auth("operator")
    ).json()["items"]
    assert sorted(i["tenant_id"] for i in everything) == sorted([world.tenant_a, world.tenant_b])
    with world.sessions() as session:
        downloads = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "deletion-receipt.download")
        ).all()
        assert [(d.tenant_id, d.target) for d in downloads] == [
            (world.tenant_a, f"deletion-receipt:{receipt['id']}")
        ]

    # an altered list is never handed out
    with world.sessions() as session:
        row = session.scalars(select(Recording).where(Recording.id == world.recording_a)).one()
        assert row.audio_deleted_reason == "expired"
    key = next((world.blobs.root / "receipts").rglob(f"{receipt['id']}.jsonl"))
    key.write_bytes(key.read_bytes().replace(b"expired", b"kept!!!"))
    r = world.client.get(receipt["download"], headers=world.auth("a_admin"))
    assert (r.status_code, r.json()["error"]["id"]) == (500, "receipt-integrity")
