"""The S3 outbox (issue 13): local disk first, uploaded with retry, served locally until
confirmed; retries on a fake clock, restarts, deletes while waiting or uploading.

The remote is the S3 store talking HTTP to the tests' S3 server (moto's); an
outage is that server answering 503 (``S3Server.fail``), what was uploaded is
read from its request log.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callvault.metrics import Metrics, OutboxMetrics
from callvault.storage.blobs import BlobNotFound
from callvault.storage.outbox import BLOB_WARNINGS, REFUSALS_TRIP, OutboxBlobStore
from callvault.storage.s3 import S3BlobStore
from tests.storage.conftest import s3_settings
from tests.storage.s3_server import S3Server

AUDIO = bytes(range(256)) * 400  # 100 KiB


class Clock:
    def __init__(self) -> None:
        # wall-clock seconds, as the outbox's default; ``/metrics`` reads the oldest blob's
        # age against the real wall clock, to which this one is 100 s behind
        self.now = time.time() - 100

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Box:
    store: OutboxBlobStore
    remote: S3BlobStore
    server: S3Server
    clock: Clock
    metrics: OutboxMetrics

    def path(self, key: str) -> str:
        """The object's path on the S3 server, as its request log shows it."""
        return f"/{self.remote.bucket}/{self.remote.prefix}{key}"

    def in_s3(self, key: str) -> bytes | None:
        try:
            return self.remote.read(key)
        except BlobNotFound:
            return None

    def reopened(self) -> OutboxBlobStore:
        """The outbox as the next start of the process finds it."""
        self.metrics = OutboxMetrics()
        self.store = OutboxBlobStore(
            self.store.root, self.remote, self.metrics, clock=self.clock, retry_max_s=8
        )
        return self.store


@pytest.fixture
def box(s3: S3Server, tmp_path: Path) -> Iterator[Box]:
    settings = s3_settings(s3.url, tmp_path, s3.new_bucket())
    remote = S3BlobStore.from_settings(settings, attempts=1)  # one request per try: countable
    clock, metrics = Clock(), OutboxMetrics()
    store = OutboxBlobStore(tmp_path / "outbox", remote, metrics, clock=clock, retry_max_s=8)
    s3.clear_log()
    yield Box(store, remote, s3, clock, metrics)
    store.close()


def test_a_put_returns_before_any_upload_and_reads_come_from_disk(box: Box) -> None:
    box.store.put("7/2026/01/02/a.mp3", AUDIO)
    box.clock.advance(3)
    box.store.put("7/2026/01/02/b.mp3", b"bee")
    assert box.server.log == []  # S3 was not asked: finishing never waits for it
    assert (box.store.root / "7/2026/01/02/a.mp3").read_bytes() == AUDIO
    assert box.store.pending() == ["7/2026/01/02/a.mp3", "7/2026/01/02/b.mp3"]
    assert box.store.size("7/2026/01/02/a.mp3") == len(AUDIO)
    assert box.store.read("7/2026/01/02/a.mp3", 10, 20) == AUDIO[10:20]
    assert b"".join(box.store.read_range("7/2026/01/02/a.mp3", 5, 5000)) == AUDIO[5:5000]
    with box.store.open("7/2026/01/02/a.mp3") as stream:
        assert stream.read() == AUDIO
    assert box.server.log == []
    m = box.metrics
    assert (m.files, m.bytes, m.uploads, m.failures) == (2, len(AUDIO) + 3, 0, 0)
    assert m.oldest_since == box.clock.now - 3
    text = Metrics(outbox=m).render()
    assert "callvault_blob_outbox_files 2\n" in text
    assert f"callvault_blob_outbox_bytes {len(AUDIO) + 3}\n" in text
    [age] = [line for line in text.splitlines() if line.startswith("callvault_blob_outbox_old")]
    assert 96 < float(age.split()[1]) < 200  # the first blob has waited since clock.now - 3


def test_the_drain_uploads_oldest_first_confirms_then_serves_from_s3(box: Box) -> None:
    for name in ("c", "a", "b"):
        box.store.put(f"7/{name}.mp3", name.encode() * 1000)
        box.clock.advance(1)
    assert box.store.drain_once() == 3
    puts = [r.path for r in box.server.requests("PUT")]
    assert puts == [box.path("7/c.mp3"), box.path("7/a.mp3"), box.path("7/b.mp3")]
    # each upload is confirmed by a HEAD before its local copy goes
    assert [r.method for r in box.server.log] == ["PUT", "HEAD"] * 3
    assert box.store.pending() == [] and not (box.store.root / "7/c.mp3").exists()
    assert box.in_s3("7/a.mp3") == b"a" * 1000
    m = box.metrics
    assert (m.files, m.bytes, m.oldest_since, m.uploads) == (0, 0, None, 3)
    box.server.clear_log()
    assert b"".join(box.store.read_range("7/a.mp3", 10, 20)) == b"a" * 10
    assert [(r.method, r.range) for r in box.server.log] == [("GET", "bytes=10-19")]


