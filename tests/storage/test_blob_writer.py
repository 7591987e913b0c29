"""``BlobStore.writer``: a blob written in a stream (issue 13, "ZIP exports stream from
S3 to S3"), the same for the local directory, an S3 bucket and the outbox in front of
one; on S3 a multipart upload fed by fixed-size parts, completed at commit and aborted
on failure (no incomplete upload left), in memory that does not grow with the blob.

The S3 store talks HTTP to moto's server (``s3_server.py``); what crossed the wire is
read from that server's request log and from the bucket, never from boto3's insides.
"""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from callvault.metrics import OutboxMetrics
from callvault.storage.blobs import BlobNotFound, BlobStore, BlobStoreError, LocalBlobStore
from callvault.storage.outbox import OutboxBlobStore
from callvault.storage.s3 import S3BlobStore
from tests.storage.conftest import s3_settings
from tests.storage.s3_server import S3Process, S3Server

MIB = 1024 * 1024


def _tuned(made: S3BlobStore, **tuning: int) -> S3BlobStore:
    return S3BlobStore(made.client, made.bucket, made.prefix, **tuning)


def s3_store(server: S3Server, tmp_path: Path, *, attempts: int = 5) -> S3BlobStore:
    """The store on a fresh bucket, parts of 5 MiB (S3's smallest) to keep the tests small."""
    settings = s3_settings(server.url, tmp_path, server.new_bucket())
    return _tuned(S3BlobStore.from_settings(settings, attempts=attempts), multipart_chunk=5 * MIB)


