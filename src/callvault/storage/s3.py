"""The S3-compatible blob store (issue 13): ``S3BlobStore``, the ``BlobStore`` calls over HTTP.

Any store speaking the S3 API (AWS S3, MinIO, Ceph RGW, ...) through boto3:

- ``put`` is one PUT; ``put_file`` streams the file from disk through
  s3transfer, one PUT below ``MULTIPART_THRESHOLD`` and a multipart upload
  above it (parts of ``MULTIPART_CHUNK``), never reading the file whole. S3
  makes an object visible only once its upload completed, so a reader never
  sees half a file; a failed multipart upload is aborted by s3transfer.
- ``writer`` streams a blob that is made as it is written (an export's ZIP
  part, read from S3 and written to S3 without touching the disk): the bytes
  fill a buffer of ``MULTIPART_CHUNK``; each full buffer is one part of a
  multipart upload (S3's smallest part is 5 MiB, the last excepted), sent by
  a thread while the next fills, at most ``PARTS_IN_FLIGHT`` at once, so the
  memory is (1 + ``PARTS_IN_FLIGHT``) parts whatever the blob's size.
  ``commit`` sends the rest as the last part and completes the upload (a blob
  smaller than one part is one PUT); a failure, or ``abort``, aborts the
  upload after its parts in flight ended, so that no incomplete upload is
  left to be billed (a bucket lifecycle rule aborting incomplete uploads
  after a day is the backstop for a process killed mid-upload).
- ``read_range`` is one ranged GET (``Range: bytes=a-b``) whose body is handed
  on in chunks: the audio route's 206 never loads the whole file. ``open``
  gives a seekable stream that fetches ``READ_PART`` bytes per ranged GET
  as it is read, pinned to the object's ETag (``If-Match``), so a blob
  replaced mid-read fails instead of mixing two versions.
- ``delete`` is confirmed by a HEAD after the DELETE: S3 answers 204 to a
  DELETE whether or not the key existed, so only the HEAD's 404 says the
  object is gone (S3 is read-after-write consistent). A versioned bucket
  keeps old versions behind a delete marker: ``probe`` reports it so that
  ``callvault check`` warns (purge and termination must destroy audio).
- Timeouts (``s3_timeout_s`` for connecting and for each read) and botocore's
  "standard" retries (``S3_ATTEMPTS``, with backoff, on throttling, 5xx and
  connection errors) are set on the client. What still fails is raised as
  ``BlobStoreError``; a missing key is ``BlobNotFound`` (``storage/blobs.py``);
  a 4xx answer about the object itself (not the credentials, the clock, the
  bucket or throttling: ``_STORE_WIDE``) is ``BlobRefused``, the store up but
  this blob refused.

Keys are the local store's keys under ``s3_prefix``. The secret key comes from
the settings as a ``SecretStr`` and is handed only to boto3, never logged.
Requests carry checksums only where the API requires them (``when_required``):
boto3's newer default trailing CRC checksums are refused by several
S3-compatible stores.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from callvault.storage.blobs import (
    CHUNK,
    BlobNotFound,
    BlobRefused,
    BlobStoreError,
    BlobWriter,
    Bytes,
    WriterBase,
    check_key,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from callvault.settings import Settings

log = logging.getLogger(__name__)

MULTIPART_THRESHOLD = 64 * 1024 * 1024
MULTIPART_CHUNK = 16 * 1024 * 1024  # S3's smallest part is 5 MiB; at most 10,000 parts
MIN_PART = 5 * 1024 * 1024
MAX_PARTS = 10_000
PARTS_IN_FLIGHT = 2  # a writer's parts being sent while the next one fills
READ_PART = 8 * 1024 * 1024  # one ranged GET of ``open``'s stream
S3_ATTEMPTS = 5  # botocore's first try included
UPLOAD_THREADS = 4
# what S3 answers for a key (or a HEAD) that holds nothing
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
# 4xx answers about the store, not the one object: every blob would get them (and any
# code starting ``KMS.``: the bucket's key disabled or gone). AccessDenied is not one: S3
# says it for a policy's deny of one key as for a whole bucket's, and so does a HEAD's bare
# "403" (no body): the outbox's breaker tells them apart (``storage/outbox.py``). A list of
# the store's codes rather than of the objects': a code missing here is caught by the
# breaker after a few refusals, while one missing from a list of the objects' would make a
# single refused blob stop every upload behind it
_STORE_WIDE = frozenset(
    {
        "AccountProblem",
        "AllAccessDisabled",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidBucketState",
        "InvalidToken",
        "NoSuchBucket",
        "PermanentRedirect",
        "RequestTimeTooSkewed",
        "RequestTimeout",
        "SignatureDoesNotMatch",
        "SlowDown",
        "TokenRefreshRequired",
        "TooManyRequests",
    }
)

_STORE_WIDE_PREFIX = "KMS."


@dataclass(frozen=True)
class BucketState:
    """What ``probe`` found: the bucket answered a write, a read and a confirmed delete."""

    versioning: str | None  # "Enabled" / "Suspended"; None: never enabled, or not readable


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{error.get('Code', '?')} ({status}): {error.get('Message', '')}".strip()
    return str(exc) or type(exc).__name__


def _refused(exc: BaseException) -> bool:
    """S3 answered a 4xx about this object (``exc`` or the answer boto3's upload error wraps:
    ``S3UploadFailedError`` keeps it as its context)."""
    answer = exc if isinstance(exc, ClientError) else exc.__context__
    if not isinstance(answer, ClientError):
        return False
    status = answer.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    code = _code(answer)
    store_wide = code in _STORE_WIDE or code.startswith(_STORE_WIDE_PREFIX)
    return 400 <= int(status) < 500 and status != 429 and not store_wide


@contextlib.contextmanager
def _asking(what: str, key: str) -> Iterator[None]:
    """Maps boto3's errors: a missing key to ``BlobNotFound``, a refusal of this object to
    ``BlobRefused``, the rest to ``BlobStoreError``."""
    try:
        yield
    except ClientError as exc:
        if _code(exc) in _MISSING:
            raise BlobNotFound(key) from exc
        error = BlobRefused if _refused(exc) else BlobStoreError
        raise error(f"S3 {what} of {key!r} failed: {_reason(exc)}") from exc
    except (BotoCoreError, Boto3Error, OSError) as exc:
        error = BlobRefused if _refused(exc) else BlobStoreError
        raise error(f"S3 {what} of {key!r} failed: {_reason(exc)}") from exc


class S3BlobStore:
    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        multipart_chunk: int = MULTIPART_CHUNK,
        read_part: int = READ_PART,
        parts_in_flight: int = PARTS_IN_FLIGHT,
    ) -> None:
        if multipart_chunk < MIN_PART:
            raise ValueError(f"S3's parts are at least {MIN_PART} bytes, not {multipart_chunk}")
        self.client = client  # a boto3 S3 client (thread-safe; shared by the portal's threads)
        self.bucket = bucket
        self.prefix = prefix
        self.read_part = read_part
        self.part_size = multipart_chunk
        self.parts_in_flight = max(1, parts_in_flight)
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunk,
            max_concurrency=UPLOAD_THREADS,
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, attempts: int = S3_ATTEMPTS) -> S3BlobStore:
        if settings.s3_bucket is None:
            raise ValueError("blob_store = 's3' needs s3_bucket")
        secret = settings.s3_secret_access_key
        session = boto3.session.Session(
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret is not None else None,
        )
        config = Config(
            region_name=settings.s3_region,
            connect_timeout=settings.s3_timeout_s,
            read_timeout=settings.s3_timeout_s,
            retries={"mode": "standard", "total_max_attempts": attempts},
            # an own endpoint (MinIO, Ceph, a test server) rarely has a DNS name per bucket
            s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
            signature_version="s3v4",
            max_pool_connections=32,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = session.client("s3", endpoint_url=settings.s3_endpoint_url, config=config)
        return cls(client, settings.s3_bucket, settings.s3_prefix)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    # -- BlobStore ------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        with _asking("upload", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, path: Path) -> None:
        """Uploads ``path`` in a stream (multipart above the threshold), then removes it.

        On failure the file stays where it was, for the caller's retry.
        """
        with _asking("upload", key):
            self.client.upload_file(str(path), self.bucket, self._key(key), Config=self._transfer)
        path.unlink()

    def writer(self, key: str) -> BlobWriter:
        """A multipart upload fed as it is written (see the module's docstring)."""
        return MultipartWriter(self, check_key(key))

    def _head(self, key: str) -> dict[str, Any]:
        with _asking("HEAD", key):
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        return head

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def _get(self, key: str, start: int, end: int | None, if_match: str | None = None) -> Any:
        """The GET's streaming body for ``[start, end)`` (``end`` None: to the end)."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if start or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        if if_match is not None:
            args["IfMatch"] = if_match
        with _asking("GET", key):
            return self.client.get_object(**args)["Body"]

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        if end is not None and end <= start:
            self._head(key)  # nothing to read, but a missing blob is still BlobNotFound
            return b""
        try:
            body = self._get(key, start, end)
        except BlobStoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and _code(cause) == "InvalidRange":
                return b""  # start at or past the end: nothing, as a file would answer
            raise
        with _asking("GET", key), contextlib.closing(body):
            data: bytes = body.read()
        return data

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        if end <= start:
            self._head(key)
            return iter(())
        return _body_chunks(key, self._get(key, start, end))

    def open(self, key: str) -> BinaryIO:
        head = self._head(key)
        raw = _RangedReader(self, key, int(head["ContentLength"]), str(head["ETag"]))
        return io.BufferedReader(raw, buffer_size=CHUNK)

    def delete(self, key: str) -> None:
        """Deletes ``key`` and confirms it: a HEAD afterwards must answer 404."""
        with _asking("DELETE", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        try:
            self._head(key)
        except BlobNotFound:
            return
        raise BlobStoreError(f"S3 DELETE of {key!r} was answered, but the object is still there")

    # -- callvault check ------------------------------------------------------------
    def probe(self) -> BucketState:
        """Writes, reads back and deletes a small object under the prefix; ``BlobStoreError``
        (or ``BlobNotFound``) says what failed."""
        with _asking("HEAD bucket", self.bucket):
            self.client.head_bucket(Bucket=self.bucket)
        key = f"callvault-check/{uuid.uuid4().hex}"
        marker = b"callvault check\n"
        self.put(key, marker)
        try:
            if self.read(key) != marker:
                raise BlobStoreError(f"S3 read back of {key!r} differs from what was written")
        finally:
            self.delete(key)
        versioning: str | None = None
        with contextlib.suppress(ClientError, BotoCoreError):  # may not be allowed to ask
            versioning = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        return BucketState(versioning=versioning)


def _body_chunks(key: str, body: Any) -> Iterator[bytes]:
    with _asking("GET", key), contextlib.closing(body):
        yield from body.iter_chunks(CHUNK)


class _RangedReader(io.RawIOBase):
    """A blob read by ranged GETs of ``store.read_part`` bytes, one part in memory at a time."""

    def __init__(self, store: S3BlobStore, key: str, size: int, etag: str) -> None:
        super().__init__()
        self._store, self._key, self._size, self._etag = store, key, size, etag
        self._pos = 0
        self._part = b""
        self._part_start = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= self._size or not len(view):
            return 0
        offset = self._pos - self._part_start
        if not 0 <= offset < len(self._part):
            end = min(self._size, self._pos + self._store.read_part)
            body = self._store._get(self._key, self._pos, end, if_match=self._etag)
            with _asking("GET", self._key), contextlib.closing(body):
                self._part = body.read()
            self._part_start, offset = self._pos, 0
            if not self._part:
                raise BlobStoreError(f"S3 GET of {self._key!r} ended before its size")
        count = min(len(view), len(self._part) - offset)
        view[:count] = self._part[offset : offset + count]
        self._pos += count
        return count


class MultipartWriter(WriterBase):
    """One blob uploaded while it is written: full buffers of ``store.part_size`` become
    parts, sent by a thread pool, at most ``store.parts_in_flight`` at once."""

    def __init__(self, store: S3BlobStore, key: str) -> None:
        self._store, self._key = store, key
        self._s3_key = store._key(key)
        self._buffer = bytearray(store.part_size)
        self._filled = 0
        self._upload_id: str | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._slots = threading.BoundedSemaphore(store.parts_in_flight)
        self._pool: ThreadPoolExecutor | None = None
        self._done = False
        self.size = 0

    def write(self, data: Bytes) -> int:
        if self._done:
            raise ValueError(f"S3 upload of {self._key!r}: committed already, or aborted")
        view = memoryview(data).cast("B")
        taken = 0
        while taken < len(view):
            count = min(len(self._buffer) - self._filled, len(view) - taken)
            self._buffer[self._filled : self._filled + count] = view[taken : taken + count]
            self._filled += count
            taken += count
            if self._filled == len(self._buffer):
                self._send(self._buffer)
                self._buffer, self._filled = bytearray(self._store.part_size), 0
        self.size += taken
        return taken

    def _send(self, body: bytearray) -> None:
        """``body`` as the next part; waits while ``parts_in_flight`` are being sent."""
        for part in self._parts:  # a part that failed fails the writer now, not at commit
            if part.done() and part.exception() is not None:
                part.result()
        if len(self._parts) >= MAX_PARTS:
            raise BlobStoreError(f"S3 upload of {self._key!r}: more than {MAX_PARTS} parts")
        client, bucket = self._store.client, self._store.bucket
        if self._upload_id is None:
            with _asking("multipart upload", self._key):
                created = client.create_multipart_upload(Bucket=bucket, Key=self._s3_key)
            self._upload_id = str(created["UploadId"])
            self._pool = ThreadPoolExecutor(
                self._store.parts_in_flight, thread_name_prefix="s3-part"
            )
        assert self._pool is not None
        number, upload_id = len(self._parts) + 1, self._upload_id
        self._slots.acquire()  # memory stays bounded: no more parts than slots in flight

        def upload() -> dict[str, Any]:
            try:
                with _asking(f"upload of part {number}", self._key):
                    answer = client.upload_part(
                        Bucket=bucket,
                        Key=self._s3_key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=body,
                    )
                return {"PartNumber": number, "ETag": answer["ETag"]}
            finally:
                self._slots.release()

        self._parts.append(self._pool.submit(upload))

    def commit(self) -> None:
        """The rest as the last part and the upload completed (one PUT when it all fit in
        one part); the blob is then visible whole. On failure the upload is aborted."""
        if self._done:
            raise ValueError(f"S3 upload of {self._key!r}: committed already, or aborted")
        client, bucket = self._store.client, self._store.bucket
        try:
            if self._upload_id is None:
                with _asking("upload", self._key):
                    client.put_object(
                        Bucket=bucket, Key=self._s3_key, Body=bytes(self._buffer[: self._filled])
                    )
            else:
                if self._filled:
                    self._send(self._buffer[: self._filled])
                parts = [part.result() for part in self._parts]
                with _asking("multipart upload", self._key):
                    client.complete_multipart_upload(
                        Bucket=bucket,
                        Key=self._s3_key,
                        UploadId=self._upload_id,
                        MultipartUpload={"Parts": parts},
                    )
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._release()

    def abort(self) -> None:
        """Aborts the upload once its parts in flight ended; best effort (logged): the
        caller is handling the error that brought it here."""
        if self._done:
            return
        self._done = True
        self._release()
        if self._upload_id is None:
            return
        try:
            with _asking("abort of the multipart upload", self._key):
                self._store.client.abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._s3_key, UploadId=self._upload_id
                )
        except BlobStoreError as exc:
            left = self._upload_id
            log.warning("%s; upload %s stays until the bucket's lifecycle rule", exc, left)

    def _release(self) -> None:
        """Waits for the parts in flight and lets go of the threads and the buffer."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._buffer, self._filled = bytearray(), 0
