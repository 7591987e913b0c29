"""Writing an export's ZIP parts with constant memory (SPEC 5, bulk download).

Each recording is copied into the ZIP (stored, not deflated: MP3 is
compressed already) while its SHA-256 is taken. The ZIP goes to a temporary
file through a writer that hashes every byte as it passes and cannot seek,
so ``zipfile`` writes data descriptors instead of going back to patch
headers: the part's own SHA-256 is known when it is closed, with no second
read. A part is closed before the next recording would take it over
``max_bytes`` (a single larger recording gets a part of its own); each part
ends with the manifest of its recordings.

Speed (issue 8: the export at 80 % of the disk's own write speed): the
copy is a pipeline over a few reused 4 MiB buffers. This thread reads the
next chunk and takes its CRC-32 (inside ``zipfile``) while one thread writes
the previous chunk to the file, one takes the part's SHA-256 and one the
recording's; hashlib, zlib and file writes release the GIL for buffers this
large, so the disk is the one that waits. Written ranges are handed to the
kernel's writeback as they go (``posix_fadvise`` DONTNEED), so the fsync that
closes a part finds little left to write and the export's data does not pile
up in the page cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import zipfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
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

CHUNK = 4 << 20
# buffers in flight: one being read, one being written and hashed, one spare for the slower
BUFFERS = 3
# how much is written between two writeback hints
WRITEBACK_EVERY = 32 << 20
# writes below this (ZIP headers, the central directory) are gathered, not handed over one
# by one: a part of 2,000 recordings would otherwise hold 4,000 futures at its close
SMALL_WRITE = 1 << 16
# local header + data descriptor + central directory record, with their ZIP64 extras
_MEMBER_OVERHEAD = 30 + 24 + 46 + 2 * 32
_FADVISE = getattr(os, "posix_fadvise", None)  # Linux; elsewhere the fsync does it all


@dataclass(frozen=True)
class FinishedPart:
    ordinal: int  # 1, 2, ...
    path: Path  # the temporary file, to be moved into the blob store
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
    """Forward-only file: what is written goes to ``target`` on one thread and into the
    part's SHA-256 on another, in order; it counts the bytes and refuses to seek.

    ``write`` returns before the bytes are on their way: a caller that reuses its buffer
    waits for the futures ``take`` hands it, and ``drain`` waits for all of them.
    """

    def __init__(
        self, target: BinaryIO, writer: ThreadPoolExecutor, hasher: ThreadPoolExecutor
    ) -> None:
        self._target = target
        self._writer = writer
        self._hasher = hasher
        self._hash = hashlib.sha256()
        self._pending: list[Future[Any]] = []
        self._small = bytearray()
        self._hinted = 0  # handed to writeback up to here
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
        if _FADVISE is not None and self.position - self._hinted >= WRITEBACK_EVERY:
            start, self._hinted = self._hinted, self.position
            self._pending.append(self._writer.submit(self._writeback, start))
        return len(view)

    def _hand_over(self, view: memoryview) -> None:
        self._pending.append(self._writer.submit(self._target.write, view))
        self._pending.append(self._hasher.submit(self._hash.update, view))

    def _hand_over_small(self) -> None:
        if self._small:
            gathered, self._small = self._small, bytearray()
            self._hand_over(memoryview(gathered))

    def _writeback(self, start: int) -> None:
        """Start writing back what was written since ``start`` without waiting for it, and
        drop what the previous hint wrote back from the cache (runs after those writes)."""
        assert _FADVISE is not None
        self._target.flush()
        back = max(0, start - WRITEBACK_EVERY)
        _FADVISE(self._target.fileno(), back, 0, os.POSIX_FADV_DONTNEED)

    def take(self) -> list[Future[Any]]:
        """The futures of what was written since the last ``take``."""
        pending, self._pending = self._pending, []
        return pending

    def drain(self) -> None:
        """Wait until everything written is in the file and in the hash."""
        self._hand_over_small()
        _wait(self._pending)
        self._writer.submit(self._target.flush).result()
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
        self, ordinal: int, path: Path, writer: ThreadPoolExecutor, hasher: ThreadPoolExecutor
    ) -> None:
        self.ordinal = ordinal
        self.path = path
        self.file = open(path, "wb")  # noqa: SIM115 (closed in ``finish``)
        self.sink = _HashingSink(self.file, writer, hasher)
        self.zip = zipfile.ZipFile(self.sink, "w", zipfile.ZIP_STORED)
        self.entries: list[ManifestEntry] = []
        self.manifest_bytes = MANIFEST_BASE_BYTES

    def discard(self) -> None:
        with contextlib.suppress(Exception):  # only to release it: the file is thrown away
            self.zip.close()
        with contextlib.suppress(Exception):  # a write that failed must not hide the first error
            self.sink.drain()
        self.file.close()
        self.path.unlink(missing_ok=True)


class ExportZipWriter:
    """Adds recordings to ZIP parts; ``on_part`` receives each finished part."""

    def __init__(
        self,
        tmp_dir: Path,
        prefix: str,
        max_bytes: int,
        header: dict[str, Any],
        on_part: Callable[[FinishedPart], None],
    ) -> None:
        self.tmp_dir = tmp_dir
        self.prefix = prefix
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
        tmp_dir.mkdir(parents=True, exist_ok=True)

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
        path = self.tmp_dir / f"{self.prefix}-part{self.parts:03d}.zip.tmp"
        self._part = _Part(self.parts, path, self._pools[0], self._pools[1])
        return self._part

    def _finish(self) -> None:
        part = self._part
        assert part is not None
        self._part = None
        header = {**self.header, "part": part.ordinal}
        part.zip.writestr(CSV_NAME, manifest_csv(part.entries))
        part.zip.writestr(JSON_NAME, manifest_json(part.entries, header))
        part.zip.close()
        self._settle()
        part.sink.drain()
        os.fsync(part.file.fileno())  # durable before the row says the part exists
        part.file.close()
        self.on_part(
            FinishedPart(
                ordinal=part.ordinal,
                path=part.path,
                size_bytes=part.sink.position,
                sha256=part.sink.hexdigest(),
                recordings=len(part.entries),
            )
        )