def backed_off(delays: list[float], expected: list[float]) -> bool:
    """Each delay is its expected backoff, shortened by at most the jitter (20 %)."""
    return len(delays) == len(expected) and all(
        0.8 * e - 1e-9 <= d <= e + 1e-9 for d, e in zip(delays, expected, strict=True)
    )


def test_an_outage_backs_off_exponentially_to_the_cap_and_drains_when_s3_is_back(
    box: Box,
) -> None:
    box.store.put("7/a.mp3", AUDIO)
    box.store.put("7/b.mp3", AUDIO)
    box.server.fail("*", 503, times=1000)
    delays = []
    for _ in range(6):
        box.server.clear_log()
        assert box.store.drain_once() == 0
        assert [r.method for r in box.server.log] == ["PUT"]  # the store failed: pass over
        delays.append(box.store.retry_at - box.clock.now)
        assert box.store.next_attempt() == box.store.retry_at
        box.clock.advance(delays[-1] - 0.01)
        box.server.clear_log()
        assert box.store.drain_once() == 0  # not due: S3 is not asked again
        assert box.server.log == []
        box.clock.advance(0.01)
    assert backed_off(delays, [1, 2, 4, 8, 8, 8])  # doubling from 1 s, capped at retry_max_s
    assert box.metrics.failures == 6 and box.metrics.uploads == 0
    assert box.metrics.refused == 0  # the store's failures, not the blobs'
    assert box.store.pending() == ["7/a.mp3", "7/b.mp3"]  # nothing lost
    assert box.store.read("7/a.mp3") == AUDIO  # and still served, from the disk
    box.server.calm()
    assert box.store.drain_once() == 2  # at once: no blob was charged with the outage
    assert box.store.retry_at == 0 and box.store.pending() == []
    assert box.in_s3("7/a.mp3") == AUDIO and box.in_s3("7/b.mp3") == AUDIO


def test_a_blob_the_store_refuses_backs_off_alone_while_the_others_upload(
    box: Box, caplog: pytest.LogCaptureFixture
) -> None:
    """S3 refuses one object (a bucket policy's deny of its key, enforced by the server):
    that blob waits on its own backoff, never lost; the others go, the store is not
    backed off, and the refusal shows in the metrics and the log."""
    box.server.deny_put(box.remote.bucket, f"{box.remote.prefix}7/stuck.mp3")
    box.store.put("7/stuck.mp3", b"stuck")  # the oldest: first in line
    box.clock.advance(1)
    box.store.put("7/a.mp3", AUDIO)
    box.store.put("7/b.mp3", b"bee")
    box.server.clear_log()
    with caplog.at_level("WARNING", logger="callvault.storage.outbox"):
        assert box.store.drain_once() == 2
        puts = [(r.path, r.status) for r in box.server.requests("PUT")]
        assert puts == [
            (box.path("7/stuck.mp3"), 403),
            (box.path("7/a.mp3"), 200),
            (box.path("7/b.mp3"), 200),
        ]
        assert box.in_s3("7/a.mp3") == AUDIO and box.in_s3("7/b.mp3") == b"bee"
        assert box.store.retry_at == 0  # the store is up: not backed off
        assert box.store.pending() == ["7/stuck.mp3"]  # nothing lost
        assert box.store.read("7/stuck.mp3") == b"stuck"  # and served from the disk
        m = box.metrics
        assert (m.files, m.refused, m.uploads, m.failures) == (1, 1, 2, 1)
        assert "callvault_blob_outbox_refused_files 1\n" in Metrics(outbox=m).render()

        # its own backoff: doubling from 1 s, capped at retry_max_s (8)
        delays = []
        for n in range(6):
            due = box.store.next_attempt()
            assert due is not None
            delays.append(due - box.clock.now)
            box.clock.advance(delays[-1] - 0.01)
            box.store.put(f"7/new-{n}.mp3", b"new")  # a blob put meanwhile is not held back
            box.server.clear_log()
            assert box.store.drain_once() == 1
            assert [r.path for r in box.server.requests("PUT")] == [box.path(f"7/new-{n}.mp3")]
            box.clock.advance(0.01)
            box.server.clear_log()
            assert box.store.drain_once() == 0  # due: tried again, refused again
            assert [(r.path, r.status) for r in box.server.requests("PUT")] == [
                (box.path("7/stuck.mp3"), 403)
            ]
        assert backed_off(delays, [1, 2, 4, 8, 8, 8])
        assert box.store.pending() == ["7/stuck.mp3"] and box.metrics.failures == 7
    # warned at the first refusal and when its backoff reached the cap (the 4th), not more
    warnings = [r.getMessage() for r in caplog.records if "refused 7/stuck.mp3" in r.getMessage()]
    assert len(warnings) == 2
    assert "refusal 1 in a row" in warnings[0] and "refusal 4 in a row" in warnings[1]

    box.server.allow_all(box.remote.bucket)  # the policy fixed: it goes at its next try
    due = box.store.next_attempt()
    assert due is not None
    box.clock.advance(due - box.clock.now)
    assert box.store.drain_once() == 1
    assert box.in_s3("7/stuck.mp3") == b"stuck" and box.store.pending() == []
    assert (box.metrics.files, box.metrics.refused) == (0, 0)


