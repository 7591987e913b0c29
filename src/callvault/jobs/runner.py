"""Runs due jobs: ``run_due`` (synchronous, for tests and the CLI) and
``JobRunner.run_forever`` (the in-process worker of ``callvault serve``).

Schedules (the daily purge, session clean-up) are turned into jobs once per
slot by ``tick``; whichever process comes first creates the slot's job.

Whatever a handler does (returns something that is not JSON, raises any
exception, even ``SystemExit``), the runner records it on the job and goes on
with the next one: ``RetryLater`` and unexpected errors are retried with
backoff, ``JobFailed`` fails the job for good. Only ``KeyboardInterrupt`` is
passed on, after the job is recorded as failed for now.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from callvault.jobs import queue
from callvault.jobs.registry import HANDLERS, JobContext, JobFailed, JobServices, RetryLater

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """``kind`` runs once per slot; ``slot(now)`` names it (a day: ``2026-12-01``)."""

    kind: str
    slot: Callable[[datetime], str]


def daily(kind: str) -> Schedule:
    return Schedule(kind, lambda now: now.strftime("%Y-%m-%d"))


def hourly(kind: str) -> Schedule:
    return Schedule(kind, lambda now: now.strftime("%Y-%m-%dT%H"))


class JobRunner:
    def __init__(
        self,
        services: JobServices,
        *,
        worker: str | None = None,
        schedules: tuple[Schedule, ...] = (),
        poll_s: float = 1.0,
    ) -> None:
        self.services = services
        # unique per runner: two runners of one process must not pass for each other
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.schedules = schedules
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def tick(self) -> None:
        """Create this slot's job of every schedule (at most once, across processes),
        and fail the jobs whose worker died on their last attempt."""
        now = self.services.clock()
        with self.services.sessions() as session:
            for schedule in self.schedules:
                queue.schedule_once(session, schedule.kind, schedule.slot(now), at=now)
            reaped = queue.reap_abandoned(session, now)
        if reaped:
            log.warning("%d job(s) failed: their worker stopped on every attempt", reaped)

    def run_one(self) -> bool:
        """Claim and run one due job; False when none was due."""
        services = self.services
        with services.sessions() as session:
            job = queue.claim(session, self.worker, services.clock(), frozenset(HANDLERS))
            if job is None:
                return False
            job_id, kind, attempt = job.id, job.kind, job.attempts
            context = JobContext(
                services=services,
                job_id=job_id,
                kind=kind,
                tenant_id=job.tenant_id,
                payload=dict(job.payload or {}),
                attempt=attempt,
                progress=functools.partial(self._progress, job_id, attempt),
            )
        try:
            result = _json_result(HANDLERS[kind](context))
        except RetryLater as exc:
            self._failed(job_id, kind, attempt, _describe(exc, plain=True), after=exc.after)
        except JobFailed as exc:
            self._failed(job_id, kind, attempt, _describe(exc, plain=True), permanent=True)
        except KeyboardInterrupt:
            self._failed(job_id, kind, attempt, "interrupted")
            raise
        except BaseException as exc:  # a handler must not stop the runner, whatever it raises
            log.exception("job %s (%s) failed", job_id, kind)
            self._failed(job_id, kind, attempt, _describe(exc))
        else:
            with services.sessions() as session:
                if not queue.complete(
                    session, job_id, result, services.clock(), worker=self.worker, attempt=attempt
                ):
                    log.warning("job %s (%s): finished after another worker took it", job_id, kind)
        return True

    def _progress(
        self,
        job_id: int,
        attempt: int,
        done: int,
        total: int | None = None,
        message: str | None = None,
    ) -> None:
        services = self.services
        with services.sessions() as session:
            queue.report_progress(
                session,
                job_id,
                done,
                total,
                message,
                worker=self.worker,
                attempt=attempt,
                at=services.clock(),  # renews the lease: a long job stays this worker's
            )

    def _failed(
        self,
        job_id: int,
        kind: str,
        attempt: int,
        error: str,
        *,
        permanent: bool = False,
        after: timedelta | None = None,
    ) -> None:
        with self.services.sessions() as session:
            state = queue.fail(
                session,
                job_id,
                error,
                self.services.clock(),
                permanent=permanent,
                after=after,
                worker=self.worker,
                attempt=attempt,
            )
        log.warning("job %s (%s): %s; %s", job_id, kind, error, state)

    def run_due(self, limit: int = 10_000) -> int:
        """Schedules, then every due job; returns how many ran."""
        self.tick()
        ran = 0
        while ran < limit and self.run_one():
            ran += 1
        return ran

    def wake(self) -> None:
        """A job was enqueued: look now rather than at the next poll.

        Safe from any thread (the portal's routes run in worker threads).
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def run_forever(self) -> None:
        self._loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.to_thread(self.run_due)
            except Exception:  # the database may be away for a moment: try again
                log.exception("job runner")
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the event is set, and stop() then waits forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()


def _json_result(result: Any) -> dict[str, Any] | None:
    """The handler's result if it can be stored; else the job fails for good."""
    if result is not None and not isinstance(result, dict):
        raise JobFailed(f"the handler returned {type(result).__name__}, not a dict")
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        raise JobFailed(f"the handler's result is not JSON: {_describe(exc)}") from exc
    return result


def _describe(exc: BaseException, *, plain: bool = False) -> str:
    """The failure as the admin reads it; never raises (``__str__`` may)."""
    try:
        text = str(exc)
    except Exception:
        text = "(no message)"
    return text if plain else f"{type(exc).__name__}: {text}"
