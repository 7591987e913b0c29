"""Bulk download tests: the API world (real blobs, SQLite), a job runner on a fake
clock shared with the portal, and a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

import callvault.exports.job  # noqa: F401  (registers the export handlers)
from callvault.db.models import Tenant, User
from callvault.jobs.registry import JobServices
from callvault.jobs.runner import JobRunner, daily
from callvault.settings import Settings, load_settings
from tests.api.conftest import World, world  # noqa: F401  (the fixture)

START = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content: bytes = envelope.content  # type: ignore[attr-defined]
        with self.lock:
            self.messages.append(email.message_from_bytes(content))
        return "250 OK"


class MailServer:
    """aiosmtpd on a fixed loopback port, started and stopped by the test."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mailbox = Mailbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class ExportWorld:
    world: World
    clock: FakeClock
    settings: Settings
    runner: JobRunner
    mail: MailServer


def export_settings(tmp_path: Path, port: int, **overrides: Any) -> Settings:
    return load_settings(
        data_dir=tmp_path / "data",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_timeout_s=5,
        public_url="https://portal.example",
        **overrides,
    )


def bulk_on(w: World, tenant_id: int, *, admin_email: str | None = "ada@alpha.example") -> None:
    """Retention 180 days and bulk download on; the tenant's admin gets ``admin_email``."""
    with w.sessions() as session:
        tenant = session.get(Tenant, tenant_id)
        assert tenant is not None
        tenant.retention_days, tenant.bulk_download = 180, True
        admin = session.scalars(
            select(User).where(User.tenant_id == tenant_id, User.role == "admin")
        ).first()
        assert admin is not None
        admin.email = admin_email
        session.commit()


@pytest.fixture
def ew(world: World, tmp_path: Path, mail_server: MailServer) -> ExportWorld:  # noqa: F811
    clock = FakeClock(START)
    world.app.state.clock = clock
    settings = export_settings(tmp_path, mail_server.port)
    runner = JobRunner(
        JobServices(world.sessions, world.blobs, settings, clock=clock),
        schedules=(daily("exports.expire"),),
    )
    bulk_on(world, world.tenant_a)
    return ExportWorld(world, clock, settings, runner, mail_server)