def test_a_refused_blob_put_again_is_tried_at_once(box: Box) -> None:
    box.server.deny_put(box.remote.bucket, f"{box.remote.prefix}7/a.mp3")
    box.store.put("7/a.mp3", b"first take")
    assert box.store.drain_once() == 0 and box.metrics.refused == 1
    box.server.allow_all(box.remote.bucket)
    box.store.put("7/a.mp3", b"second take")  # a new blob: none of the old one's backoff
    assert box.metrics.refused == 0
    assert box.store.drain_once() == 1
    assert box.in_s3("7/a.mp3") == b"second take"


def test_a_failed_upload_keeps_the_local_copy_and_order(box: Box) -> None:
    box.store.put("7/a.mp3", b"first")
    box.clock.advance(1)
    box.store.put("7/b.mp3", b"second")
    box.server.fail("HEAD", 503)  # uploaded, but not confirmed: not yet done
    assert box.store.drain_once() == 0
    assert box.store.pending() == ["7/a.mp3", "7/b.mp3"]
    assert (box.store.root / "7/a.mp3").read_bytes() == b"first"
    box.clock.advance(1)
    assert box.store.drain_once() == 2
    assert [r.path for r in box.server.requests("PUT")] == [
        box.path("7/a.mp3"),
        box.path("7/a.mp3"),
        box.path("7/b.mp3"),
    ]


def test_a_restart_finds_the_backlog_oldest_first_and_drops_interrupted_writes(
    box: Box,
) -> None:
    box.store.put("7/new.mp3", b"new")
    box.store.put("7/old.mp3", b"old")
    old = box.store.root / "7/old.mp3"
    stamp = time.time() - 3600
    os.utime(old, (stamp, stamp))  # written an hour before the other
    half = box.store.root / "7/half.mp3~1a2b3c"  # a write the crash interrupted
    half.write_bytes(b"half")
    link = box.store.root / "7/new.mp3~upload"  # an upload the crash interrupted
    link.write_bytes(b"new")
    store = box.reopened()
    assert store.pending() == ["7/old.mp3", "7/new.mp3"]
    assert not half.exists() and not link.exists()
    assert (box.metrics.files, box.metrics.bytes) == (2, 6)
    assert box.metrics.oldest_since == pytest.approx(stamp)
    assert store.drain_once() == 2
    assert [r.path for r in box.server.requests("PUT")] == [
        box.path("7/old.mp3"),
        box.path("7/new.mp3"),
    ]
    assert box.in_s3("7/half.mp3") is None


def test_deleting_a_waiting_blob_is_never_uploaded_later(box: Box) -> None:
    box.store.put("7/a.mp3", AUDIO)
    box.server.fail("*", 503)
    assert box.store.drain_once() == 0  # S3 down: it waits
    box.store.delete("7/a.mp3")  # purge meanwhile: gone locally, confirmed gone in S3
    assert box.store.pending() == [] and box.metrics.files == 0
    box.reopened()  # nor after a restart
    box.clock.advance(60)
    box.server.clear_log()
    assert box.store.drain_once() == 0
    assert box.server.requests("PUT") == []
    with pytest.raises(BlobNotFound):
        box.store.size("7/a.mp3")


