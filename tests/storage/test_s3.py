"""The blob stores' behaviour, the same for the local directory, an S3 bucket and the
outbox in front of one (issue 13).

The S3 store talks HTTP to a real S3 server (moto's, ``s3_server.py``); what
crossed the wire is read from that server's request log, never from boto3.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from callvault.metrics import OutboxMetrics
from callvault.storage.blobs import (
    CHUNK,
    BlobNotFound,
    BlobRefused,
    BlobStore,
    BlobStoreError,
    LocalBlobStore,
)
from callvault.storage.factory import make_blob_store
from callvault.storage.outbox import OutboxBlobStore
from callvault.storage.s3 import S3BlobStore
from tests.storage.conftest import s3_settings
from tests.storage.s3_server import S3Server

MIB = 1024 * 1024
AUDIO = bytes(range(256)) * 1200  # 300 KiB


class DrainedOutbox(OutboxBlobStore):
    """The outbox, drained after every write: its reads then come from the bucket."""

    def put(self, key: str, data: bytes) -> None:
        super().put(key, data)
        self.drain_once()
        assert not self.pending()

    def put_file(self, key: str, path: Path) -> None:
        super().put_file(key, path)
        self.drain_once()
        assert not self.pending()


@pytest.fixture(params=["local", "s3", "outbox", "outbox-drained"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """Each store kind; the outbox before its upload (local reads) and after (S3 reads)."""
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    server: S3Server = request.getfixturevalue("s3")
    settings = s3_settings(server.url, tmp_path, server.new_bucket())
    if request.param == "s3":
        return S3BlobStore.from_settings(settings)
    made = make_blob_store(settings)  # s3_outbox is on by default
    assert isinstance(made, OutboxBlobStore)
    if request.param == "outbox":
        return made
    return DrainedOutbox(made.root, made.remote, OutboxMetrics())


def s3_store(server: S3Server, tmp_path: Path, **tuning: int) -> S3BlobStore:
    made = S3BlobStore.from_settings(s3_settings(server.url, tmp_path, server.new_bucket()))
    if not tuning:
        return made
    return S3BlobStore(made.client, made.bucket, made.prefix, **tuning)


def test_put_read_size(store: BlobStore) -> None:
    store.put("7/call.mp3", AUDIO)
    assert store.size("7/call.mp3") == len(AUDIO)
    assert store.read("7/call.mp3") == AUDIO
    assert store.read("7/call.mp3", 1000, 1010) == AUDIO[1000:1010]
    assert store.read("7/call.mp3", len(AUDIO) - 5) == AUDIO[-5:]
    assert store.read("7/call.mp3", 20, 20) == b""
    assert store.read("7/call.mp3", len(AUDIO) + 10) == b""  # past the end: nothing
    store.put("7/call.mp3", b"replaced")
    assert store.read("7/call.mp3") == b"replaced"


def test_missing_keys(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        store.size("7/none.mp3")
    with pytest.raises(BlobNotFound):
        store.read("7/none.mp3")
    with pytest.raises(BlobNotFound):
        store.read("7/none.mp3", 5, 5)
    with pytest.raises(BlobNotFound):
        store.open("7/none.mp3")
    with pytest.raises(BlobNotFound):  # raised by the call, before any chunk is asked for
        store.read_range("7/none.mp3", 0, 10)
    store.delete("7/none.mp3")  # deleting nothing is no error


def test_invalid_keys_are_refused(store: BlobStore) -> None:
    for key in ("../etc/passwd", "/abs", "a/../b", ""):
        with pytest.raises(ValueError):
            store.put(key, b"x")


def test_delete(store: BlobStore) -> None:
    store.put("7/call.mp3", AUDIO)
    store.delete("7/call.mp3")
    with pytest.raises(BlobNotFound):
        store.size("7/call.mp3")


def test_read_range_hands_out_chunks(store: BlobStore) -> None:
    store.put("7/call.mp3", AUDIO)
    chunks = list(store.read_range("7/call.mp3", 100, 200_100))
    assert b"".join(chunks) == AUDIO[100:200_100]
    assert len(chunks) > 1 and max(len(c) for c in chunks) <= CHUNK
    assert list(store.read_range("7/call.mp3", 50, 50)) == []
    assert b"".join(store.read_range("7/call.mp3", 0, len(AUDIO) + 99)) == AUDIO


def test_open_reads_seeks_and_reads_lines(store: BlobStore) -> None:
    lines = b"".join(b'{"n": %d}\n' % n for n in range(20_000))
    store.put("receipts/1.jsonl", lines)
    with store.open("receipts/1.jsonl") as stream:
        assert stream.readline() == b'{"n": 0}\n'
        assert sum(1 for _ in stream) == 19_999
        stream.seek(10)
        assert stream.read(9) == lines[10:19]
        stream.seek(-5, os.SEEK_END)
        assert stream.read() == lines[-5:]
        stream.seek(0)
        assert stream.read() == lines


def _big_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def test_put_file_consumes_the_file(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "part.zip"
    data = _big_file(source, 2 * MIB)
    store.put_file("exports/1/part1.zip", source)
    assert not source.exists()
    assert store.size("exports/1/part1.zip") == len(data)
    with store.open("exports/1/part1.zip") as stream:
        assert stream.read() == data


def test_s3_put_file_above_the_threshold_is_a_multipart_upload(
    s3: S3Server, tmp_path: Path
) -> None:
    """12 MiB with 5 MiB parts (S3's smallest): three parts, no single PUT of the file."""
    store = s3_store(s3, tmp_path, multipart_threshold=5 * MIB, multipart_chunk=5 * MIB)
    source = tmp_path / "part.zip"
    data = _big_file(source, 12 * MIB)
    s3.clear_log()
    store.put_file("exports/1/part1.zip", source)
    path = f"/{store.bucket}/rec/exports/1/part1.zip"
    puts = s3.requests("PUT", path)
    assert sorted(r.query.split("partNumber=")[1].split("&")[0] for r in puts) == ["1", "2", "3"]
    assert all("uploadId=" in r.query and r.status == 200 for r in puts)
    posts = s3.requests("POST", path)
    assert [p.query for p in posts if p.query.startswith("uploads")]  # created
    assert any("uploadId=" in p.query and p.status == 200 for p in posts)  # completed
    assert not source.exists()
    assert (
        store.read("exports/1/part1.zip", 5 * MIB - 3, 5 * MIB + 3)
        == data[5 * MIB - 3 : 5 * MIB + 3]
    )
    assert store.size("exports/1/part1.zip") == len(data)


def test_s3_small_put_file_is_one_put(s3: S3Server, tmp_path: Path) -> None:
    store = s3_store(s3, tmp_path, multipart_threshold=5 * MIB, multipart_chunk=5 * MIB)
    source = tmp_path / "receipt.jsonl"
    _big_file(source, MIB)
    s3.clear_log()
    store.put_file("receipts/1.jsonl", source)
    assert [
        (r.method, r.query) for r in s3.requests(path=f"/{store.bucket}/rec/receipts/1.jsonl")
    ] == [("PUT", "")]


def test_s3_keys_live_under_the_prefix(s3: S3Server, tmp_path: Path) -> None:
    store = s3_store(s3, tmp_path)
    store.put("7/call.mp3", b"abc")
    listed = store.client.list_objects_v2(Bucket=store.bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["rec/7/call.mp3"]


def test_s3_read_range_is_one_ranged_get(s3: S3Server, tmp_path: Path) -> None:
    store = s3_store(s3, tmp_path)
    store.put("7/call.mp3", AUDIO)
    s3.clear_log()
    assert b"".join(store.read_range("7/call.mp3", 1000, 3000)) == AUDIO[1000:3000]
    gets = s3.requests("GET")
    assert [(g.range, g.sent) for g in gets] == [("bytes=1000-2999", 2000)]


def test_s3_open_reads_by_ranged_gets_of_one_part(s3: S3Server, tmp_path: Path) -> None:
    store = s3_store(s3, tmp_path, read_part=64 * 1024)
    store.put("exports/1/part1.zip", AUDIO)
    s3.clear_log()
    with store.open("exports/1/part1.zip") as stream:
        read = b"".join(iter(lambda: stream.read(10_000), b""))
    assert read == AUDIO
    gets = s3.requests("GET")
    assert len(gets) == -(-len(AUDIO) // (64 * 1024))  # five parts, each fetched once
    assert all(g.range and g.sent <= 64 * 1024 for g in gets)
    assert sum(g.sent for g in gets) == len(AUDIO)


def test_s3_open_fails_when_the_blob_is_replaced_mid_read(s3: S3Server, tmp_path: Path) -> None:
    """The stream is pinned to the ETag it opened: never half one version, half another."""
    store = s3_store(s3, tmp_path, read_part=64 * 1024)
    store.put("exports/1/part1.zip", AUDIO)
    with store.open("exports/1/part1.zip") as stream:
        stream.read(1000)
        store.put("exports/1/part1.zip", AUDIO[::-1])
        with pytest.raises(BlobStoreError):
            stream.read()


def test_s3_delete_is_confirmed_by_a_head(s3: S3Server, tmp_path: Path) -> None:
    store = s3_store(s3, tmp_path)
    store.put("7/call.mp3", AUDIO)
    s3.clear_log()
    store.delete("7/call.mp3")
    assert [(r.method, r.status) for r in s3.log] == [("DELETE", 204), ("HEAD", 404)]


def test_s3_delete_that_did_not_happen_is_an_error(s3: S3Server, tmp_path: Path) -> None:
    """A store answering 204 to DELETE without deleting: the HEAD after it finds the object."""
    store = s3_store(s3, tmp_path)
    store.put("7/call.mp3", AUDIO)
    s3.fail("DELETE", 204)
    with pytest.raises(BlobStoreError, match="still there"):
        store.delete("7/call.mp3")
    assert store.read("7/call.mp3") == AUDIO


def test_s3_retries_a_failing_request(s3: S3Server, tmp_path: Path) -> None:
    store = s3_store(s3, tmp_path)
    store.put("7/call.mp3", AUDIO)
    s3.clear_log()
    s3.fail("GET", 503)
    assert store.read("7/call.mp3") == AUDIO
    assert [g.status for g in s3.requests("GET")] == [503, 200]


def test_s3_outage_is_a_store_error(s3: S3Server, tmp_path: Path) -> None:
    """Retries spent: ``BlobStoreError`` (never ``BlobNotFound``: the audio is not gone)."""
    settings = s3_settings(s3.url, tmp_path, s3.new_bucket())
    store = S3BlobStore.from_settings(settings, attempts=1)
    store.put("7/call.mp3", AUDIO)
    s3.fail("*", 500, times=5)
    for call in (
        lambda: store.size("7/call.mp3"),
        lambda: store.read("7/call.mp3"),
        lambda: store.read_range("7/call.mp3", 0, 10),
        lambda: store.put("7/other.mp3", b"x"),
        lambda: store.delete("7/call.mp3"),
    ):
        with pytest.raises(BlobStoreError):
            call()


def test_s3_refusing_one_object_is_a_refusal_of_that_blob(s3: S3Server, tmp_path: Path) -> None:
    """A 4xx about the object (a bucket policy's deny) is ``BlobRefused``: the store is up
    and takes other blobs; an outage's 5xx is a store error, never a refusal."""
    store = S3BlobStore.from_settings(s3_settings(s3.url, tmp_path, s3.new_bucket()), attempts=1)
    s3.deny_put(store.bucket, f"{store.prefix}7/denied.mp3")
    source = tmp_path / "denied.mp3"
    source.write_bytes(AUDIO)
    with pytest.raises(BlobRefused, match="403"):
        store.put_file("7/denied.mp3", source)  # s3transfer's upload: its error wraps S3's
    assert source.exists()  # kept for the caller's retry
    with pytest.raises(BlobRefused):
        store.put("7/denied.mp3", b"x")
    store.put("7/other.mp3", b"x")  # taken
    assert store.read("7/other.mp3") == b"x"
    s3.clear_log()
    s3.fail("PUT", 503)
    with pytest.raises(BlobStoreError) as outage:
        store.put_file("7/third.mp3", source)
    assert not isinstance(outage.value, BlobRefused)
    assert [(r.method, r.status) for r in s3.log] == [("PUT", 503)]


def test_s3_unreachable_is_a_store_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings = s3_settings(f"http://127.0.0.1:{port}", tmp_path, "unreachable", s3_timeout_s=2)
    store = S3BlobStore.from_settings(settings, attempts=1)
    with pytest.raises(BlobStoreError, match="failed") as unreachable:
        store.size("7/call.mp3")
    assert not isinstance(unreachable.value, BlobRefused)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "AuthorizationHeaderMalformed"),  # the wrong region
        (400, "KMS.DisabledException"),  # the bucket's key disabled
        (409, "InvalidBucketState"),
    ],
)
def test_a_4xx_about_the_whole_store_is_a_store_error(
    s3: S3Server, tmp_path: Path, status: int, code: str
) -> None:
    """Answers every object would get alike are the store's failure, not one blob's refusal:
    the outbox backs the store off instead of each blob on its own."""
    store = S3BlobStore.from_settings(s3_settings(s3.url, tmp_path, s3.new_bucket()), attempts=1)
    s3.fail("PUT", status, code=code)
    with pytest.raises(BlobStoreError, match=code) as failed:
        store.put("7/call.mp3", b"x")
    assert not isinstance(failed.value, BlobRefused)
    s3.fail("PUT", 403, code="AccessDenied")  # a policy's deny of one key as of all: refused
    with pytest.raises(BlobRefused, match="AccessDenied"):
        store.put("7/call.mp3", b"x")
