"""Bulk download on S3 (issue 13, "ZIP exports stream from S3 to S3"): the export job
reads the recordings by ranged GETs and writes each ZIP part as a multipart upload,
never through the local disk; the ZIPs hold what the local store's export holds;
a failure midway leaves no part object and no incomplete upload, and the job's retry
builds the export.

The API suite's two-tenant world; the job runs on a fake clock against an S3 store
talking HTTP to the tests' S3 server (``s3_server.py``), the downloads go through the
portal built on that store.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import callvault.exports.job  # noqa: F401  (registers the export handlers)
from callvault.db.models import Call, Export, ExportFile, Job, Recording
from callvault.jobs.registry import JobServices
from callvault.jobs.runner import JobRunner
from callvault.metrics import OutboxMetrics
from callvault.portal.app import create_app
from callvault.portal.context import PortalContext
from callvault.settings import Settings, load_settings
from callvault.storage.blobs import BlobStore
from callvault.storage.outbox import OutboxBlobStore
from callvault.storage.s3 import S3BlobStore
from tests.api import conftest as api
from tests.api.conftest import World, seed_recording
from tests.exports.conftest import START, FakeClock, bulk_on
from tests.storage.conftest import s3_settings
from tests.storage.s3_server import S3Server

world = api.world

MB = 1_000_000
MIB = 1024 * 1024


@dataclass
class S3Export:
    world: World
    s3: S3Server
    store: S3BlobStore
    clock: FakeClock
    tmp_path: Path

    def settings(self, **more: Any) -> Settings:
        return load_settings(data_dir=self.tmp_path / "data", **more)

    def runner(self, blobs: BlobStore, **settings: Any) -> JobRunner:
        services = JobServices(self.world.sessions, blobs, self.settings(**settings), self.clock)
        return JobRunner(services)

    def ask(self) -> str:
        w = self.world
        r = w.client.post(
            f"/api/v1/tenants/{w.tenant_a}/exports",
            json={"month": "2026-11"},
            headers=w.auth("a_admin"),
        )
        assert r.status_code == 202, r.text
        export_id: str = r.json()["id"]
        return export_id

    def export(self, export_id: str) -> Export:
        with self.world.sessions() as session:
            export = session.get(Export, export_id)
            assert export is not None
            session.expunge(export)
            return export

    def rows(self, export_id: str) -> list[ExportFile]:
        with self.world.sessions() as session:
            query = select(ExportFile).where(ExportFile.export_id == export_id)
            return list(session.scalars(query.order_by(ExportFile.ordinal)))

    def objects(self, prefix: str = "rec/exports/") -> dict[str, int]:
        listed = self.store.client.list_objects_v2(Bucket=self.store.bucket, Prefix=prefix)
        return {o["Key"]: o["Size"] for o in listed.get("Contents", [])}

    def pending_uploads(self) -> list[object]:
        return list(
            self.store.client.list_multipart_uploads(Bucket=self.store.bucket).get("Uploads", [])
        )


def _seed(w: World, n: int, size: int) -> str:
    """A recording of tenant A in November 2026 whose audio (``size`` bytes) is in the
    world's local store."""
    audio = hashlib.sha256(str(n).encode()).digest() * (size // 32 + 1)
    with w.sessions() as session:
        rec_id = seed_recording(session, w.blobs, w.tenant_a, w.users["a_user"], audio[:size], 0)
        recording = session.get(Recording, rec_id)
        assert recording is not None
        call = session.get(Call, recording.call_id)
        assert call is not None
        call.sip_call_id = f"s3-export-{n}"
        call.started_at = recording.started_at = datetime(2026, 11, 3, 9, n, tzinfo=UTC)
        session.commit()
        return rec_id


def _copy_recordings(w: World, target: BlobStore) -> None:
    """Tenant A's recordings into ``target``, as if they had been finished there."""
    with w.sessions() as session:
        for key in session.scalars(
            select(Recording.blob_key).where(Recording.tenant_id == w.tenant_a)
        ):
            target.put(key, w.blobs.read(key))


@pytest.fixture
def sx(world: World, s3: S3Server, tmp_path: Path) -> Iterator[S3Export]:
    clock = FakeClock(START)
    world.app.state.clock = clock
    bulk_on(world, world.tenant_a)
    for n in range(4):
        _seed(world, n, 3 * MB)
    settings = s3_settings(s3.url, tmp_path, s3.new_bucket())
    made = S3BlobStore.from_settings(settings, attempts=1)  # a failure fails at once
    store = S3BlobStore(made.client, made.bucket, made.prefix, multipart_chunk=5 * MIB)
    _copy_recordings(world, store)
    yield S3Export(world, s3, store, clock, tmp_path)


def _downloaded(sx: S3Export, export_id: str, store: BlobStore) -> list[bytes]:
    """Every part through the portal built on ``store``, checked against its row."""
    w = sx.world
    parts = []
    with TestClient(create_app(PortalContext(w.sessions, store))) as client:
        for row in sx.rows(export_id):
            url = f"/api/v1/tenants/{w.tenant_a}/exports/{export_id}/files/{row.ordinal}"
            r = client.get(url, headers=w.auth("a_admin"))
            assert r.status_code == 200, r.text
            assert (len(r.content), hashlib.sha256(r.content).hexdigest()) == (
                row.size_bytes,
                row.sha256,
            )
            parts.append(r.content)
    return parts


def _contents(part: bytes) -> tuple[dict[str, str], list[dict[str, Any]], bytes]:
    """A ZIP part's MP3s by name with their SHA-256, its manifest's entries and its CSV."""
    with zipfile.ZipFile(io.BytesIO(part)) as zf:
        assert zf.testzip() is None  # every member's CRC-32
        manifest = json.loads(zf.read("manifest.json"))
        members = {
            name: hashlib.sha256(zf.read(name)).hexdigest()
            for name in zf.namelist()
            if name.endswith(".mp3")
        }
        assert members == {e["file"]: e["sha256"] for e in manifest["files"]}
        return members, manifest["files"], zf.read("manifest.csv")


def test_an_export_streams_from_s3_to_s3_and_holds_what_the_local_export_holds(
    sx: S3Export,
) -> None:
    w = sx.world
    split = {"export_part_max_bytes": 7 * MB}  # two 3 MB recordings a part: two parts
    local_id = sx.ask()
    sx.runner(w.blobs, **split).run_due()
    assert sx.export(local_id).state == "ready"
    local = [_contents(p) for p in _downloaded(sx, local_id, w.blobs)]

    sx.s3.clear_log()
    s3_id = sx.ask()
    sx.runner(sx.store, **split).run_due()
    export = sx.export(s3_id)
    assert (export.state, export.error, export.recordings) == ("ready", None, 6)
    rows = sx.rows(s3_id)
    assert len(rows) == 2 and all(5 * MIB < r.size_bytes <= 7 * MB for r in rows)
    # the same members with the same SHA-256 (each the recording's own), the same manifests
    remote = [_contents(p) for p in _downloaded(sx, s3_id, sx.store)]
    assert remote == local
    with w.sessions() as session:
        stored = {r.id: r.sha256 for r in session.scalars(select(Recording))}
    for _members, entries, _csv in remote:
        assert all(stored[e["recording_id"]] == e["sha256"] for e in entries)
    # S3 to S3: the parts are the bucket's objects, the big ones multipart uploads, the
    # recordings were read by ranged GETs, nothing went through the local disk
    assert sx.objects() == {f"rec/{r.blob_key}": r.size_bytes for r in rows}
    assert sx.pending_uploads() == []
    created = [r for r in sx.s3.requests("POST") if r.query == "uploads"]
    assert len(created) == 2  # each part one multipart upload (of a 5 MiB and a 1 MB part)
    gets = [r for r in sx.s3.requests("GET") if r.path.endswith(".mp3")]
    assert gets and all(g.range for g in gets)
    assert not [p for p in (sx.tmp_path / "data").rglob("*") if p.is_file()]


def test_a_failure_midway_leaves_nothing_in_the_bucket_and_the_job_retries(
    sx: S3Export,
) -> None:
    """The one ZIP part (12 MB: three S3 parts of 5 MiB) fails at its second S3 part."""
    export_id = sx.ask()
    sx.s3.fail("PUT", 500, query="partNumber=2")
    runner = sx.runner(sx.store)
    runner.run_due()
    export = sx.export(export_id)
    assert export.state == "running" and sx.rows(export_id) == []
    assert sx.objects() == {} and sx.pending_uploads() == []
    with sx.world.sessions() as session:
        job = session.get(Job, export.job_id)
        assert job is not None and job.state == "queued" and job.attempts == 1
        assert "part 2" in (job.message or "")

    sx.clock.advance(minutes=1)  # the job's backoff
    runner.run_due()
    export = sx.export(export_id)
    assert (export.state, export.recordings) == ("ready", 6)
    [row] = sx.rows(export_id)
    assert sx.objects() == {f"rec/{row.blob_key}": row.size_bytes}
    [(members, _entries, _csv)] = [_contents(p) for p in _downloaded(sx, export_id, sx.store)]
    assert len(members) == 6
    assert sx.pending_uploads() == []


def test_through_the_outbox_the_parts_go_straight_to_s3_and_waiting_recordings_are_read(
    sx: S3Export,
) -> None:
    """With the outbox (the default with S3), recordings that still wait on the local disk
    are read from it, and the parts are not queued behind them: they go to S3."""
    w = sx.world
    outbox = OutboxBlobStore(sx.tmp_path / "outbox", sx.store, OutboxMetrics())
    _copy_recordings(w, outbox)  # finished just now: not uploaded yet
    waiting = outbox.pending()
    assert len(waiting) == 6
    export_id = sx.ask()
    sx.runner(outbox).run_due()
    assert sx.export(export_id).state == "ready"
    [row] = sx.rows(export_id)
    assert outbox.pending() == waiting
    assert sx.objects() == {f"rec/{row.blob_key}": row.size_bytes}
    [(members, _entries, _csv)] = [_contents(p) for p in _downloaded(sx, export_id, outbox)]
    assert len(members) == 6
