"""Job kinds and their handlers, and what a handler is given.

A handler is a plain function ``(JobContext) -> dict | None`` run in a worker
thread; it opens its own database sessions and must be idempotent, because a
job whose worker died is run again once its lease ran out. It reports
progress with ``ctx.progress``; it raises ``RetryLater`` for a temporary
failure (retried with backoff) and ``JobFailed`` for a permanent one; any
other exception is treated as temporary. Its return value is the job's result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from callvault.storage.blobs import BlobStore

if TYPE_CHECKING:
    from callvault.settings import Settings

Clock = Callable[[], datetime]
Progress = Callable[[int, "int | None", "str | None"], None]


class RetryLater(Exception):
    """A temporary failure: the job is tried again later (``after``, or the backoff)."""

    def __init__(self, message: str, after: timedelta | None = None) -> None:
        super().__init__(message)
        self.after = after


class JobFailed(Exception):
    """A permanent failure: the job is not retried; the message is shown to the admin."""


@dataclass
class JobServices:
    """What every handler may use; built once by the composition root."""

    sessions: sessionmaker[Session]
    blobs: BlobStore
    settings: Settings
    clock: Clock
    # called when a job changed the directory (tenants, users): reload SIP matching
    on_directory_change: Callable[[], None] = field(default=lambda: None)


@dataclass
class JobContext:
    services: JobServices
    job_id: int
    kind: str
    tenant_id: int | None
    payload: dict[str, Any]
    attempt: int  # 1 on the first run
    progress: Progress

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.services.sessions

    @property
    def blobs(self) -> BlobStore:
        return self.services.blobs

    def now(self) -> datetime:
        return self.services.clock()


Handler = Callable[[JobContext], "dict[str, Any] | None"]

HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register ``function`` as the handler of ``kind`` (one handler per kind)."""

    def register(function: Handler) -> Handler:
        if HANDLERS.get(kind, function) is not function:
            raise ValueError(f"job kind {kind!r} has a handler already")
        HANDLERS[kind] = function
        return function

    return register
