"""The manifest each export ZIP carries: ``manifest.csv`` and ``manifest.json`` (SPEC 5).

One entry per recording in that ZIP: the call's parties (names and numbers),
its start, answer and end time in the tenant's time zone with the offset, the
durations, the direction, the recorded user, and the SHA-256 of the MP3 as
written into the ZIP (checked against the one stored at finish).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

CSV_NAME = "manifest.csv"
JSON_NAME = "manifest.json"
CSV_COLUMNS = (
    "file",
    "recording_id",
    "call_id",
    "direction",
    "user",
    "from_name",
    "from_number",
    "to_name",
    "to_number",
    "parties",
    "started_at",
    "answered_at",
    "ended_at",
    "call_duration_s",
    "recording_duration_s",
    "size_bytes",
    "sha256",
)
# a spreadsheet runs a cell starting with one of these as a formula; phone numbers stay as they are
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?[\d ()./-]*")


@dataclass(frozen=True)
class Party:
    name: str | None
    number: str | None
    side: str  # user | other


@dataclass
class ManifestEntry:
    file: str
    recording_id: str
    call_id: str
    direction: str
    user: str | None
    from_name: str | None
    from_number: str | None
    to_name: str | None
    to_number: str | None
    started_at: str
    answered_at: str | None
    ended_at: str | None
    call_duration_s: float
    recording_duration_s: float
    size_bytes: int
    sha256: str
    parties: list[Party] = field(default_factory=list)


def local_time(value: datetime | None, zone: ZoneInfo) -> str | None:
    """ISO 8601 in the tenant's zone with its offset (``2026-11-03T14:25:01+01:00``)."""
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone).isoformat(timespec="seconds")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _party_text(party: Party) -> str:
    name, number = party.name or "", party.number or ""
    return f"{name} <{number}>" if name and number else name or number


def manifest_csv(entries: list[ManifestEntry]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        row = asdict(entry)
        row["parties"] = "; ".join(_party_text(p) for p in entry.parties)
        writer.writerow([_cell(row[column]) for column in CSV_COLUMNS])
    return out.getvalue().encode("utf-8-sig")  # the BOM makes spreadsheet programs read UTF-8


def manifest_json(entries: list[ManifestEntry], header: dict[str, Any]) -> bytes:
    document: dict[str, Any] = {**header, "recordings": len(entries)}
    if not entries:
        document["note"] = "no recordings of this month could be exported"
    document["files"] = [asdict(entry) for entry in entries]
    return json.dumps(document, ensure_ascii=False, indent=2).encode()


MANIFEST_BASE_BYTES = 4096  # headers of both manifests and the ZIP's own records for them


def entry_size(entry: ManifestEntry) -> int:
    """Bytes an entry may take in both manifests (generous), so a part stays under its limit."""
    return 2 * len(json.dumps(asdict(entry), ensure_ascii=False, indent=2).encode()) + 256
