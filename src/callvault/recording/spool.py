"""Append-only spool of a call in progress.

Layout of one call's directory (``<data>/spool/<call_uuid>/``)::

    journal.jsonl      one ``journal.Event`` per line, flushed per event
    stream-<i>.rtp     raw RTP packets of SDP m-line ``i`` as they arrived:
                       records of ``<u32 arrival_ms><u16 length><packet>``
                       (little endian), arrival_ms on the journal's clock

The per-packet path only appends bytes to an in-memory buffer; ``flush()`` is
called by a periodic task (every 250 ms by default), so ``kill -9`` loses at
most that much audio. A torn last record (killed mid-write) is ignored by the
reader. Nothing here parses RTP: the finisher does that, off the event loop.

Durability: each journal event is one ``write`` to the file (``O_APPEND``)
before ``record`` returns, so the ``start`` event survives a crash of the
process (``kill -9``) from the moment the call is answered. There is no
``fsync``: a power loss may lose the last seconds of every spool, as it always
could; the page cache is the kernel's, not ours.

The set-up rate (issue 12): a spool this process wrote and closed need not be
read back by this process's finisher. ``SpoolWriter.close`` leaves its journal
lines and whether any stream holds a packet in a small bounded registry;
``take_closed`` hands them over once, when the journal on disk still has the
size the writer gave it (anything else, and after a restart: read the disk).
"""

from __future__ import annotations

import os
import shutil
import struct
from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from callvault.recording.journal import JournalEvent, read_lines

RECORD_HEADER = struct.Struct("<IH")
JOURNAL = "journal.jsonl"


def stream_file(index: int) -> str:
    return f"stream-{index}.rtp"


class Gate(Protocol):
    """Where on the call timeline audio may be kept (``policy.live.CaptureGate``)."""

    def open_throughout(self, start_ms: int, end_ms: int) -> bool: ...

    def closed_throughout(self, start_ms: int, end_ms: int) -> bool: ...

    def open_at(self, t_ms: int) -> bool: ...

    def open_since(self, t_ms: int) -> bool: ...


class StreamSpool:
    """Buffered append-only writer of one stream's packets."""

    __slots__ = ("_buffer", "_fd", "dropped", "path", "written")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1  # opened at the first record written
        self._buffer = bytearray()
        self.written = 0  # bytes written to disk
        self.dropped = 0  # records the gate kept off the disk

    def append(self, arrival_ms: int, packet: bytes) -> None:
        buf = self._buffer
        buf += RECORD_HEADER.pack(arrival_ms & 0xFFFFFFFF, len(packet))
        buf += packet

    @property
    def buffer(self) -> bytearray:
        """The in-memory records not yet flushed; the relay's native tap
        (``media/_batchudp.c`` ``relay_record``) appends records to it in place."""
        return self._buffer

    def pending(self) -> Iterator[tuple[int, bytes]]:
        """The buffered records, not yet flushed (for live analysis)."""
        return _records(self._buffer)

    def flush(
        self, gate: Gate | None = None, now_ms: int | None = None, until: int | None = None
    ) -> None:
        """Write the buffered records the gate lets through (all without a gate);
        ``now_ms`` bounds the arrival of the newest buffered record. Records that
        arrived at or after ``until`` stay buffered (a key press is being heard
        from then: the gate may yet close there)."""
        buf = self._buffer
        if not buf:
            return
        if until is not None:
            cut = _cut_at(buf, until)
            if cut < len(buf):
                held = bytes(buf[cut:])
                del buf[cut:]
                self.flush(gate, until if now_ms is None else min(now_ms, until))
                buf += held
                return
        if gate is not None and not gate.open_since(RECORD_HEADER.unpack_from(buf, 0)[0]):
            first = RECORD_HEADER.unpack_from(buf, 0)[0]
            last = now_ms if now_ms is not None else 2**32
            if gate.closed_throughout(first, last):
                self.dropped += sum(1 for _ in _records(buf))
                buf.clear()
                return
            if not gate.open_throughout(first, last):
                kept = bytearray()
                for arrival, packet in _records(buf):
                    if gate.open_at(arrival):
                        kept += RECORD_HEADER.pack(arrival, len(packet))
                        kept += packet
                    else:
                        self.dropped += 1
                buf.clear()
                buf += kept
                if not buf:
                    return
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self.written += len(buf)
        os.write(self._fd, buf)
        buf.clear()

    def close(self, gate: Gate | None = None, now_ms: int | None = None) -> None:
        self.flush(gate, now_ms)
        self._buffer.clear()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _cut_at(data: bytes | bytearray, until: int) -> int:
    """Where the first record arriving at or after ``until`` begins (the end: none)."""
    pos, end, size = 0, len(data), RECORD_HEADER.size
    while pos + size <= end:
        arrival, length = RECORD_HEADER.unpack_from(data, pos)
        if arrival >= until:
            return pos
        pos += size + length
    return end


def _records(data: bytes | bytearray) -> Iterator[tuple[int, bytes]]:
    pos, end, size = 0, len(data), RECORD_HEADER.size
    while pos + size <= end:
        arrival, length = RECORD_HEADER.unpack_from(data, pos)
        pos += size
        if pos + length > end:
            return  # torn record
        yield arrival, bytes(data[pos : pos + length])
        pos += length


MAX_KEPT_JOURNAL = 64 * 1024  # journal bytes kept in memory for the finisher, per call
MAX_CLOSED = 4096  # closed spools waiting for this process's finisher


