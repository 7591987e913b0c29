"""The S3 outbox (issue 13, "S3-compatible blob store"; SPEC section 10): local disk first.

``OutboxBlobStore`` stands in front of the S3 store (``blob_store = "s3"``,
``s3_outbox`` on): a recording, an export part or a receipt list is written to
``data_dir/outbox/<key>`` and ``put``/``put_file`` return at once, so an S3
outage never blocks capture or finishing. A drain uploads what waits there,
oldest first, and removes the local copy only once S3 confirms it (a HEAD
answering the same size). Until then every read is answered from the local
copy; afterwards from S3. An outage therefore loses nothing: the backlog
shows in ``/metrics`` (``callvault_blob_outbox_*``) and drains when S3 answers
again.

- Durability: a blob is written to ``<name>~<random>`` (``~`` never occurs in
  a key, ``blobs.check_key``), fsynced and renamed, then its directory fsynced:
  it survives a crash the moment ``put`` returns. The waiting blobs are the
  files in the outbox directory, so a restart picks them up again (oldest
  modification time first); leftovers of an interrupted write (``~`` names) are
  removed at start. One process owns a ``data_dir``, as with the spool.
- The drain is a thread (``start``/``close``): boto3 blocks, and a thread keeps
  the uploads off the event loop without ``to_thread`` churn. ``put`` wakes it;
  one pass (``drain_once``) uploads the blobs that are due, oldest first, until
  none is left or the store fails. Backoffs are capped exponential
  (``retry_min_s`` doubling to ``retry_max_s``), each delay shortened by up to
  ``jitter`` at random so that nodes and blobs do not retry in step, and read on
  the ``clock`` passed in, so tests need no sleeps. Two kinds of failure:
  - the store's (no answer, a timeout, 5xx, throttling, bad credentials: any
    blob would fail alike) stops the pass; the next is due after the store's
    backoff (``retry_at``), and the blob is not charged with it;
  - a refusal of this blob (``BlobRefused``: S3 answered a 4xx about the object,
    such as a bucket policy's deny of its key; the stored size differs; the
    local copy cannot be read) puts that blob alone on its own backoff, and the
    pass goes on with the others. A refused blob is never dropped: it is
    retried at least every ``retry_max_s``, counted in
    ``callvault_blob_outbox_refused_files`` (and keeps the oldest age growing),
    logged as a warning at its first refusal and when its backoff reaches the
    cap (at most ``BLOB_WARNINGS`` per ``retry_max_s``, all blobs together),
    and uploaded as soon as the store takes it;
  - the breaker: S3 says AccessDenied for one key's deny as for a whole
    bucket's, so ``REFUSALS_TRIP`` first refusals in a row with no upload
    between are taken for the store's failure: undone (no blob charged), the
    pass stopped, the store backed off. The next pass tries the other blobs
    first; once one is taken, the suspects are tried again, each on its own.
    A HEAD refused after its PUT was taken (write-only credentials) is the
    store's failure too.
- Uploading: the local file is hard-linked to ``<name>~upload`` and that link is
  handed to the remote's ``put_file`` (which consumes what it is given: the
  S3 store streams it, multipart when large): the blob itself stays readable
  until it is confirmed. A blob replaced while it was uploading (another inode)
  stays queued and is uploaded again.
- Deleting (purge, termination, "do not store"): the local copy goes first,
  then the remote's confirmed delete; a delete waits for an upload of the same
  key in flight, so a purged blob is never re-uploaded behind its delete.
- ``writer`` (an export's ZIP part) bypasses the outbox: it streams to the
  remote, and a failure fails the export's job, which builds it again later.
"""

from __future__ import annotations

import enum
import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from callvault.metrics import OutboxMetrics
from callvault.storage.blobs import (
    BlobNotFound,
    BlobRefused,
    BlobStore,
    BlobStoreError,
    BlobWriter,
    LocalBlobStore,
    check_key,
    fsync_dir,
    move_into,
    temporary_name,
)

log = logging.getLogger(__name__)

