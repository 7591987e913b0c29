"""The export jobs (SPEC 5, bulk download): build the ZIPs, mail the link, expire.

``exports.build`` writes every recording of the month (local month in the
tenant's time zone; only the chosen users, only audio still available) into
ZIP parts with ``ExportZipWriter``, each part streamed into the blob store as
it is written (with S3: read by ranged GETs, written as a multipart upload,
never through the local disk; issue 13) and recorded as an ``ExportFile`` once
it is committed. A failure aborts the part being written (no object, no
incomplete upload is left) and the job is retried: the retry discards the
parts of the attempt before and builds the export again. The SHA-256 of every
MP3 as written must equal the one stored at finish, else the export fails and
says which recording. When it is ready, ``exports.mail`` is queued: a mail
server that is down delays the mail (retried with backoff), never the export,
and a retry of the mail never touches the ZIPs. ``exports.expire`` (daily)
deletes the files of exports past ``expires_at``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from callvault.db.models import Call, Export, ExportFile, Job, Recording, Tenant, User
from callvault.exports.manifest import ManifestEntry, Party, local_time
from callvault.exports.message import export_ready_message
from callvault.exports.month import month_bounds
from callvault.exports.request import BUILD_KIND, MAIL_KIND
from callvault.exports.zipwriter import ExportZipWriter, FinishedPart
from callvault.jobs import queue
from callvault.jobs.registry import JobContext, JobFailed, RetryLater, handler
from callvault.mail.smtp import MailPermanentError, MailTemporaryError, send
from callvault.retention.access import audio_available, is_audio_available
from callvault.storage.blobs import BlobNotFound

log = logging.getLogger(__name__)

BATCH = 200  # recordings whose rows are loaded at once
_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def part_key(tenant_id: int, export_id: str, ordinal: int) -> str:
    return f"exports/{tenant_id}/{export_id}/part-{ordinal:03d}.zip"


def _member_name(recording: Recording, call: Call, user: str | None, zone: ZoneInfo) -> str:
    local = _utc(recording.started_at).astimezone(zone)
    who = _UNSAFE.sub("-", user or "").strip("-")[:40] or "unknown"
    direction = _UNSAFE.sub("-", call.direction)[:16]
    return f"{local:%Y-%m-%d}/{local:%Y%m%d-%H%M%S}_{direction}_{who}_{recording.id}.mp3"


def _entry(recording: Recording, call: Call, user: str | None, zone: ZoneInfo) -> ManifestEntry:
    return ManifestEntry(
        file=_member_name(recording, call, user, zone),
        recording_id=recording.id,
        call_id=call.id,
        direction=call.direction,
        user=user,
        from_name=call.from_name,
        from_number=call.from_number,
        to_name=call.to_name,
        to_number=call.to_number,
        started_at=local_time(call.started_at, zone) or "",
        answered_at=local_time(call.answered_at, zone),
        ended_at=local_time(call.ended_at, zone),
        call_duration_s=round(call.duration_ms / 1000, 3),
        recording_duration_s=round(recording.duration_ms / 1000, 3),
        size_bytes=recording.size_bytes,
        sha256=recording.sha256,
        parties=[Party(p.name, p.number, p.side) for p in call.parties],
    )


def _recording_ids(session: Session, export: Export, tenant: Tenant, at: datetime) -> list[str]:
    start, end = month_bounds(export.month, tenant.timezone)
    query = select(Recording.id).where(
        Recording.tenant_id == tenant.id,
        Recording.started_at >= start,
        Recording.started_at < end,
        audio_available(at),
    )
    if export.user_ids is not None:
        query = query.where(Recording.user_id.in_(export.user_ids))
    return list(session.scalars(query.order_by(Recording.started_at, Recording.id)))


def _batches(
    ctx: JobContext, tenant_id: int, ids: list[str]
) -> Iterator[list[tuple[Recording, Call, str | None]]]:
    """The recordings with their calls and user names, a batch at a time (detached)."""
    for first in range(0, len(ids), BATCH):
        chunk = ids[first : first + BATCH]
        with ctx.sessions() as session:
            recordings = {
                r.id: r
                for r in session.scalars(
                    select(Recording).where(
                        Recording.tenant_id == tenant_id, Recording.id.in_(chunk)
                    )
                )
            }
            calls = {
                c.id: c
                for c in session.scalars(
                    select(Call)
                    .where(Call.id.in_({r.call_id for r in recordings.values()}))
                    .options(selectinload(Call.parties))
                )
            }
            user_ids = {r.user_id for r in recordings.values() if r.user_id is not None}
            names: dict[int, str] = {
                uid: name
                for uid, name in session.execute(
                    select(User.id, User.name).where(User.id.in_(user_ids))
                )
            }
            yield [
                (recordings[i], calls[recordings[i].call_id], names.get(recordings[i].user_id or 0))
                for i in chunk
                if i in recordings
            ]


def _discard_files(ctx: JobContext, session: Session, export: Export) -> None:
    for file in list(export.files):
        ctx.blobs.delete(file.blob_key)
        session.delete(file)


def _fail(ctx: JobContext, export_id: str, error: str) -> None:
    with ctx.sessions() as session:
        export = session.get(Export, export_id)
        if export is None:
            return
        _discard_files(ctx, session, export)
        export.state, export.error = "failed", error[:2000]
        export.recordings, export.bytes_total = 0, 0
        session.commit()


def _enqueue_mail(session: Session, export: Export, at: datetime) -> None:
    queue.enqueue(
        session,
        MAIL_KIND,
        {"export_id": export.id},
        at=at,
        tenant_id=export.tenant_id,
        key=f"{MAIL_KIND}:{export.id}",
        created_by="exports.build",
    )


@handler(BUILD_KIND)
def build(ctx: JobContext) -> dict[str, Any] | None:
    export_id = str(ctx.payload.get("export_id", ""))
    at = ctx.now()
    with ctx.sessions() as session:
        export = session.get(Export, export_id)
        if export is None or export.tenant_id != ctx.tenant_id:
            return {"skipped": "no such export"}
        if export.state != "queued" and export.state != "running":
            return {"skipped": export.state}  # built already: never again
        tenant = session.get(Tenant, export.tenant_id)
        assert tenant is not None  # the export's row goes with its tenant
        # an earlier attempt that died left parts behind: they start over
        _discard_files(ctx, session, export)
        export.state, export.error = "running", None
        session.commit()
        zone = ZoneInfo(tenant.timezone)
        ids = _recording_ids(session, export, tenant, at)
        header = {
            "export_id": export.id,
            "organisation": tenant.name,
            "month": export.month,
            "timezone": tenant.timezone,
            "users": export.user_ids,
            "created_at": local_time(at, zone),
        }
        tenant_id = tenant.id
    ctx.progress(0, len(ids), f"0/{len(ids)}")

    totals = {"files": 0, "bytes": 0}

    def store(part: FinishedPart) -> None:
        with ctx.sessions() as session:
            session.add(
                ExportFile(
                    export_id=export_id,
                    tenant_id=tenant_id,
                    ordinal=part.ordinal,
                    blob_key=part.key,
                    size_bytes=part.size_bytes,
                    sha256=part.sha256,
                    recordings=part.recordings,
                )
            )
            session.commit()
        totals["files"] += 1
        totals["bytes"] += part.size_bytes

    settings = ctx.services.settings
    writer = ExportZipWriter(
        ctx.blobs,
        lambda ordinal: part_key(tenant_id, export_id, ordinal),
        settings.export_part_max_bytes,
        header,
        store,
    )
    done = 0
    try:
        for batch in _batches(ctx, tenant_id, ids):
            for recording, call, user in batch:
                done += _add(ctx, writer, recording, call, user, zone, at)
            ctx.progress(done, len(ids), f"{done}/{len(ids)}")
        writer.close()
    except JobFailed as exc:
        writer.abort()
        _fail(ctx, export_id, str(exc))
        raise
    except Exception as exc:
        writer.abort()
        if _last_attempt(ctx):
            _fail(ctx, export_id, f"{type(exc).__name__}: {exc}")
            raise JobFailed(str(exc)) from exc
        raise RetryLater(f"{type(exc).__name__}: {exc}") from exc

    with ctx.sessions() as session:
        export = session.get(Export, export_id)
        assert export is not None
        export.state, export.error = "ready", None
        export.recordings, export.bytes_total = done, totals["bytes"]
        export.ready_at = at
        export.expires_at = ctx.now() + timedelta(days=settings.export_keep_days)
        _enqueue_mail(session, export, ctx.now())
        session.commit()
    return {"recordings": done, "files": totals["files"], "bytes": totals["bytes"]}


def _add(
    ctx: JobContext,
    writer: ExportZipWriter,
    recording: Recording,
    call: Call,
    user: str | None,
    zone: ZoneInfo,
    at: datetime,
) -> int:
    """1 when the recording went into the ZIP, 0 when its audio went away meanwhile."""
    try:
        source = ctx.blobs.open(recording.blob_key)
    except BlobNotFound:
        with ctx.sessions() as session:
            if not is_audio_available(session, recording, at):
                return 0  # purged or erased since the list was made
        raise JobFailed(f"recording {recording.id}: its audio file is missing") from None
    with source:
        sha, size = writer.add(_entry(recording, call, user, zone), source)
    if sha != recording.sha256:
        raise JobFailed(
            f"recording {recording.id}: SHA-256 of the audio ({sha}) differs from the one "
            f"stored when it was recorded ({recording.sha256})"
        )
    if size != recording.size_bytes:
        log.warning(
            "recording %s: %d bytes, its row says %d", recording.id, size, recording.size_bytes
        )
    return 1


def _last_attempt(ctx: JobContext) -> bool:
    with ctx.sessions() as session:
        job = session.get(Job, ctx.job_id)
        return job is None or ctx.attempt >= job.max_attempts


@handler(MAIL_KIND)
def mail(ctx: JobContext) -> dict[str, Any] | None:
    """The link to the admin who asked, else to the tenant's delivery address."""
    settings = ctx.services.settings
    with ctx.sessions() as session:
        export = session.get(Export, str(ctx.payload.get("export_id", "")))
        if export is None or export.state != "ready":
            return {"sent": False, "reason": "not-ready"}
        tenant = session.get(Tenant, export.tenant_id)
        assert tenant is not None
        user = session.get(User, export.requested_by) if export.requested_by else None
        recipient = (user.email if user is not None else None) or tenant.delivery_email
        if not recipient:
            return {"sent": False, "reason": "no-address"}
        if settings.smtp_host is None:
            return {"sent": False, "reason": "no-mail-server"}
        message = export_ready_message(settings, export, tenant, recipient)
    try:
        send(settings, message)
    except MailTemporaryError as exc:
        raise RetryLater(f"mail to {recipient}: {exc}") from exc
    except MailPermanentError as exc:
        raise JobFailed(f"mail to {recipient}: {exc}") from exc
    return {"sent": True, "to": recipient}


@handler("exports.expire")
def expire(ctx: JobContext) -> dict[str, Any] | None:
    """Exports past ``expires_at``: state ``expired`` first (no new download starts), then
    their files are deleted; a failed export's leftovers go too."""
    at = ctx.now()
    expired = 0
    with ctx.sessions() as session:
        due = list(
            session.scalars(select(Export).where(Export.state == "ready", Export.expires_at <= at))
        )
        for export in due:
            export.state = "expired"
        session.commit()
        for export in due:
            for file in export.files:
                ctx.blobs.delete(file.blob_key)
            expired += 1
        leftovers = select(Export).where(Export.state == "failed", Export.files.any())
        for export in session.scalars(leftovers):
            _discard_files(ctx, session, export)
        session.commit()
    return {"expired": expired}
