"""The ZIP writer alone, into the local blob store: constant memory however large a
recording, parts within their limit, and a part's SHA-256 (taken while writing, no
second read) equal to the blob's; the pipeline's threads keep every byte in order, the
local writer hands written ranges to writeback as they go, and a disk error reaches the
caller and leaves nothing in the store. (Into S3: tests/storage/test_export_s3.py.)"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest

from callvault.exports.manifest import ManifestEntry
from callvault.exports.zipwriter import BUFFERS, CHUNK, ExportZipWriter, FinishedPart
from callvault.storage import blobs
from callvault.storage.blobs import BlobWriter, LocalBlobStore, LocalWriter


class Tone(io.RawIOBase):
    """``size`` bytes of a repeating pattern, made as they are read (never held whole)."""

    def __init__(self, size: int, seed: int) -> None:
        self.left = size
        self.block = hashlib.sha256(str(seed).encode()).digest() * (CHUNK // 32)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(self.left, CHUNK if n < 0 else n)
        self.left -= n
        return self.block[:n]


def _writer(
    store: LocalBlobStore, limit: int, on_part: Any, header: dict[str, Any] | None = None
) -> ExportZipWriter:
    return ExportZipWriter(
        store,
        lambda n: f"exports/1/e/part-{n:03d}.zip",
        limit,
        header or {"month": "2026-11"},
        on_part,
    )


def _files(store: LocalBlobStore) -> list[Path]:
    return sorted(p for p in store.root.rglob("*") if p.is_file())


def _entry(n: int, size: int) -> ManifestEntry:
    return ManifestEntry(
        file=f"2026-11-0{n + 1}/rec-{n}.mp3",
        recording_id=f"r{n}",
        call_id=f"c{n}",
        direction="inbound",
        user="Anna",
        from_name=None,
        from_number="+31201234567",
        to_name=None,
        to_number="+31207654321",
        started_at="2026-11-01T10:00:00+01:00",
        answered_at=None,
        ended_at=None,
        call_duration_s=1.0,
        recording_duration_s=1.0,
        size_bytes=size,
        sha256="",
    )


def test_memory_stays_flat_while_large_recordings_are_written_and_parts_split(
    tmp_path: Path,
) -> None:
    parts: list[FinishedPart] = []
    limit = 30_000_000
    sizes = [12_000_000, 12_000_000, 12_000_000, 40_000_000]  # the last alone, over the limit
    tracemalloc.start()
    try:
        store = LocalBlobStore(tmp_path)
        writer = _writer(store, limit, parts.append)
        for n, size in enumerate(sizes):
            writer.add(_entry(n, size), Tone(size, n))  # type: ignore[arg-type]
        writer.close()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the writer's buffers, Tone's block and one read: a few chunks, not the 76 MB written
    assert peak < (BUFFERS + 3) * CHUNK, peak
    assert [p.recordings for p in parts] == [2, 1, 1]
    assert all(p.size_bytes <= limit for p in parts[:2])
    assert [p.key for p in parts] == [f"exports/1/e/part-00{n}.zip" for n in (1, 2, 3)]
    assert _files(store) == [store.root / p.key for p in parts]  # no temporary file left
    for part in parts:
        data = store.read(part.key)
        assert len(data) == part.size_bytes
        assert hashlib.sha256(data).hexdigest() == part.sha256
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert zf.testzip() is None
            manifest = json.loads(zf.read("manifest.json"))
            assert manifest["part"] == part.ordinal
            for entry in manifest["files"]:
                assert hashlib.sha256(zf.read(entry["file"])).hexdigest() == entry["sha256"]


class ShortReads(io.RawIOBase):
    """A file's bytes in uneven pieces, as a pipe or a network store may give them."""

    def __init__(self, data: bytes, most: int) -> None:
        self.data, self.at, self.most = data, 0, most

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(self.most, len(buffer), len(self.data) - self.at)
        buffer[:n] = self.data[self.at : self.at + n]
        self.at += n
        return n


