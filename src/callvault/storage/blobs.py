"""Blob store: where finished audio lives (issue 13).

``BlobStore`` is the interface; ``LocalBlobStore`` keeps blobs in a directory
(the default), ``storage/s3.py`` ``S3BlobStore`` in an S3-compatible bucket
(``blob_store = "s3"``; ``storage/factory.py`` picks one from the settings).
``put_file``, ``writer``, ``open`` and ``read_range`` move large blobs
(exports, audio) without holding them in memory. ``writer(key)`` streams a
blob that is made as it is written (an export's ZIP part): a ``BlobWriter``
takes bytes with ``write``, and the blob appears under its key only whole,
at ``commit``; ``abort`` leaves nothing behind. The local store writes a
temporary file next to the blob and renames it at commit; the S3 store
(``storage/s3.py``) feeds a multipart upload.

Errors: ``BlobNotFound`` when the key holds nothing; ``BlobStoreError`` when
the store could not be asked (unreachable, timed out, refused): the blob's
state is then unknown and the caller retries later (jobs do by raising) or
answers 503 (``ErrorId.STORAGE_UNAVAILABLE``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, Self

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,255}$")
# what read_range hands out at a time: small enough for many listeners at once
CHUNK = 64 * 1024
# a local writer hands what it wrote to the kernel's writeback every so many bytes, so
# that the fsync at commit finds little left and a large blob does not pile up in the
# page cache (issue 8: the export at 80 % of the disk's own write speed)
WRITEBACK_EVERY = 32 << 20
_FADVISE = getattr(os, "posix_fadvise", None)  # Linux; elsewhere the fsync does it all

Bytes = bytes | bytearray | memoryview


class BlobNotFound(KeyError):
    pass


class BlobStoreError(Exception):
    """The store could not be asked or refused (outage, timeout, permission): retry later."""


class BlobRefused(BlobStoreError):
    """The store answered and refused this blob (a bucket policy's deny on its key, say):
    other blobs may still go (the outbox backs off this one alone)."""


def check_key(key: str) -> str:
    """``key`` if it is a valid blob key (no ``..``, no leading ``/``), else ``ValueError``."""
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class BlobWriter(Protocol):
    """A blob written in a stream (``BlobStore.writer``). Nothing is visible under the
    key until ``commit`` returns; after ``abort`` (or a failed ``commit``) nothing is
    left of it. As a context manager it commits when the block ends normally and
    aborts when it raises. ``write`` copies what it is given (the caller may reuse
    its buffer) and raises the store's errors (``BlobStoreError``, ``OSError``)."""

    def write(self, data: Bytes) -> int: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class WriterBase:
    """The context manager half of a ``BlobWriter``: commit on success, abort on error."""

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def size(self, key: str) -> int: ...
    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)``; ``end`` None means to the end."""
        ...

    def delete(self, key: str) -> None: ...
    def put_file(self, key: str, path: Path) -> None:
        """Store the file at ``path`` under ``key``; the file is consumed (moved)."""
        ...

    def writer(self, key: str) -> BlobWriter:
        """A stream that becomes the blob ``key`` at its ``commit`` (replacing one there)."""
        ...

    def open(self, key: str) -> BinaryIO:
        """The blob for reading in chunks (``BlobNotFound`` when absent)."""
        ...

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``[start, end)`` in chunks of at most ``CHUNK``, never the whole blob at once.

        ``BlobNotFound`` is raised by the call itself, before any chunk is handed out.
        """
        ...


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        try:
            with open(self._path(key), "rb") as fh:
                fh.seek(start)
                return fh.read() if end is None else fh.read(max(0, end - start))
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def put_file(self, key: str, path: Path) -> None:
        move_into(path, self._path(key))

    def writer(self, key: str) -> BlobWriter:
        return LocalWriter(self._path(key))

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        source = self.open(key)  # now, so that a missing blob raises here
        source.seek(start)
        return _chunks(source, end - start)


def _chunks(source: BinaryIO, length: int) -> Iterator[bytes]:
    with source:
        while length > 0 and (chunk := source.read(min(CHUNK, length))):
            length -= len(chunk)
            yield chunk


def fsync_dir(directory: Path) -> None:
    """A rename or new file in ``directory`` survives a crash once this returns."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_name(path: Path) -> Path:
    """``<name>~<random>`` next to ``path``: ``~`` never occurs in a key, so such a
    file is never taken for a blob (a crash may leave one behind)."""
    return path.with_name(f"{path.name}~{uuid.uuid4().hex[:12]}")


def move_into(path: Path, target: Path) -> None:
    """Move the finished file ``path`` to ``target`` durably: a rename on the same
    file system, else a copy to a temporary name renamed into place (never a
    half-written target), then the directory is synced."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
    try:
        os.replace(path, target)
    except OSError:  # another file system
        tmp = temporary_name(target)
        try:
            shutil.copyfile(path, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        path.unlink()
    fsync_dir(target.parent)


class LocalWriter(WriterBase):
    """A blob file written as ``<name>~<random>`` next to its place (``~`` never occurs in
    a key), fsynced and renamed into place at ``commit``: a reader sees the old blob or
    the whole new one, and a crash leaves at most the ``~`` file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.tmp = temporary_name(path)
        self._file = open(self.tmp, "wb")  # noqa: SIM115 (closed by commit or abort)
        self._written = 0
        self._hinted = 0  # handed to writeback up to here
        self._done = False

    def write(self, data: Bytes) -> int:
        count = self._file.write(data)
        self._written += count
        if _FADVISE is not None and self._written - self._hinted >= WRITEBACK_EVERY:
            self._writeback()
        return count

    def _writeback(self) -> None:
        """Start writing back what was written since the last hint without waiting for it,
        and drop from the cache what the hint before wrote back."""
        assert _FADVISE is not None
        start, self._hinted = self._hinted, self._written
        self._file.flush()
        _FADVISE(self._file.fileno(), max(0, start - WRITEBACK_EVERY), 0, os.POSIX_FADV_DONTNEED)

    def commit(self) -> None:
        if self._done:
            raise ValueError(f"{self.path}: written already, or aborted")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())  # durable before the caller records the blob
            self._file.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._done = True
        fsync_dir(self.path.parent)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):  # a full disk's flush: the file goes anyway
            self._file.close()
        self.tmp.unlink(missing_ok=True)
