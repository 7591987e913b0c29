"""What the HTTP edge needs from the rest of the application."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from callvault.b2bua.coaching import CoachStarted
from callvault.live.board import LiveBoard
from callvault.metrics import Metrics
from callvault.storage.blobs import BlobStore


@dataclass
class PortalContext:
    sessions: sessionmaker[Session]
    blobs: BlobStore
    # Called after tenants/users change so SIP matching sees the change at once.
    on_directory_change: Callable[[], None] = field(default=lambda: None)
    metrics: Metrics = field(default_factory=Metrics)
    # Called after a job was enqueued, so the runner looks at once rather than at its next poll.
    on_job_enqueued: Callable[[], None] = field(default=lambda: None)
    # tests only: push endpoints on loopback (settings.push_allow_http_loopback)
    push_allow_http_loopback: bool = False
    # LiveCenter: the running calls (the app's board; an empty one for a portal without SIP)
    live: LiveBoard = field(default_factory=LiveBoard)
    # LiveCenter's coach button: (tenant, call id, supervisor's user id) -> callvault calls
    # the supervisor's phone (b2bua/coaching.py); None without a B2BUA (tests of the portal)
    coach: Callable[[int, str, int], CoachStarted] | None = None
    # /readyz: this process's own checks besides the database (SIP bound, job runner
    # running: roles/); None for a portal alone
    readiness: Callable[[], dict[str, bool]] | None = None
