"""Deleting a recording's audio, for every reason, with a receipt.

The row stays (the call is still listed) and says why and when the audio
went. Order, for crash safety: the rows are marked and the receipt written
and committed first, then the blobs are deleted. A crash in between leaves
blobs whose rows say "deleted"; ``sweep_deleted_blobs`` (run by the purge)
deletes them, so nothing that should stay is lost and no orphan remains.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from callvault.db.models import DeletionReceipt, Recording, Tenant
from callvault.storage.blobs import BlobStore


def receipt_line(recording: Recording) -> dict[str, object]:
    return {
        "recording_id": recording.id,
        "call_id": recording.call_id,
        "blob_key": recording.blob_key,
        "sha256": recording.sha256,
        "size_bytes": recording.size_bytes,
    }


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
    lines = [receipt_line(r) for r in recordings]
    body = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines).encode()
    receipt = DeletionReceipt(
        kind=kind,
        tenant_id=tenant.id if tenant else None,
        tenant_name=tenant.name if tenant else None,
        actor=actor,
        started_at=at,
        finished_at=at,
        counts={
            "recordings": len(lines),
            "bytes": sum(r.size_bytes for r in recordings),
            "reason": reason,
        },
        sha256=hashlib.sha256(body).hexdigest(),
    )
    session.add(receipt)
    session.flush()
    receipt.blob_key = f"receipts/{kind}/{at:%Y/%m/%d}/{receipt.id}.jsonl"
    blobs.put(receipt.blob_key, body)
    ids = [r.id for r in recordings]
    for start in range(0, len(ids), 500):
        session.execute(
            update(Recording)
            .where(Recording.id.in_(ids[start : start + 500]), Recording.audio_deleted_at.is_(None))
            .values(audio_deleted_at=at, audio_deleted_reason=reason)
            .execution_options(synchronize_session=False)
        )
    session.commit()
    for recording in recordings:
        blobs.delete(recording.blob_key)
    return receipt