TMP = "~"  # marks a file that is not (yet) a blob: never part of a valid key
RETRY_MIN_S = 1.0
RETRY_MAX_S = 60.0
RETRY_JITTER = 0.2  # a backoff's delay is up to this fraction shorter, at random
# refusals in a row, with no upload between, that are the store's, not each blob's: a whole
# bucket denied (AccessDenied), a disabled KMS key, a wrong region refuse every blob alike
REFUSALS_TRIP = 3
# per-blob refusal warnings logged per ``retry_max_s``; more go to DEBUG, counted in the next
BLOB_WARNINGS = 3
CLOSE_WAIT_S = 10.0  # how long ``close`` lets an upload in flight finish


@dataclass
class _Waiting:
    """A blob in the outbox: its size, since when it waits, and its own backoff."""

    size: int
    since: float  # clock time it was queued
    refusals: int = 0  # the store's refusals of this blob in a row (an outage's are not its)
    due: float = 0.0  # not tried before this clock time, after a refusal


@dataclass(frozen=True)
class _Charge:
    """A refusal charged to a blob in this pass: what it was before, to undo if the store
    turns out to refuse every blob (``REFUSALS_TRIP``)."""

    key: str
    waiting: _Waiting
    refusals: int
    due: float
    exc: BaseException


class _Outcome(enum.Enum):
    UPLOADED = "uploaded"
    GONE = "gone"  # deleted meanwhile: nothing to upload
    REFUSED = "refused"  # this blob: it waits on its own backoff, the pass goes on
    STORE_FAILED = "store failed"  # the store: the pass stops