class Gate:
    """Holds the remote's upload until released: an upload in flight, for as long as needed."""

    def __init__(self, box: Box) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.calls: list[str] = []
        remote, gate = box.remote, self

        class Held(S3BlobStore):
            def put_file(self, key: str, path: Path) -> None:
                gate.calls.append("put_file")
                gate.entered.set()
                assert gate.release.wait(30)
                super().put_file(key, path)

            def delete(self, key: str) -> None:
                gate.calls.append("delete")
                super().delete(key)

        box.store.remote = Held(remote.client, remote.bucket, remote.prefix)


def test_a_delete_during_the_upload_waits_for_it_then_deletes_in_s3(box: Box) -> None:
    box.store.put("7/a.mp3", AUDIO)
    gate = Gate(box)
    drain = threading.Thread(target=box.store.drain_once)
    drain.start()
    assert gate.entered.wait(30)
    delete = threading.Thread(target=box.store.delete, args=("7/a.mp3",))
    delete.start()
    delete.join(0.3)
    assert delete.is_alive()  # it waits for the upload in flight
    assert not (box.store.root / "7/a.mp3").exists()  # but the local copy is gone already
    gate.release.set()
    drain.join(30)
    delete.join(30)
    assert gate.calls == ["put_file", "delete"]  # S3's delete comes after the upload
    assert box.in_s3("7/a.mp3") is None
    assert box.store.pending() == []


def test_a_blob_put_again_while_uploading_stays_and_is_uploaded_again(box: Box) -> None:
    box.store.put("7/a.mp3", b"old take")
    gate = Gate(box)
    drain = threading.Thread(target=box.store.drain_once)
    drain.start()
    assert gate.entered.wait(30)
    box.store.put("7/a.mp3", b"new take")
    gate.release.set()
    drain.join(30)
    # the first upload's confirmation did not remove the new take: it went up after it
    assert gate.calls == ["put_file", "put_file"]
    assert box.store.pending() == [] and box.in_s3("7/a.mp3") == b"new take"


def test_put_file_moves_the_file_in(box: Box, tmp_path: Path) -> None:
    source = tmp_path / "part-001.zip"
    source.write_bytes(AUDIO)
    box.store.put_file("exports/7/x/part-001.zip", source)
    assert not source.exists() and box.server.log == []
    assert box.store.pending() == ["exports/7/x/part-001.zip"]
    assert box.store.drain_once() == 1
    assert box.in_s3("exports/7/x/part-001.zip") == AUDIO


def test_the_drain_thread_uploads_what_is_put(box: Box) -> None:
    """``start``: the thread ``callvault serve`` runs; a put wakes it (no timer involved)."""
    box.store.start()
    box.store.put("7/a.mp3", AUDIO)
    deadline = time.monotonic() + 30
    while box.store.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    box.store.close()
    assert box.store.pending() == [] and box.in_s3("7/a.mp3") == AUDIO


def outbox_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "callvault.storage.outbox" and r.levelname == "WARNING"
    ]


def test_a_bucket_wide_deny_stops_the_pass_like_an_outage_and_drains_when_lifted(
    box: Box, caplog: pytest.LogCaptureFixture
) -> None:
    """Credentials without s3:PutObject on the bucket (a policy denying every key, enforced by
    the server): S3 refuses every blob alike. After a few refusals in a row the pass stops
    and the store backs off, as in an outage: a bounded number of PUTs per pass, no blob
    charged, one warning; when the policy is lifted, everything drains at once."""
    box.server.deny_put(box.remote.bucket, "*")
    keys = [f"7/{n:02}.mp3" for n in range(50)]
    for key in keys:
        box.store.put(key, key.encode())
    box.server.clear_log()
    delays = []
    with caplog.at_level("WARNING", logger="callvault.storage.outbox"):
        for _ in range(5):
            assert box.store.drain_once() == 0
            delays.append(box.store.retry_at - box.clock.now)
            box.clock.advance(delays[-1])
    puts = box.server.requests("PUT")
    assert len(puts) == 5 * REFUSALS_TRIP and {r.status for r in puts} == {403}
    assert backed_off(delays, [1, 2, 4, 8, 8])  # the store's backoff, as in an outage
    assert box.metrics.refused == 0  # no blob charged with the store's refusal
    assert box.store.next_attempt() == box.store.retry_at  # no blob waits on its own
    assert box.store.pending() == keys  # nothing lost, oldest first
    warnings = outbox_warnings(caplog)
    assert len(warnings) == 1 and "refused in a row" in warnings[0]

    box.server.allow_all(box.remote.bucket)
    assert box.store.drain_once() == 50
    assert box.store.pending() == [] and box.store.retry_at == 0
    assert all(box.in_s3(key) == key.encode() for key in keys)
    assert (box.metrics.files, box.metrics.refused, box.metrics.uploads) == (0, 0, 50)


