"""A small world for the purge's tests: tenants, users and recordings with real blobs,
a job runner on a fake clock (``JobServices(clock=...)``); no portal."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callvault.admin import create_tenant, create_user
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Call, DeletionReceipt, Recording
from callvault.jobs.kinds import load_handlers
from callvault.jobs.registry import JobServices
from callvault.jobs.runner import JobRunner
from callvault.settings import load_settings
from callvault.storage.blobs import BlobStore, LocalBlobStore

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


class Clock:
    def __init__(self, start: datetime = NOW) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass
class PurgeWorld:
    sessions: sessionmaker[Session]
    blobs: LocalBlobStore
    clock: Clock
    tenants: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    n: int = 0

    def runner(self, blobs: BlobStore | None = None) -> JobRunner:
        load_handlers()
        services = JobServices(
            self.sessions, blobs or self.blobs, load_settings(), clock=self.clock
        )
        return JobRunner(services)

    def recording(
        self,
        tenant: str,
        user: str,
        *,
        started: timedelta,
        expires: timedelta | None,
        duration_s: int = 30,
    ) -> str:
        """A recording started ``started`` from now (negative: past), expiring ``expires``
        from now; its blob holds a few distinct bytes."""
        self.n += 1
        audio = f"audio {self.n} ".encode() * 50
        at = self.clock.now + started
        with self.sessions() as session:
            call = Call(
                tenant_id=self.tenants[tenant],
                sip_call_id=f"purge-{self.n}",
                direction="inbound",
                started_at=at,
                ended_at=at + timedelta(seconds=duration_s),
                duration_ms=duration_s * 1000,
            )
            session.add(call)
            session.flush()
            key = f"{self.tenants[tenant]}/{call.id}.mp3"
            self.blobs.put(key, audio)
            session.add(
                Recording(
                    id=call.id,
                    tenant_id=self.tenants[tenant],
                    call_id=call.id,
                    user_id=self.users[user],
                    blob_key=key,
                    sha256=hashlib.sha256(audio).hexdigest(),
                    size_bytes=len(audio),
                    duration_ms=duration_s * 1000,
                    channels=2,
                    sample_rate=8000,
                    started_at=at,
                    expires_at=None if expires is None else self.clock.now + expires,
                )
            )
            session.commit()
            return call.id

    def has_blob(self, recording_id: str) -> bool:
        with self.sessions() as session:
            row = session.get(Recording, recording_id)
            assert row is not None
            return (self.blobs.root / row.blob_key).exists()

    def deleted_reason(self, recording_id: str) -> str | None:
        with self.sessions() as session:
            row = session.get(Recording, recording_id)
            assert row is not None
            return row.audio_deleted_reason

    def receipts(self) -> list[DeletionReceipt]:
        with self.sessions() as session:
            return list(session.scalars(select(DeletionReceipt).order_by(DeletionReceipt.id)))

    def receipt_lines(self, receipt: DeletionReceipt) -> list[dict[str, object]]:
        assert receipt.blob_key is not None
        body = self.blobs.read(receipt.blob_key)
        assert hashlib.sha256(body).hexdigest() == receipt.sha256
        return [json.loads(line) for line in body.splitlines()]


def make_world(tmp_path: Path, url: str | None = None) -> PurgeWorld:
    """On SQLite in ``tmp_path``, or on the database at ``url`` (PostgreSQL)."""
    url = url or f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    sessions = make_sessionmaker(make_engine(url))
    world = PurgeWorld(sessions, LocalBlobStore(tmp_path / "blobs"), Clock())
    with sessions() as session:
        a = create_tenant(session, "Alpha", ["alpha.example"], ["+31201110000"])
        b = create_tenant(session, "Beta", ["beta.example"], ["+31202220000"])
        users = {
            "anna": create_user(session, a, "Anna", extension="101", recorded=True),
            "arie": create_user(session, a, "Arie", extension="102", recorded=True),
            "bob": create_user(session, b, "Bob", extension="101", recorded=True),
        }
        session.commit()
        world.tenants = {"a": a.id, "b": b.id}
        world.users = {name: user.id for name, user in users.items()}
    return world
