"""After hang-up: finish spools into recordings, off the event loop.

``Finisher.submit`` queues a spool directory; decoding and encoding run in a
process pool, the database and blob writes in a thread. ``recover`` finds
spools left by a crash (no ``end`` event, or ended but never stored) and
finishes them the same way. A spool is deleted only after its rows committed.
A call nobody was recorded in is listed for its parties' tenants (rows only)
and its spool deleted unread: no audio of it is ever decoded or stored.
A call with several recordings (one per recorded user, SPEC section 2) is
decoded once in the pool and stored in one savepoint: every tenant's call and
every kept recording, or none.

A spool this process closed is not read back (``spool.take_closed``: its
journal lines are still in memory), and spools are removed by the database
writer's thread after the commit, never on the event loop (issue 12: call
set-ups and tear-downs per second).

Finishing never delays capture (issue 12): the pool's worker processes run at
a lower priority (``FINISH_NICENESS``, and ``SCHED_BATCH`` where the kernel has
it), so on a core shared with capture the kernel serves the event loop first;
under overload the backlog of ended calls grows and is drained once load falls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from callvault.metrics import Metrics
from callvault.recording.finisher import FinishedAudio, finish_all
from callvault.recording.journal import read_lines
from callvault.recording.spool import SpoolReader, is_unused, remove_spool, take_closed
from callvault.recording.store import CallSummary, delete_call, persist_finished, summarise
from callvault.storage.blobs import BlobStore

log = logging.getLogger(__name__)

WRITE_BATCH = 200

# nice 10 weighs 110 against capture's 1024: about 10 % of a saturated shared core
# keeps finishing moving, the rest stays with capture
FINISH_NICENESS = 10


Finished = list[FinishedAudio]  # every recording of one call


def lower_priority() -> None:
    """Pool initializer, in each worker process: yield the core to capture.

    SCHED_BATCH also tells the scheduler the worker is not interactive, so a
    waking event loop is not made to wait behind it. Both calls only ever lower
    a process's priority, which needs no privilege.
    """
    os.nice(FINISH_NICENESS)
    batch = getattr(os, "SCHED_BATCH", None)
    if batch is not None:
        try:
            os.sched_setscheduler(0, batch, os.sched_param(0))
        except OSError:  # a kernel or sandbox without it: the niceness still applies
            log.debug("SCHED_BATCH refused; finisher worker runs at nice only")


@dataclass(frozen=True)
class _Write:
    """A finished call waiting for the database writer."""

    summary: CallSummary
    audios: Finished | None
    future: asyncio.Future[str | None]
    directory: Path  # its spool, removed once its rows committed


def finish_directory(directory: str) -> Finished:
    """Runs in a worker process."""
    return finish_all(SpoolReader(Path(directory)))


class Finisher:
    def __init__(
        self,
        spool_root: Path,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        workers: int = 1,
        metrics: Metrics | None = None,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        self.on_stored = on_stored  # a stored recording may have queued jobs (mail)
        self.metrics = metrics or Metrics()
        self.spool_root = spool_root
        # what becomes of a stored call's spool: removed, or made the next call's
        # (``ReadySpools.recycle``, set by a running server)
        self.done_with_spool: Callable[[Path], None] = remove_spool
        self.sessions = sessions
        self.blobs = blobs
        self.pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=lower_priority,
        )
        self.tasks: set[asyncio.Task[str | None]] = set()
        # (call uuid, first recording id or None) for whoever listens (the demo, tests);
        # nothing is kept when nobody does
        self._subscribers: list[asyncio.Queue[tuple[str, str | None]]] = []
        # finished calls waiting for the database: written in batches, one transaction each
        self._writes: list[_Write] = []
        self._writer: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self.tasks)

    def subscribe(self) -> asyncio.Queue[tuple[str, str | None]]:
        """A queue that gets every call finished from now on, until ``unsubscribe``."""
        queue: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[tuple[str, str | None]]) -> None:
        self._subscribers.remove(queue)

    def _announce(self, call_uuid: str, recording_id: str | None) -> None:
        for queue in self._subscribers:
            queue.put_nowait((call_uuid, recording_id))

    def submit(self, call_uuid: str) -> asyncio.Task[str | None]:
        task = asyncio.ensure_future(self._finish(self.spool_root / call_uuid))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _finish(self, directory: Path) -> str | None:
        loop = asyncio.get_running_loop()
        reader = SpoolReader(directory)
        closed = take_closed(directory)  # this process just wrote it: nothing to read back
        if closed is not None:
            events = read_lines(closed.lines).events
        else:
            events = await asyncio.to_thread(reader.events)
        crashed = not any(e.type == "end" for e in events)
        try:
            # only a call cut short by a crash needs its last packet's time
            fallback = await asyncio.to_thread(reader.last_arrival_ms) if crashed else 0
            summary = summarise(events, fallback)
        except (ValueError, KeyError) as exc:
            log.warning("spool %s is unusable (%s); removed", directory.name, exc)
            await asyncio.to_thread(remove_spool, directory)
            return None
        if not summary.recorded:
            await self._list_unrecorded(directory, summary)
            return None
        try:
            if closed.has_audio if closed is not None else reader.has_audio():
                audios: Finished | None = await loop.run_in_executor(
                    self.pool, finish_directory, str(directory)
                )
            else:  # no RTP at all: the call is listed, there is nothing to encode
                audios = None
                log.info(
                    "call %s: no audio was captured (no packet came while the policy let "
                    "it be kept)",
                    summary.call_uuid,
                )
            recording_id = await self._store(summary, audios, directory)  # spool removed
        except Exception:
            log.exception("finishing call %s failed; spool kept for a retry", summary.call_uuid)
            self.metrics.finish_failures += 1
            return None
        for audio in audios or ():
            if audio.policy is not None and not audio.policy.keep:
                whose = "" if audio.key is None else f" (recording {audio.key})"
                reason = audio.policy.reason
                log.info("call %s%s: nothing kept: %s", summary.call_uuid, whose, reason)
        log.info("call %s recorded as %s", summary.call_uuid, recording_id)
        self.metrics.recordings_stored += 1
        self.on_stored()
        self._announce(summary.call_uuid, recording_id)
        return recording_id

    async def _list_unrecorded(self, directory: Path, summary: CallSummary) -> None:
        """A call nobody was recorded in: its tenants' Reports list it (rows and
        parties only); its spool is never decoded and no audio of it is written."""
        reason = summary.not_recorded_reason or "no party is a user on the recording list"
        log.info("call %s (%s) not recorded: %s", summary.call_uuid, summary.sip_call_id, reason)
        if summary.listed:
            try:
                await self._store(summary, None, directory)  # spool removed
            except Exception:
                log.exception("listing call %s failed; spool kept for a retry", summary.call_uuid)
                self.metrics.finish_failures += 1
                return
        else:
            await asyncio.to_thread(self.done_with_spool, directory)
        self.metrics.calls_not_recorded += 1
        self._announce(summary.call_uuid, None)

    async def _store(
        self, summary: CallSummary, audios: Finished | None, directory: Path
    ) -> str | None:
        """Queue the call for the writer; the first stored recording's id (None: none).
        Its spool ``directory`` is removed by the writer once the rows committed."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._writes.append(_Write(summary, audios, future, directory))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_batches())
        return await future

    async def _write_batches(self) -> None:
        while self._writes:
            batch, self._writes = self._writes[:WRITE_BATCH], self._writes[WRITE_BATCH:]
            try:
                results = await asyncio.to_thread(self._store_batch, batch)
            except Exception as exc:  # the whole transaction failed
                results = [exc] * len(batch)
            for write, result in zip(batch, results, strict=True):
                future = write.future
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _store_batch(self, batch: list[_Write]) -> list[str | BaseException | None]:
        """Runs in a thread: every call of the batch in one transaction; a call that
        fails is rolled back to its savepoint and reported alone. After the commit
        the spools of the stored calls are removed here, off the event loop (a
        directory's removal can wait on the file system's journal for milliseconds)."""
        results: list[str | BaseException | None] = []
        with self.sessions() as session:
            for write in batch:
                summary, audios = write.summary, write.audios
                try:
                    try:
                        with session.begin_nested():
                            stored = persist_finished(
                                session, self.blobs, summary, audios, commit=False
                            )
                    except IntegrityError:  # finished before a crash: replace the rows
                        with session.begin_nested():
                            for call_id in summary.call_ids():
                                delete_call(session, call_id)
                            stored = persist_finished(
                                session, self.blobs, summary, audios, commit=False
                            )
                    results.append(stored[0] if stored else None)
                except Exception as exc:
                    results.append(exc)
            session.commit()
        for write, result in zip(batch, results, strict=True):
            if not isinstance(result, BaseException):
                self.done_with_spool(write.directory)
        return results

    def recover(self, active: set[str]) -> list[asyncio.Task[str | None]]:
        """Finish every spool not belonging to a live call (left by a crash)."""
        if not self.spool_root.exists():
            return []
        tasks = []
        for entry in sorted(self.spool_root.iterdir()):
            if entry.is_dir() and entry.name not in active:
                if is_unused(entry):  # made ahead, no call took it: nothing to finish
                    remove_spool(entry)
                    continue
                log.info("recovering unfinished spool %s", entry.name)
                tasks.append(self.submit(entry.name))
        return tasks

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)
