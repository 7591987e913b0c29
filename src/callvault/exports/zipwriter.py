"""Writing an export's ZIP parts with constant memory (SPEC 5, bulk download).

Each recording is copied into the ZIP (stored, not deflated: MP3 is
compressed already) while its SHA-256 is taken. The ZIP streams into the blob
store (``BlobStore.writer``: a temporary file renamed into place on the local
disk, a multipart upload on S3, issue 13 "ZIP exports stream from S3 to S3")
through a writer that hashes every byte as it passes and cannot seek, so
``zipfile`` writes data descriptors instead of going back to patch headers:
the part's own SHA-256 is known when it is closed, with no second read and no
copy on the local disk. A part is closed before the next recording would take
it over ``max_bytes`` (a single larger recording gets a part of its own); each
part ends with the manifest of its recordings, and is committed (visible in
the store, durable) before ``on_part`` hears of it. A failure aborts the part
being written: nothing of it is left in the store.

Speed (issue 8: the export at 80 % of the disk's own write speed): the
copy is a pipeline over a few reused 4 MiB buffers. This thread reads the
next chunk and takes its CRC-32 (inside ``zipfile``) while one thread writes
the previous chunk to the blob writer, one takes the part's SHA-256 and one
the recording's; hashlib, zlib and file writes release the GIL for buffers
this large, so the disk (or S3) is the one that waits. The local store's
writer hands written ranges to the kernel's writeback as they go
(``storage/blobs.py``), so the fsync that closes a part finds little left.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import zipfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

from callvault.exports.manifest import (
    CSV_NAME,
    JSON_NAME,
    MANIFEST_BASE_BYTES,
    ManifestEntry,
    entry_size,
    manifest_csv,
    manifest_json,
)
from callvault.storage.blobs import BlobStore, BlobWriter

CHUNK = 4 << 20
# buffers in flight: one being read, one being written and hashed, one spare for the slower
BUFFERS = 3
# writes below this (ZIP headers, the central directory) are gathered, not handed over one
# by one: a part of 2,000 recordings would otherwise hold 4,000 futures at its close
SMALL_WRITE = 1 << 16
# local header + data descriptor + central directory record, with their ZIP64 extras
_MEMBER_OVERHEAD = 30 + 24 + 46 + 2 * 32


@dataclass(frozen=True)
class FinishedPart:
    ordinal: int  # 1, 2, ...
    key: str  # the blob, committed
    size_bytes: int
    sha256: str
    recordings: int


def _wait(pending: list[Future[Any]]) -> None:
    """Wait for ``pending`` (raising the first failure) and forget them."""
    try:
        for future in pending:
            future.result()
    finally:
        pending.clear()


def _fill(source: BinaryIO, view: memoryview) -> int:
    """Read ``source`` into ``view`` until it is full or the source ends; bytes read."""
    got = 0
    while got < len(view):
        try:
            n = source.readinto(view[got:])  # type: ignore[attr-defined]
        except (AttributeError, NotImplementedError, io.UnsupportedOperation):
            data = source.read(len(view) - got)  # a source without readinto: one copy more
            n = len(data)
            view[got : got + n] = data
        if not n:
            break
        got += n
    return got


class _HashingSink(io.RawIOBase):
    """Forward-only file: what is written goes to the blob writer ``target`` on one thread
    and into the part's SHA-256 on another, in order; it counts the bytes and refuses to
    seek.

    ``write`` returns before the bytes are on their way: a caller that reuses its buffer
    waits for the futures ``take`` hands it, and ``drain`` waits for all of them.
    """

    def __init__(
        self, target: BlobWriter, writer: ThreadPoolExecutor, hasher: ThreadPoolExecutor
    ) -> None:
        self._target = target
        self._writer = writer
        self._hasher = hasher
        self._hash = hashlib.sha256()
        self._pending: list[Future[Any]] = []
        self._small = bytearray()
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if len(view) < SMALL_WRITE:
            self._small += view  # a copy: the caller may reuse what it wrote
            if len(self._small) >= SMALL_WRITE:
                self._hand_over_small()
        else:
            self._hand_over_small()
            self._hand_over(view)
        self.position += len(view)
        return len(view)

    def _hand_over(self, view: memoryview) -> None:
        self._pending.append(self._writer.submit(self._target.write, view))
        self._pending.append(self._hasher.submit(self._hash.update, view))

    def _hand_over_small(self) -> None:
        if self._small:
            gathered, self._small = self._small, bytearray()
            self._hand_over(memoryview(gathered))

    def take(self) -> list[Future[Any]]:
        """The futures of what was written since the last ``take``."""
        pending, self._pending = self._pending, []
        return pending

    def drain(self) -> None:
        """Wait until everything written is in the blob writer and in the hash."""
        self._hand_over_small()
        _wait(self._pending)
        self._writer.submit(lambda: None).result()
        self._hasher.submit(lambda: None).result()

    def tell(self) -> int:
        return self.position

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = 0) -> int:
        raise io.UnsupportedOperation("export ZIPs are written forward only")

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class _Part:
    def __init__(
        self, ordinal: int, key: str, blob: BlobWriter, pools: list[ThreadPoolExecutor]
    ) -> None:
        self.ordinal = ordinal
        self.key = key
        self.blob = blob  # committed in ``ExportZipWriter._finish``, else aborted
        self.sink = _HashingSink(blob, pools[0], pools[1])
        self.zip = zipfile.ZipFile(self.sink, "w", zipfile.ZIP_STORED)
        self.entries: list[ManifestEntry] = []
        self.manifest_bytes = MANIFEST_BASE_BYTES

    def discard(self) -> None:
        with contextlib.suppress(Exception):  # only to release it: the file is thrown away
            self.zip.close()
        with contextlib.suppress(Exception):  # a write that failed must not hide the first error
            self.sink.drain()
        self.blob.abort()  # nothing of the part is left in the store


class ExportZipWriter:
    """Adds recordings to ZIP parts written into ``blobs`` under ``key_for(ordinal)``;
    ``on_part`` receives each finished part once it is committed."""

    def __init__(
        self,
        blobs: BlobStore,
        key_for: Callable[[int], str],
        max_bytes: int,
        header: dict[str, Any],
        on_part: Callable[[FinishedPart], None],
    ) -> None:
        self.blobs = blobs
        self.key_for = key_for
        self.max_bytes = max_bytes
        self.header = header
        self.on_part = on_part
        self.parts = 0
        self._part: _Part | None = None
        # one thread each, so that each keeps its order: the part's bytes, the part's
        # SHA-256, the recording's SHA-256
        self._pools = [
            ThreadPoolExecutor(1, thread_name_prefix=f"export-{name}")
            for name in ("write", "part-sha256", "recording-sha256")
        ]
        # each buffer with the writes and hashes that still read it; a recording's last
        # chunks are still being written while the next recording is read
        self._slots: list[tuple[memoryview, list[Future[Any]]]] = [
            (memoryview(bytearray(CHUNK)), []) for _ in range(BUFFERS)
        ]
        self._turn = 0

    def add(self, entry: ManifestEntry, source: BinaryIO) -> tuple[str, int]:
        """Copy ``source`` into the ZIP as ``entry.file``; its SHA-256 and size as written.

        The entry goes into the manifest with that SHA-256; the caller compares
        it with the stored one before anything else is added.
        """
        needed = _MEMBER_OVERHEAD + 2 * len(entry.file.encode()) + entry.size_bytes
        needed += entry_size(entry)
        part = self._part
        if (
            part is not None
            and part.entries
            and part.sink.position + part.manifest_bytes + needed > self.max_bytes
        ):
            self._finish()
            part = None
        if part is None:
            part = self._open()
        digest = hashlib.sha256()
        hashed: Future[Any] | None = None
        written = 0
        with part.zip.open(entry.file, "w", force_zip64=True) as member:
            while True:
                buffer, pending = self._slots[self._turn % len(self._slots)]
                _wait(pending)  # free again once its write and both hashes are done
                got = _fill(source, buffer)
                if not got:
                    break
                self._turn += 1
                chunk = buffer[:got]
                hashed = self._pools[2].submit(digest.update, chunk)
                pending.append(hashed)
                member.write(chunk)  # the CRC-32 here, then on to the write and part hash
                pending.extend(part.sink.take())
                written += got
                if got < len(buffer):
                    break  # _fill stops short only at the end
        if hashed is not None:
            hashed.result()  # one thread, in order: the recording's SHA-256 is complete
        sha = digest.hexdigest()
        final = replace(entry, sha256=sha, size_bytes=written)
        part.entries.append(final)
        part.manifest_bytes += entry_size(final)
        return sha, written

    def close(self) -> None:
        """Finish the last part; an export with no recordings still gets one (its manifest)."""
        if self._part is None and self.parts == 0:
            self._open()
        if self._part is not None:
            self._finish()
        self._shutdown()

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the first error is the caller's already
            self._settle()
        if self._part is not None:
            self._part.discard()
            self._part = None
        self._shutdown()

    def _settle(self) -> None:
        """Wait for every chunk's write and hashes (raising the first failure)."""
        for _buffer, pending in self._slots:
            _wait(pending)

    def _shutdown(self) -> None:
        for pool in self._pools:
            pool.shutdown()

    def _open(self) -> _Part:
        self.parts += 1
        key = self.key_for(self.parts)
        self._part = _Part(self.parts, key, self.blobs.writer(key), self._pools)
        return self._part

    def _finish(self) -> None:
        part = self._part
        assert part is not None
        self._part = None
        header = {**self.header, "part": part.ordinal}
        try:
            part.zip.writestr(CSV_NAME, manifest_csv(part.entries))
            part.zip.writestr(JSON_NAME, manifest_json(part.entries, header))
            part.zip.close()
            self._settle()
            part.sink.drain()
        except BaseException:
            part.discard()
            raise
        part.blob.commit()  # whole and durable before the row says the part exists
        self.on_part(
            FinishedPart(
                ordinal=part.ordinal,
                key=part.key,
                size_bytes=part.sink.position,
                sha256=part.sink.hexdigest(),
                recordings=len(part.entries),
            )
        )