def test_blobs_refused_one_by_one_at_the_head_wait_alone_after_the_breaker(box: Box) -> None:
    """Three blobs each refused on their own (a policy denying their keys) first in line trip
    the breaker once; the next pass tries the others first, they go, and the three are then
    tried again and wait each on its own backoff, the store not backed off."""
    stuck = ["7/s0.mp3", "7/s1.mp3", "7/s2.mp3"]
    box.server.deny_put(box.remote.bucket, *(f"{box.remote.prefix}{k}" for k in stuck))
    for key in stuck:
        box.store.put(key, b"stuck")
    box.clock.advance(1)
    box.store.put("7/a.mp3", AUDIO)
    box.store.put("7/b.mp3", b"bee")
    assert box.store.drain_once() == 0  # three refusals in a row: the store's, it seems
    assert box.metrics.refused == 0
    box.clock.advance(box.store.retry_at - box.clock.now)
    box.server.clear_log()
    assert box.store.drain_once() == 2
    assert [(r.path, r.status) for r in box.server.requests("PUT")] == [
        (box.path("7/a.mp3"), 200),  # the others first: the store takes one
        *[(box.path(key), 403) for key in stuck],  # then oldest first again: each alone
        (box.path("7/b.mp3"), 200),
    ]
    assert box.store.retry_at == 0  # the store takes blobs: not backed off
    assert box.metrics.refused == 3 and box.store.pending() == stuck
    box.store.put("7/c.mp3", b"sea")  # a blob put now goes at once
    assert box.store.drain_once() == 1 and box.in_s3("7/c.mp3") == b"sea"
    box.server.allow_all(box.remote.bucket)
    box.clock.advance(box.store.retry_min_s)  # each one's first backoff, jittered down
    assert box.store.drain_once() == 3 and box.store.pending() == []


def test_a_head_refused_after_the_put_is_the_stores_failure(box: Box) -> None:
    """Write-only credentials: every PUT is taken and every HEAD refused (a bare 403, a HEAD's
    answer has no body). Not the blob's fault: the pass stops after one PUT and the store
    backs off, no blob charged; when HEADs are answered again everything drains."""
    for n in range(10):
        box.store.put(f"7/{n}.mp3", b"x" * n)
    box.server.fail("HEAD", 403, times=1000)
    box.server.clear_log()
    for _ in range(3):
        assert box.store.drain_once() == 0
        assert box.store.retry_at > box.clock.now and box.metrics.refused == 0
        box.clock.advance(box.store.retry_at - box.clock.now)
    assert [(r.method, r.status) for r in box.server.log] == [("PUT", 200), ("HEAD", 403)] * 3
    box.server.calm()
    assert box.store.drain_once() == 10 and box.store.pending() == []


def test_refusal_warnings_are_rate_limited_across_blobs(
    box: Box, caplog: pytest.LogCaptureFixture
) -> None:
    """Many blobs each refused on its own (never three in a row: the store takes the others):
    at most BLOB_WARNINGS warnings per retry_max_s; the next one counts those not logged."""
    denied = [f"7/d{n}.mp3" for n in range(10)]
    box.server.deny_put(box.remote.bucket, *(f"{box.remote.prefix}{k}" for k in denied))
    for n, key in enumerate(denied):
        box.store.put(key, b"no")
        box.store.put(f"7/ok{n}.mp3", b"yes")
    with caplog.at_level("WARNING", logger="callvault.storage.outbox"):
        assert box.store.drain_once() == 10
        assert box.metrics.refused == 10 and box.store.retry_at == 0
        assert len(outbox_warnings(caplog)) == BLOB_WARNINGS
        box.clock.advance(box.store.retry_max_s)
        box.store.put("7/d-late.mp3", b"no")
        box.server.deny_put(
            box.remote.bucket, *(f"{box.remote.prefix}{k}" for k in [*denied, "7/d-late.mp3"])
        )
        box.server.clear_log()
        box.store.drain_once()
    late = [m for m in outbox_warnings(caplog) if "d-late" in m]
    assert len(late) == 1 and f"({10 - BLOB_WARNINGS} more refusals since" in late[0]
