"""Blob store: where finished audio lives (issue 13).

``BlobStore`` is the interface; ``LocalBlobStore`` keeps blobs in a directory
(the default), ``storage/s3.py`` ``S3BlobStore`` in an S3-compatible bucket
(``blob_store = "s3"``; ``storage/factory.py`` picks one from the settings).
``put_file``, ``open`` and ``read_range`` move large blobs (exports, audio)
without holding them in memory.

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
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,255}$")
# what read_range hands out at a time: small enough for many listeners at once
CHUNK = 64 * 1024


class BlobNotFound(KeyError):
    pass


class BlobStoreError(Exception):
    """The store could not be asked or refused (outage, timeout, permission): retry later."""


def check_key(key: str) -> str:
    """``key`` if it is a valid blob key (no ``..``, no leading ``/``), else ``ValueError``."""
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid blob key {key!r}")
    return key


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
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
        try:
            os.replace(path, target)  # same file system: a rename
        except OSError:
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
            path.unlink()

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