class OutboxBlobStore:
    """A ``BlobStore``: local disk first (``root``), uploaded to ``remote`` by the drain."""

    def __init__(
        self,
        root: Path,
        remote: BlobStore,
        metrics: OutboxMetrics,
        *,
        clock: Callable[[], float] = time.time,
        retry_min_s: float = RETRY_MIN_S,
        retry_max_s: float = RETRY_MAX_S,
        jitter: float = RETRY_JITTER,
        rng: random.Random | None = None,
    ) -> None:
        self.root = root
        self.remote = remote
        self.metrics = metrics
        self._clock = clock
        self.retry_min_s = min(retry_min_s, retry_max_s)
        self.retry_max_s = retry_max_s
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._local = LocalBlobStore(root)  # reads of what still waits here
        self._cond = threading.Condition()
        # insertion order is upload order, oldest first
        self._pending: dict[str, _Waiting] = {}
        self._bytes = 0
        self._refused = 0  # waiting blobs with a refusal
        self._uploading: str | None = None
        self._store_failures = 0  # the store's failures in a row
        self.retry_at = 0.0  # no upload before this (clock time), after the store failed
        # the blobs whose refusals tripped the breaker (undone): the next pass tries the
        # others first; once the store takes one, these are tried again and a refusal of
        # one of them is its own (it does not count towards the breaker)
        self._suspects: set[str] = set()
        self._blob_warnings = 0  # per-blob refusal warnings logged since ``_warnings_since``
        self._warnings_since = -float("inf")
        self._unlogged = 0  # per-blob refusals not logged as warnings since the last one
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._recover()

    # -- the waiting blobs --------------------------------------------------------------
    def _recover(self) -> None:
        """The outbox as a restart finds it: blobs to upload, interrupted writes removed."""
        found: list[tuple[float, str, int]] = []
        for path in self.root.rglob("*"):
            if not path.is_file():
                continue
            if TMP in path.name:
                path.unlink(missing_ok=True)  # a write or upload link a crash interrupted
                continue
            key = path.relative_to(self.root).as_posix()
            try:
                check_key(key)
            except ValueError:
                log.warning("outbox: %s is not a blob key; left alone", path)
                continue
            stat = path.stat()
            found.append((stat.st_mtime, key, stat.st_size))
        with self._cond:
            for since, key, size in sorted(found):
                self._pending[key] = _Waiting(size, since)
                self._bytes += size
            self._gauges()
        if found:
            log.info("outbox: %d blobs (%d bytes) wait for upload", len(found), self._bytes)

    def _gauges(self) -> None:
        """The metrics of the backlog; the caller holds ``_cond``."""
        self.metrics.files = len(self._pending)
        self.metrics.bytes = self._bytes
        self.metrics.refused = self._refused
        first = next(iter(self._pending.values()), None)
        self.metrics.oldest_since = None if first is None else first.since

    def _queued(self, key: str, size: int) -> None:
        with self._cond:
            self._forget(key)  # a new take: tried at once, whatever the old one's refusals
            self._pending[key] = _Waiting(size, self._clock())
            self._bytes += size
            self._gauges()
        self._wake.set()

    def _forget(self, key: str) -> None:
        """Drops ``key`` from the backlog; the caller holds ``_cond``."""
        old = self._pending.pop(key, None)
        if old is not None:
            self._bytes -= old.size
            if old.refusals:
                self._refused -= 1
            self._gauges()

    def pending(self) -> list[str]:
        """The keys waiting for upload, oldest first."""
        with self._cond:
            return list(self._pending)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    # -- BlobStore: writes ----------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_name(path)
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)
        self._queued(key, len(data))

    def put_file(self, key: str, path: Path) -> None:
        """Moves ``path`` into the outbox (a rename on the same file system)."""
        target = self._path(key)
        move_into(path, target)
        self._queued(key, target.stat().st_size)

    def delete(self, key: str) -> None:
        """The local copy, then the remote's confirmed delete (after an upload in flight)."""
        self._withdraw(key)
        self.remote.delete(key)

    def writer(self, key: str) -> BlobWriter:
        """Straight to the remote, not through the outbox: an export's part is streamed
        from S3 to S3 and rebuilt by its job's retry when S3 fails (docs/storage.md).
        What waits here under ``key`` is withdrawn first: it must not overwrite the new
        blob when it is uploaded later."""
        self._withdraw(key)
        return self.remote.writer(key)

    def _withdraw(self, key: str) -> None:
        """Removes the local copy of ``key`` from the backlog once an upload of it in flight
        ended."""
        path = self._path(key)
        with self._cond:
            path.unlink(missing_ok=True)
            self._forget(key)
            while self._uploading == key:
                self._cond.wait()

    # -- BlobStore: reads (the local copy while it waits, else the remote) -------------
    def size(self, key: str) -> int:
        try:
            return self._local.size(key)
        except BlobNotFound:
            return self.remote.size(key)

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        try:
            return self._local.read(key, start, end)
        except BlobNotFound:
            return self.remote.read(key, start, end)

    def open(self, key: str) -> BinaryIO:
        try:
            return self._local.open(key)
        except BlobNotFound:
            return self.remote.open(key)

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        try:  # an open file stays readable when the drain removes it after its upload
            return self._local.read_range(key, start, end)
        except BlobNotFound:
            return self.remote.read_range(key, start, end)

    # -- the drain --------------------------------------------------------------------------
    def drain_once(self) -> int:
        """Uploads the waiting blobs that are due, oldest first, until none is left or the
        store fails; nothing before ``retry_at``. A blob the store refuses waits on its own
        backoff while the others go; ``REFUSALS_TRIP`` first refusals in a row with no
        upload between are the store's (the breaker): the pass stops, the store backs off
        and the refusals are undone. Returns how many were uploaded."""
        done = 0
        charges: list[_Charge] = []  # this pass's refusals since its last upload
        alone: set[str] = set()  # suspects of a trip, tried after the store took a blob
        while not self._stopping.is_set():
            with self._cond:
                now = self._clock()
                if now < self.retry_at:
                    break
                due = [k for k, w in self._pending.items() if w.due <= now]
                # after a trip, the blobs not refused in it first: does the store take any?
                key = next((k for k in due if k not in self._suspects), None)
                if key is None:
                    key = next(iter(due), None)
                if key is None:
                    break
                waiting = self._pending[key]
                self._suspects.discard(key)
                self._uploading = key
            try:
                outcome = self._upload(key, waiting)
            except BlobRefused as exc:
                outcome, refused = _Outcome.REFUSED, exc
            finally:
                with self._cond:
                    self._uploading = None
                    self._cond.notify_all()
            if outcome is _Outcome.STORE_FAILED:
                break
            if outcome is _Outcome.UPLOADED:
                done += 1
                for stood in charges:  # the store takes blobs: these refusals stand
                    self._report(stood)
                charges.clear()
                with self._cond:
                    alone |= self._suspects
                    self._suspects.clear()
            elif outcome is _Outcome.REFUSED:
                charge = self._refusal(key, waiting, refused)
                if charge is not None and (charge.refusals or key in alone):
                    # refused before while the store took others: this blob's own
                    self._report(charge)
                elif charge is not None:
                    charges.append(charge)
                if len(charges) >= REFUSALS_TRIP:
                    self._tripped(charges)
                    return done
        for stood in charges:  # fewer than REFUSALS_TRIP in a row: each blob's own
            self._report(stood)
        return done

    def _tripped(self, charges: list[_Charge]) -> None:
        """``charges`` were refusals in a row, no upload between: the store refuses every
        blob alike. They are undone (no blob is charged with the store's failure), the
        pass stops and the store backs off, with one warning for the outage."""
        with self._cond:
            for charge in charges:
                waiting = charge.waiting
                if self._pending.get(charge.key) is waiting:
                    if waiting.refusals and not charge.refusals:
                        self._refused -= 1
                    waiting.refusals, waiting.due = charge.refusals, charge.due
                self._suspects.add(charge.key)
            self._gauges()
        last = charges[-1]
        error = BlobStoreError(f"{len(charges)} blobs refused in a row, none taken: {last.exc}")
        self._failed(last.key, error, counted=True)

    def next_attempt(self) -> float | None:
        """The clock time the drain has something to try next; None: nothing waits."""
        with self._cond:
            if not self._pending:
                return None
            return max(self.retry_at, min(w.due for w in self._pending.values()))

    def _backoff(self, failures: int) -> float:
        """The delay after ``failures`` in a row: doubling, capped, shortened at random."""
        delay = min(self.retry_max_s, self.retry_min_s * 2.0 ** (failures - 1))
        return delay * (1.0 - self.jitter * self._rng.random())

    def _upload(self, key: str, waiting: _Waiting) -> _Outcome:
        """One blob to the remote, confirmed, then its local copy removed."""
        path = self._path(key)
        link = path.with_name(f"{path.name}{TMP}upload")
        try:
            link.unlink(missing_ok=True)
            try:
                try:
                    with open(path, "rb") as local:  # an unreadable copy is this blob's
                        blob = os.fstat(local.fileno())
                except FileNotFoundError:
                    raise
                except OSError as exc:
                    raise BlobRefused(f"the outbox's copy of {key!r}: {exc}") from exc
                try:
                    os.link(path, link)
                except FileNotFoundError:
                    raise
                except OSError:  # no hard links on this file system
                    shutil.copyfile(path, link)
            except FileNotFoundError:  # deleted meanwhile (purge): nothing to upload
                with self._cond:
                    if not path.exists():
                        self._forget(key)
                return _Outcome.GONE
            size = link.stat().st_size
            self.remote.put_file(key, link)
            try:
                stored = self.remote.size(key)
            except BlobRefused as exc:  # it took the PUT: a HEAD refused is the store's
                raise BlobStoreError(f"{key!r} uploaded, its size not told: {exc}") from exc
            if stored != size:
                raise BlobRefused(f"{key!r}: {stored} bytes stored, {size} sent")
        except BlobRefused:
            raise  # this blob's: ``drain_once`` charges it
        except (BlobStoreError, BlobNotFound, OSError) as exc:
            self._failed(key, exc)
            return _Outcome.STORE_FAILED
        finally:
            link.unlink(missing_ok=True)
        with self._cond:
            self.metrics.uploads += 1
            if self._store_failures:
                log.info("outbox: uploads succeed again after %d failures", self._store_failures)
            self._store_failures, self.retry_at = 0, 0.0
            if waiting.refusals:
                log.info("outbox: %s uploaded after %d refusals", key, waiting.refusals)
            try:
                now = path.stat()
            except FileNotFoundError:
                self._forget(key)
                return _Outcome.UPLOADED
            # the very file uploaded, not one put again under the key meanwhile (a rename
            # makes a new inode): that one stays queued and is uploaded next
            if (now.st_ino, now.st_mtime_ns, now.st_size) == (
                blob.st_ino,
                blob.st_mtime_ns,
                blob.st_size,
            ):
                path.unlink()
                self._forget(key)
        return _Outcome.UPLOADED

    def _refusal(self, key: str, waiting: _Waiting, exc: BaseException) -> _Charge | None:
        """The store refused this blob: it alone waits, on its own backoff. Returns the
        charge, logged by ``_report`` once it stands (None: the blob was deleted or put
        again meanwhile)."""
        with self._cond:
            self.metrics.failures += 1
            if self._pending.get(key) is not waiting:
                return None  # deleted or put again meanwhile: the new take is tried afresh
            charge = _Charge(key, waiting, waiting.refusals, waiting.due, exc)
            if not waiting.refusals:
                self._refused += 1
            waiting.refusals += 1
            waiting.due = self._clock() + self._backoff(waiting.refusals)
            self._gauges()
        return charge

    def _report(self, charge: _Charge) -> None:
        """Logs a refusal that stood (the breaker did not undo it): a warning at the blob's
        first refusal and once more when its backoff reaches the cap, at most
        ``BLOB_WARNINGS`` of them (all blobs together) per ``retry_max_s``."""
        refusals = charge.refusals + 1
        capped = self.retry_min_s * 2.0 ** (refusals - 1) >= self.retry_max_s
        first_capped = capped and self.retry_min_s * 2.0 ** (refusals - 2) < self.retry_max_s
        level, unlogged = logging.DEBUG, 0
        if refusals == 1 or first_capped:
            with self._cond:
                now = self._clock()
                if now - self._warnings_since >= self.retry_max_s:
                    self._warnings_since, self._blob_warnings = now, 0
                if self._blob_warnings < BLOB_WARNINGS:
                    self._blob_warnings += 1
                    level, unlogged, self._unlogged = logging.WARNING, self._unlogged, 0
                else:
                    self._unlogged += 1
        log.log(
            level,
            "outbox: the store refused %s (%s; refusal %d in a row): it waits, retried at"
            " least every %g s, and the other blobs go on%s",
            charge.key,
            charge.exc,
            refusals,
            self.retry_max_s,
            f" ({unlogged} more refusals since the last warning)" if unlogged else "",
        )

    def _failed(self, key: str, exc: BaseException, *, counted: bool = False) -> None:
        """The store failed (not this blob): the pass stops, the next after its backoff.
        ``counted``: the failed attempts are in ``metrics.failures`` already."""
        with self._cond:
            self._store_failures += 1
            if not counted:
                self.metrics.failures += 1
            self.retry_at = self._clock() + self._backoff(self._store_failures)
            failures, waiting = self._store_failures, len(self._pending)
        # one warning per outage, not one per retry
        level = logging.WARNING if failures == 1 else logging.DEBUG
        log.log(level, "outbox: upload of %s failed (%s); %d blobs wait", key, exc, waiting)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # before the pass: a put during it wakes the next wait
            try:
                self.drain_once()
            except Exception as exc:  # the drain must outlive whatever goes wrong
                log.exception("outbox: drain pass failed")
                self._failed("(pass)", exc)
            at = self.next_attempt()
            self._wake.wait(None if at is None else max(0.0, at - self._clock()))

    def start(self) -> None:
        """Starts the drain thread (``callvault serve``); tests call ``drain_once``."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="blob-outbox", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stops the drain; what still waits is uploaded after the next start."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(CLOSE_WAIT_S)
            self._thread = None
