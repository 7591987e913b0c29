"""Deleting a recording's audio, for every reason, with a receipt (SPEC section 4).

The row stays (the call is still listed) and says why and when the audio
went. Order, for crash safety: the rows are marked and the receipt written
and committed first, then the blobs are deleted, then the receipt is marked
finished (``finished_at``). A crash in between leaves a receipt without
``finished_at`` whose rows say "deleted" while their blobs may still exist;
``sweep_unfinished`` (run by the purge job) deletes those blobs and finishes
the receipt, so nothing that should stay is lost and no orphan remains.

A receipt's per-file list is a JSON-lines blob (recording id, call id, blob
key, SHA-256, size, reason), written through a temporary file so that a
receipt of a million lines never sits in memory; ``DeletionReceipt.sha256``
is that blob's hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from callvault.db.models import DeletionReceipt, Recording, Tenant
from callvault.storage.blobs import BlobNotFound, BlobStore

# the purge's receipts are written from the rows it marked (``purge.py``); the others list files
PURGE_KIND = "purge"
ID_CHUNK = 500  # ids per IN (...): well under SQLite's bound-parameter limit


def receipt_line(recording: Recording, reason: str | None = None) -> dict[str, object]:
    line: dict[str, object] = {
        "recording_id": recording.id,
        "call_id": recording.call_id,
        "blob_key": recording.blob_key,
        "sha256": recording.sha256,
        "size_bytes": recording.size_bytes,
    }
    if reason is not None:
        line["reason"] = reason
    return line


def encode_line(line: Mapping[str, object]) -> bytes:
    return (json.dumps(line, sort_keys=True) + "\n").encode()


def receipt_key(receipt: DeletionReceipt) -> str:
    return f"receipts/{receipt.kind}/{receipt.started_at:%Y/%m/%d}/{receipt.id}.jsonl"


def open_receipt(
    session: Session,
    *,
    kind: str,
    actor: str,
    at: datetime,
    tenant: Tenant | None = None,
    tenant_id: int | None = None,
    tenant_name: str | None = None,
) -> DeletionReceipt:
    """A receipt row, unfinished (flushed: the id is set; the caller commits)."""
    receipt = DeletionReceipt(
        kind=kind,
        tenant_id=tenant.id if tenant else tenant_id,
        tenant_name=tenant.name if tenant else tenant_name,
        actor=actor[:200],
        started_at=at,
        finished_at=None,
        counts={},
    )
    session.add(receipt)
    session.flush()
    return receipt


class ReceiptWriter:
    """Collects a receipt's lines in a temporary file and its SHA-256 on the way."""

    def __init__(self) -> None:
        handle, name = tempfile.mkstemp(prefix="callvault-receipt-", suffix=".jsonl")
        self.path = Path(name)
        self._file: BinaryIO = os.fdopen(handle, "wb")
        self._hash = hashlib.sha256()
        self.lines = 0

    def add(self, line: Mapping[str, object]) -> None:
        data = encode_line(line)
        self._file.write(data)
        self._hash.update(data)
        self.lines += 1

    def store(self, blobs: BlobStore, receipt: DeletionReceipt) -> None:
        """Moves the file into the blob store under the receipt's key."""
        self._file.close()
        receipt.blob_key = receipt_key(receipt)
        receipt.sha256 = self._hash.hexdigest()
        blobs.put_file(receipt.blob_key, self.path)

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


def write_receipt(
    blobs: BlobStore, receipt: DeletionReceipt, lines: Iterable[Mapping[str, object]]
) -> int:
    """Writes ``lines`` as the receipt's blob (key and SHA-256 set on the row); the count."""
    writer = ReceiptWriter()
    try:
        for line in lines:
            writer.add(line)
        writer.store(blobs, receipt)
    finally:
        writer.discard()
    return writer.lines


def mark_audio_deleted(
    session: Session, ids: Sequence[str], *, reason: str, at: datetime
) -> set[str]:
    """Marks the rows (those still with audio) as without audio; the ids it changed
    (a row another deletion marked first is not ours to list)."""
    changed: set[str] = set()
    for start in range(0, len(ids), ID_CHUNK):
        changed.update(
            session.scalars(
                update(Recording)
                .where(Recording.id.in_(ids[start : start + ID_CHUNK]))
                .where(Recording.audio_deleted_at.is_(None))
                .values(audio_deleted_at=at, audio_deleted_reason=reason)
                .returning(Recording.id)
                .execution_options(synchronize_session=False)
            )
        )
    return changed


def delete_blobs(blobs: BlobStore, keys: Iterable[str]) -> int:
    """Deletes each blob (one already gone counts as deleted); how many keys."""
    done = 0
    for key in keys:
        blobs.delete(key)
        done += 1
    return done


def delete_audio(
    session: Session,
    blobs: BlobStore,
    recordings: Sequence[Recording],
    *,
    reason: str,
    kind: str,
    actor: str,
    at: datetime,
    tenant: Tenant | None = None,
) -> DeletionReceipt:
    """Mark ``recordings`` as without audio (``reason``), keep a receipt, delete the blobs.

    Commits. The caller has checked legal holds.
    """
    receipt = open_receipt(session, kind=kind, actor=actor, at=at, tenant=tenant)
    receipt.counts = {
        "recordings": len(recordings),
        "bytes": sum(r.size_bytes for r in recordings),
        "reason": reason,
    }
    write_receipt(blobs, receipt, (receipt_line(r) for r in recordings))
    mark_audio_deleted(session, [r.id for r in recordings], reason=reason, at=at)
    session.commit()
    delete_blobs(blobs, (r.blob_key for r in recordings))
    receipt.finished_at = at
    session.commit()
    return receipt


def receipt_lines(blobs: BlobStore, key: str) -> Iterable[dict[str, Any]]:
    """The receipt blob's lines, read in chunks."""
    with blobs.open(key) as stream:
        for raw in stream:
            if raw.strip():
                yield json.loads(raw)


def finish_listed(
    session: Session, blobs: BlobStore, receipt: DeletionReceipt, at: datetime
) -> int:
    """A receipt that lists its files (not the purge's): deletes every listed blob that
    may remain, then marks it finished (commits); how many keys were listed."""
    keys = 0
    if receipt.blob_key is not None:
        try:
            keys = delete_blobs(
                blobs, (str(line["blob_key"]) for line in receipt_lines(blobs, receipt.blob_key))
            )
        except BlobNotFound:
            keys = 0  # no list was stored: nothing was deleted under it
    receipt.finished_at = at
    session.commit()
    return keys


def unfinished_receipts(session: Session, *, kind: str | None = None) -> list[DeletionReceipt]:
    query = select(DeletionReceipt).where(DeletionReceipt.finished_at.is_(None))
    if kind is not None:
        query = query.where(DeletionReceipt.kind == kind)
    return list(session.scalars(query.order_by(DeletionReceipt.id)))


def sweep_unfinished(session: Session, blobs: BlobStore, at: datetime) -> int:
    """Finishes the deletions a crash interrupted (every kind but the purge's own,
    which ``purge.py`` finishes from its rows); how many receipts."""
    swept = 0
    for receipt in unfinished_receipts(session):
        if receipt.kind == PURGE_KIND:
            continue
        finish_listed(session, blobs, receipt, at)
        swept += 1
    return swept