@dataclass(frozen=True)
class ClosedSpool:
    """What this process's finisher would read back from a spool it just closed."""

    lines: tuple[str, ...]  # the journal's lines, each with its newline
    has_audio: bool  # some stream file holds at least one packet record


_closed: OrderedDict[Path, tuple[ClosedSpool, int]] = OrderedDict()


def take_closed(directory: Path) -> ClosedSpool | None:
    """The journal lines and audio flag of a spool this process closed, once; None
    when it did not (a spool left by a crash), when it forgot it (more than
    ``MAX_CLOSED`` waiting, or a journal too long to keep), or when the journal on
    disk is no longer what it wrote (then the disk is the truth)."""
    entry = _closed.pop(directory, None)
    if entry is None:
        return None
    closed, size = entry
    try:
        if os.stat(directory / JOURNAL).st_size != size:
            return None
    except OSError:
        return None
    return closed


class SpoolWriter:
    """The spool of one call: its journal and its stream files."""

    def __init__(self, directory: Path, journal_fd: int = -1) -> None:
        """``journal_fd``: the journal already open, empty (a recycled spool,
        ``recording/ready_spools.py``); else the directory and journal are made."""
        self.directory = directory
        if journal_fd < 0:
            try:
                os.mkdir(directory)
            except FileNotFoundError:  # the spool root itself is new
                directory.mkdir(parents=True, exist_ok=True)
            except FileExistsError:  # a crashed call's spool, finished again
                pass
            journal_fd = os.open(
                directory / JOURNAL, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640
            )
        self._journal = journal_fd
        self._journal_bytes = 0
        self._lines: list[str] | None = []  # what the finisher would read back; None: too long
        self.streams: dict[int, StreamSpool] = {}

    def record(self, event: JournalEvent) -> None:
        line = event.to_json() + "\n"
        data = line.encode("utf-8")
        written = 0
        while written < len(data):  # one write for a file; a short one only when the disk fills
            written += os.write(self._journal, data[written:])
        self._journal_bytes += len(data)
        if self._lines is not None:
            self._lines.append(line)
            if self._journal_bytes > MAX_KEPT_JOURNAL:
                self._lines = None

    def discard(self) -> None:
        """Close a spool no call took (``recording/ready_spools.py``): nothing to finish."""
        if self._journal >= 0:
            os.close(self._journal)
            self._journal = -1

    def stream(self, index: int) -> StreamSpool:
        spool = self.streams.get(index)
        if spool is None:
            spool = self.streams[index] = StreamSpool(self.directory / stream_file(index))
        return spool

    def flush(
        self, gate: Gate | None = None, now_ms: int | None = None, until: int | None = None
    ) -> None:
        for spool in self.streams.values():
            spool.flush(gate, now_ms, until)

    def close(self, gate: Gate | None = None, now_ms: int | None = None) -> None:
        for spool in self.streams.values():
            spool.close(gate, now_ms)
        if self._journal < 0:
            return
        os.close(self._journal)
        self._journal = -1
        if self._lines is not None:
            audio = any(spool.written > RECORD_HEADER.size for spool in self.streams.values())
            _closed[self.directory] = (ClosedSpool(tuple(self._lines), audio), self._journal_bytes)
            while len(_closed) > MAX_CLOSED:
                _closed.popitem(last=False)


def remove_spool(directory: Path) -> None:
    """Delete a call's spool (blocking: run it off the event loop)."""
    shutil.rmtree(directory, ignore_errors=True)


def is_unused(directory: Path) -> bool:
    """A spool made ahead that no call took before a crash: an empty journal and
    nothing else (``recording/ready_spools.py``)."""
    try:
        return [e.name for e in os.scandir(directory)] == [JOURNAL] and (
            os.stat(directory / JOURNAL).st_size == 0
        )
    except OSError:
        return False


class SpoolReader:
    """Reads a spool directory back, tolerating a torn tail."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.unknown: Counter[str] = Counter()  # journal lines of unknown event types
        self.malformed = 0  # journal lines that could not be read

    def events(self) -> list[JournalEvent]:
        """The journal's events; lines this version cannot use are skipped and
        counted in ``unknown`` (by event type) and ``malformed``."""
        path = self.directory / JOURNAL
        if not path.exists():
            return []
        with open(path, encoding="utf-8", errors="replace") as fh:
            # a torn last line (killed mid-write) has no newline
            read = read_lines(line for line in fh if line.endswith("\n"))
        self.unknown, self.malformed = read.unknown, read.malformed
        return read.events

    def stream_indexes(self) -> list[int]:
        found = []
        for entry in self.directory.glob("stream-*.rtp"):
            try:
                found.append(int(entry.stem.split("-", 1)[1]))
            except ValueError:
                continue
        return sorted(found)

    def has_audio(self) -> bool:
        """Whether any stream file holds at least one packet record."""
        return any(
            (self.directory / stream_file(i)).stat().st_size > RECORD_HEADER.size
            for i in self.stream_indexes()
        )

    def records(self, index: int) -> bytes:
        """A stream file's records as they lie on disk (b"" when it has none)."""
        path = self.directory / stream_file(index)
        return path.read_bytes() if path.exists() else b""

    def packets(self, index: int) -> Iterator[tuple[int, bytes]]:
        """Yield ``(arrival_ms, raw_rtp_packet)`` in arrival order."""
        path = self.directory / stream_file(index)
        if not path.exists():
            return
        yield from _records(path.read_bytes())

    def last_arrival_ms(self) -> int:
        last = 0
        for index in self.stream_indexes():
            for arrival, _ in self.packets(index):
                last = max(last, arrival)
        return last