def test_every_byte_in_order_through_the_pipeline_whatever_the_reads(tmp_path: Path) -> None:
    parts: list[FinishedPart] = []
    store = LocalBlobStore(tmp_path)
    writer = _writer(store, 10**9, parts.append)
    sizes = [0, 1, CHUNK - 1, CHUNK, 3 * CHUNK + 12_345, 2 * BUFFERS * CHUNK + 7]
    recordings = [os.urandom(size) for size in sizes]
    for n, data in enumerate(recordings):
        sha, size = writer.add(_entry(n, len(data)), ShortReads(data, 1_000_003))  # type: ignore[arg-type]
        assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    writer.close()
    [part] = parts
    raw = store.read(part.key)
    assert (len(raw), hashlib.sha256(raw).hexdigest()) == (part.size_bytes, part.sha256)
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        assert zf.testzip() is None  # every member's CRC-32
        for n, data in enumerate(recordings):
            assert zf.read(_entry(n, 0).file) == data


def test_written_ranges_go_to_writeback_while_the_part_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fsync that closes a part must not find the whole part still in the page cache:
    the disk writes while the next chunks are read and hashed."""
    hints: list[tuple[int, int, int, int, int]] = []
    parts: list[FinishedPart] = []
    monkeypatch.setattr(blobs, "WRITEBACK_EVERY", 1 << 20)
    monkeypatch.setattr(
        blobs,
        "_FADVISE",
        lambda fd, offset, length, advice: hints.append(
            (offset, length, advice, os.fstat(fd).st_size, len(parts))
        ),
    )
    store = LocalBlobStore(tmp_path)
    writer = _writer(store, 10**9, parts.append)
    writer.add(_entry(0, 6 * CHUNK), Tone(6 * CHUNK, 0))  # type: ignore[arg-type]
    writer.close()
    # one hint per chunk written (each over the 1 MiB), all before the part's fsync
    assert len(hints) >= 6, hints
    assert {(advice, done) for _o, _l, advice, _s, done in hints} == {(os.POSIX_FADV_DONTNEED, 0)}
    # from where the previous hint began to the end: what it left behind is dropped from the
    # cache, what was written since goes to the disk
    assert all(length == 0 and offset < size for offset, length, _a, size, _d in hints)
    offsets = [offset for offset, *_rest in hints]
    assert offsets == sorted(offsets) and offsets[-1] > 4 * CHUNK
    assert parts[0].sha256 == hashlib.sha256(store.read(parts[0].key)).hexdigest()


class FullDisk(LocalWriter):
    """A blob file on a disk that fills up after ``room`` bytes."""

    room = 5 * CHUNK

    def write(self, data: Any) -> int:
        FullDisk.room -= len(data)
        if FullDisk.room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


class FullDiskStore(LocalBlobStore):
    def writer(self, key: str) -> BlobWriter:
        return FullDisk(self.root / key)


def test_a_disk_error_on_the_write_thread_reaches_the_caller_and_leaves_no_file(
    tmp_path: Path,
) -> None:
    store = FullDiskStore(tmp_path)
    writer = _writer(store, 10**9, lambda part: None)
    with pytest.raises(OSError, match="No space left"):
        writer.add(_entry(0, 12 * CHUNK), Tone(12 * CHUNK, 0))  # type: ignore[arg-type]
    writer.abort()
    assert _files(store) == []


def test_a_part_of_many_short_recordings_closes_in_little_memory(tmp_path: Path) -> None:
    """Closing a part writes two headers per recording in small pieces: gathered, not each
    handed to the write thread with its own future (24 MiB for 2,000 recordings)."""
    parts: list[FinishedPart] = []
    store = LocalBlobStore(tmp_path)
    writer = _writer(store, 10**9, parts.append)
    for n in range(2000):
        writer.add(_entry(n, 1000), io.BytesIO(os.urandom(1000)))
    tracemalloc.start()
    try:
        writer.close()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 << 20, peak  # the manifest's CSV and JSON are most of it
    with zipfile.ZipFile(store.root / parts[0].key) as zf:
        assert zf.testzip() is None
        assert len(json.loads(zf.read("manifest.json"))["files"]) == 2000
