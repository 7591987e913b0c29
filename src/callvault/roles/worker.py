"""The worker role: the job runner (retention, exports, mail, push; ``jobs/``).

Several workers may share one database: jobs are claimed with a lease
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL). A job enqueued in another process
(the portal's, the media node's finisher) wakes no runner here; the runner
finds it at its next poll (``poll_s``, 1 s), so no hand-off between processes
is needed. In one process the enqueuer calls ``wake`` and it runs at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from callvault.jobs.kinds import SCHEDULES, load_handlers
from callvault.jobs.registry import JobServices
from callvault.jobs.runner import JobRunner
from callvault.settings import Settings
from callvault.storage.blobs import BlobStore


class WorkerRole:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        *,
        on_directory_change: Callable[[], None],
    ) -> None:
        load_handlers()
        self.jobs = JobRunner(
            JobServices(
                sessions,
                blobs,
                settings,
                clock=lambda: datetime.now(UTC),
                on_directory_change=on_directory_change,
            ),
            schedules=SCHEDULES,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self.jobs.run_forever())

    def readiness(self) -> dict[str, bool]:
        """For ``/readyz``: the job runner's loop is running."""
        return {"jobs": self._task is not None and not self._task.done()}

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