@pytest.fixture(params=["local", "s3", "outbox"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    server: S3Server = request.getfixturevalue("s3")
    remote = s3_store(server, tmp_path)
    if request.param == "s3":
        return remote
    return OutboxBlobStore(tmp_path / "outbox", remote, OutboxMetrics())


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _pending_uploads(store: S3BlobStore) -> list[object]:
    answer = store.client.list_multipart_uploads(Bucket=store.bucket)
    return list(answer.get("Uploads", []))


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_a_blob_appears_only_whole_at_commit(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(11 * MIB + 12_345)  # two full S3 parts and a short last one
    with store.writer("exports/1/e/part-001.zip") as blob:
        for piece in _pieces(data, 1_000_003):
            blob.write(memoryview(piece))
        with pytest.raises(BlobNotFound):  # nothing visible while it is written
            store.size("exports/1/e/part-001.zip")
    assert store.size("exports/1/e/part-001.zip") == len(data)
    with store.open("exports/1/e/part-001.zip") as stream:
        assert hashlib.sha256(stream.read()).digest() == hashlib.sha256(data).digest()
    if isinstance(store, LocalBlobStore):  # renamed into place: no temporary file left
        assert _files(store.root) == [store.root / "exports/1/e/part-001.zip"]
    if isinstance(store, OutboxBlobStore):  # straight to S3, not through the outbox
        assert store.pending() == [] and _files(store.root) == []
        assert store.remote.size("exports/1/e/part-001.zip") == len(data)


def test_an_aborted_blob_leaves_nothing_and_keeps_the_one_before(store: BlobStore) -> None:
    store.put("exports/1/e/part-001.zip", b"the old part")
    failing = pytest.raises(RuntimeError, match="export failed")
    with failing, store.writer("exports/1/e/part-001.zip") as blob:
        blob.write(os.urandom(6 * MIB))  # one part sent already on S3
        raise RuntimeError("export failed")
    if isinstance(store, OutboxBlobStore):
        # the writer replaces the key: the waiting copy was withdrawn, never uploaded later
        with pytest.raises(BlobNotFound):
            store.size("exports/1/e/part-001.zip")
        assert store.pending() == []
        return
    assert store.read("exports/1/e/part-001.zip") == b"the old part"
    if isinstance(store, LocalBlobStore):
        assert _files(store.root) == [store.root / "exports/1/e/part-001.zip"]
    else:
        assert isinstance(store, S3BlobStore) and _pending_uploads(store) == []


def test_s3_a_writer_is_a_multipart_upload_of_fixed_parts(s3: S3Server, tmp_path: Path) -> None:
    store = s3_store(s3, tmp_path)
    data = os.urandom(12 * MIB)
    s3.clear_log()
    with store.writer("exports/1/e/part-001.zip") as blob:
        for piece in _pieces(data, 4 * MIB - 1):  # writes never aligned to the parts
            blob.write(piece)
    path = f"/{store.bucket}/rec/exports/1/e/part-001.zip"
    puts = s3.requests("PUT", path)
    assert sorted(int(r.query.split("partNumber=")[1].split("&")[0]) for r in puts) == [1, 2, 3]
    assert all("uploadId=" in r.query and r.status == 200 for r in puts)
    posts = [(p.query.split("=")[0], p.status) for p in s3.requests("POST", path)]
    assert posts == [("uploads", 200), ("uploadId", 200)]  # created, then completed
    head = store.client.head_object(Bucket=store.bucket, Key="rec/exports/1/e/part-001.zip")
    assert head["ETag"].strip('"').endswith("-3")  # S3's multipart ETag: three parts
    assert store.read("exports/1/e/part-001.zip") == data
    assert _pending_uploads(store) == []


def test_s3_a_blob_smaller_than_one_part_is_one_put(s3: S3Server, tmp_path: Path) -> None:
    store = s3_store(s3, tmp_path)
    s3.clear_log()
    with store.writer("exports/1/e/part-001.zip") as blob:
        blob.write(b"PK" * 1000)
    assert [(r.method, r.query) for r in s3.log] == [("PUT", "")]
    assert store.read("exports/1/e/part-001.zip") == b"PK" * 1000


def test_s3_a_part_that_fails_midway_aborts_the_upload(s3: S3Server, tmp_path: Path) -> None:
    """Part 2 of 3 refused: the writer fails, and neither an object nor an incomplete
    multipart upload (whose parts S3 would keep and bill) is left in the bucket."""
    store = s3_store(s3, tmp_path, attempts=1)
    s3.fail("PUT", 500, query="partNumber=2")
    failing = pytest.raises(BlobStoreError, match="part 2")
    with failing, store.writer("exports/1/e/part-001.zip") as blob:
        for piece in _pieces(os.urandom(12 * MIB), MIB):
            blob.write(piece)
    assert [r.status for r in s3.requests("PUT") if "partNumber=2" in r.query] == [500]
    assert [r.status for r in s3.requests("DELETE")] == [204]  # AbortMultipartUpload
    assert _pending_uploads(store) == []
    assert "Contents" not in store.client.list_objects_v2(Bucket=store.bucket)


def test_s3_a_failed_completion_aborts_the_upload(s3: S3Server, tmp_path: Path) -> None:
    store = s3_store(s3, tmp_path, attempts=1)
    blob = store.writer("exports/1/e/part-001.zip")
    blob.write(os.urandom(7 * MIB))
    s3.fail("POST", 503, query="uploadId=")
    with pytest.raises(BlobStoreError):
        blob.commit()
    assert _pending_uploads(store) == []
    with pytest.raises(BlobNotFound):
        store.size("exports/1/e/part-001.zip")


def test_s3_parts_are_at_least_s3s_smallest(s3: S3Server, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least"):
        _tuned(s3_store(s3, tmp_path), multipart_chunk=MIB)


def test_the_outbox_withdraws_a_waiting_copy_before_writing_to_s3(
    s3: S3Server, tmp_path: Path
) -> None:
    """A part of an earlier attempt still waits in the outbox (S3 was down): the new part
    goes to S3, and the old one is never uploaded over it."""
    outbox = OutboxBlobStore(tmp_path / "outbox", s3_store(s3, tmp_path), OutboxMetrics())
    outbox.put("exports/1/e/part-001.zip", b"an earlier attempt")
    with outbox.writer("exports/1/e/part-001.zip") as blob:
        blob.write(b"this attempt")
    assert outbox.pending() == []
    assert outbox.drain_once() == 0
    assert outbox.read("exports/1/e/part-001.zip") == b"this attempt"
    assert outbox.remote.read("exports/1/e/part-001.zip") == b"this attempt"


def test_s3_memory_stays_flat_whatever_the_blobs_size(tmp_path: Path) -> None:
    """48 MiB through the writer in parts of 5 MiB: the client holds at most the part being
    filled and the parts in flight, not the blob. moto runs as its own process here, so
    that what it stores is not counted."""
    server = S3Process(tmp_path / "moto.log")
    server.start()
    try:
        bucket = server.create_bucket("cv-memory")
        settings = s3_settings(server.url, tmp_path, bucket)
        store = _tuned(S3BlobStore.from_settings(settings), multipart_chunk=5 * MIB)
        piece = os.urandom(MIB)
        digest = hashlib.sha256()
        tracemalloc.start()
        try:
            with store.writer("exports/1/e/part-001.zip") as blob:
                for _ in range(48):
                    blob.write(piece)
                    digest.update(piece)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # the filling part, two in flight, botocore's request copies: not the 48 MiB written
        assert peak < 5 * 5 * MIB, peak  # 19 MiB measured
        with store.open("exports/1/e/part-001.zip") as stream:
            assert hashlib.sha256(stream.read()).digest() == digest.digest()
    finally:
        server.kill()
