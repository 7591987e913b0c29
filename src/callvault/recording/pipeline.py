"""After hang-up: finish spools into recordings, off the event loop.

``Finisher.submit`` queues a spool directory; decoding and encoding run in a
process pool, the database and blob writes in a thread. ``recover`` finds
spools left by a crash (no ``end`` event, or ended but never stored) and
finishes them the same way. A spool is deleted only after its rows committed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import shutil
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from callvault.metrics import Metrics
from callvault.recording.finisher import FinishedAudio, finish
from callvault.recording.spool import SpoolReader
from callvault.recording.store import CallSummary, persist_call, summarise
from callvault.storage.blobs import BlobStore

log = logging.getLogger(__name__)


def finish_directory(directory: str) -> FinishedAudio:
    """Runs in a worker process."""
    return finish(SpoolReader(Path(directory)))


class Finisher:
    def __init__(
        self,
        spool_root: Path,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        workers: int = 1,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.spool_root = spool_root
        self.sessions = sessions
        self.blobs = blobs
        self.pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("forkserver")
        )
        self.tasks: set[asyncio.Task[str | None]] = set()
        self.finished: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()

    @property
    def pending(self) -> int:
        return len(self.tasks)

    def submit(self, call_uuid: str) -> asyncio.Task[str | None]:
        task = asyncio.ensure_future(self._finish(self.spool_root / call_uuid))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _finish(self, directory: Path) -> str | None:
        loop = asyncio.get_running_loop()
        reader = SpoolReader(directory)
        events = await asyncio.to_thread(reader.events)
        try:
            summary = summarise(events, await asyncio.to_thread(reader.last_arrival_ms))
        except (ValueError, KeyError) as exc:
            log.warning("spool %s is unusable (%s); removed", directory.name, exc)
            shutil.rmtree(directory, ignore_errors=True)
            return None
        if not summary.recorded:
            reason = summary.not_recorded_reason or "no party is a user on the recording list"

            log.info(
                "call %s (%s) not recorded: %s", summary.call_uuid, summary.sip_call_id, reason
            )
            shutil.rmtree(directory, ignore_errors=True)
            self.metrics.calls_not_recorded += 1
            await self.finished.put((summary.call_uuid, None))
            return None
        try:
            audio = await loop.run_in_executor(self.pool, finish_directory, str(directory))
            recording_id = await asyncio.to_thread(self._store, summary, audio)
        except Exception:
            log.exception("finishing call %s failed; spool kept for a retry", summary.call_uuid)
            self.metrics.finish_failures += 1
            return None
        shutil.rmtree(directory, ignore_errors=True)
        if audio.policy is not None and not audio.policy.keep:
            log.info("call %s: nothing kept: %s", summary.call_uuid, audio.policy.reason)
        log.info("call %s recorded as %s", summary.call_uuid, recording_id)
        self.metrics.recordings_stored += 1
        await self.finished.put((summary.call_uuid, recording_id))
        return recording_id

    def _store(self, summary: CallSummary, audio: FinishedAudio) -> str | None:
        with self.sessions() as session:
            return persist_call(session, self.blobs, summary, audio)

    def recover(self, active: set[str]) -> list[asyncio.Task[str | None]]:
        """Finish every spool not belonging to a live call (left by a crash)."""
        if not self.spool_root.exists():
            return []
        tasks = []
        for entry in sorted(self.spool_root.iterdir()):
            if entry.is_dir() and entry.name not in active:
                log.info("recovering unfinished spool %s", entry.name)
                tasks.append(self.submit(entry.name))
        return tasks

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)
