"""Writing an export's ZIP parts with constant memory (SPEC 5, bulk download).

Each recording is copied into the ZIP in 1 MiB chunks (stored, not deflated:
MP3 is compressed already) while its SHA-256 is taken. The ZIP goes to a
temporary file through a writer that hashes every byte as it passes and
cannot seek, so ``zipfile`` writes data descriptors instead of going back
to patch headers: the part's own SHA-256 is known when it is closed, with no
second read. A part is closed before the next recording would take it over
``max_bytes`` (a single larger recording gets a part of its own); each part
ends with the manifest of its recordings.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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

CHUNK = 1 << 20
# local header + data descriptor + central directory record, with their ZIP64 extras
_MEMBER_OVERHEAD = 30 + 24 + 46 + 2 * 32


@dataclass(frozen=True)
class FinishedPart:
    ordinal: int  # 1, 2, ...
    path: Path  # the temporary file, to be moved into the blob store
    size_bytes: int
    sha256: str
    recordings: int


class _HashingSink(io.RawIOBase):
    """Forward-only file: hashes and counts what is written, refuses to seek."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self._hash = hashlib.sha256()
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._target.write(view)
        self._hash.update(view)
        self.position += len(view)
        return len(view)

    def tell(self) -> int:
        return self.position

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = 0) -> int:
        raise io.UnsupportedOperation("export ZIPs are written forward only")

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class _Part:
    def __init__(self, ordinal: int, path: Path) -> None:
        self.ordinal = ordinal
        self.path = path
        self.file = open(path, "wb")  # noqa: SIM115 (closed in ``finish``)
        self.sink = _HashingSink(self.file)
        self.zip = zipfile.ZipFile(self.sink, "w", zipfile.ZIP_STORED)
        self.entries: list[ManifestEntry] = []
        self.manifest_bytes = MANIFEST_BASE_BYTES

    def discard(self) -> None:
        with contextlib.suppress(Exception):  # only to release it: the file is thrown away
            self.zip.close()
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
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="export-sha256")
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
        written = 0
        with part.zip.open(entry.file, "w", force_zip64=True) as member:
            while chunk := source.read(CHUNK):
                # the recording's SHA-256 on a second core, while the ZIP's own SHA-256, CRC-32
                # and the write run here (hashlib and zlib release the GIL for large buffers)
                hashed = self._hasher.submit(digest.update, chunk)
                member.write(chunk)
                hashed.result()
                written += len(chunk)
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
        self._hasher.shutdown()

    def abort(self) -> None:
        if self._part is not None:
            self._part.discard()
            self._part = None
        self._hasher.shutdown()

    def _open(self) -> _Part:
        self.parts += 1
        path = self.tmp_dir / f"{self.prefix}-part{self.parts:03d}.zip.tmp"
        self._part = _Part(self.parts, path)
        return self._part

    def _finish(self) -> None:
        part = self._part
        assert part is not None
        self._part = None
        header = {**self.header, "part": part.ordinal}
        part.zip.writestr(CSV_NAME, manifest_csv(part.entries))
        part.zip.writestr(JSON_NAME, manifest_json(part.entries, header))
        part.zip.close()
        part.file.flush()
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
