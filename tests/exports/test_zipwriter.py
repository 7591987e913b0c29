"""The ZIP writer alone: constant memory however large a recording, parts within their
limit, and a part's SHA-256 (taken while writing, no second read) equal to the file's."""

from __future__ import annotations

import hashlib
import io
import json
import tracemalloc
import zipfile
from pathlib import Path

from callvault.exports.manifest import ManifestEntry
from callvault.exports.zipwriter import CHUNK, ExportZipWriter, FinishedPart


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
    writer = ExportZipWriter(tmp_path, "t", limit, {"month": "2026-11"}, parts.append)
    sizes = [12_000_000, 12_000_000, 12_000_000, 40_000_000]  # the last alone, over the limit
    tracemalloc.start()
    try:
        for n, size in enumerate(sizes):
            writer.add(_entry(n, size), Tone(size, n))  # type: ignore[arg-type]
        writer.close()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * CHUNK, peak  # a few chunks, not the 76 MB written
    assert [p.recordings for p in parts] == [2, 1, 1]
    assert all(p.size_bytes <= limit for p in parts[:2])
    for part in parts:
        data = part.path.read_bytes()
        assert len(data) == part.size_bytes
        assert hashlib.sha256(data).hexdigest() == part.sha256
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert zf.testzip() is None
            manifest = json.loads(zf.read("manifest.json"))
            assert manifest["part"] == part.ordinal
            for entry in manifest["files"]:
                assert hashlib.sha256(zf.read(entry["file"])).hexdigest() == entry["sha256"]
