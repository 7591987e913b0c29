"""An S3 outage while calls finish (issue 13, "Storage outage"): nothing is lost.

A running recorder (``blob_store = "s3"``, the outbox on) records into moto's
standalone S3 server, a process of its own. The server is killed (SIGKILL)
while calls are placed and finished: finishing goes on, the recordings wait in
the outbox, ``/metrics`` shows the backlog, and the portal plays a waiting
recording from the local disk. A fresh server on the same port (its bucket
created again: moto keeps nothing) takes the backlog, and the audio route then
reads the recording from S3 by ranged GETs (moto's request log).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

from callvault.demo.client import CallPlan, Participant
from callvault.media.tones import sine
from callvault.storage.outbox import OutboxBlobStore
from tests.e2e.harness import Recorder, running_recorder
from tests.storage.s3_server import S3Process

METRICS_TOKEN = "outage-test-metrics-token-0123"
BUCKET = "outage-test"


def _plan(n: int) -> CallPlan:
    return CallPlan(
        caller=Participant("sip:alice@acme.example", "Alice", sine(440.0, 2.0)),
        callee=Participant(f"sip:+3161234567{n}@pstn.example", "Customer", sine(1000.0, 2.0)),
        duration_s=2.0,
    )


async def _drained(outbox: OutboxBlobStore, timeout: float = 60) -> None:
    """Until the drain thread has uploaded the backlog (it runs on its own)."""
    deadline = time.monotonic() + timeout
    while outbox.pending():
        assert time.monotonic() < deadline, f"still waiting: {outbox.pending()}"
        await asyncio.sleep(0.05)


async def _metrics(rec: Recorder) -> dict[str, float]:
    r = await rec.http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200, r.text
    return {
        name: float(value)
        for name, value in (line.split() for line in r.text.splitlines() if line[:1] != "#")
        if name.startswith("callvault_blob_")
    }


async def _record(rec: Recorder, count: int, first: int) -> list[str]:
    results = await asyncio.gather(*(rec.client.place(_plan(first + n)) for n in range(count)))
    assert [r.status for r in results] == [200] * count
    finished = await rec.wait_finished(count, timeout=60)  # finishing never waits for S3
    ids = [recording for _call, recording in finished]
    assert all(ids), finished
    return [r for r in ids if r is not None]


async def _sha256(rec: Recorder, recording_id: str) -> str:
    return str((await rec.recording(recording_id))["sha256"])


async def test_an_s3_outage_while_calls_finish_loses_nothing_and_the_backlog_drains(
    tmp_path: Path,
) -> None:
    moto = S3Process(tmp_path / "moto.log")
    moto.start()
    try:
        moto.create_bucket(BUCKET)
        (tmp_path / "data").mkdir()
        async with running_recorder(
            tmp_path / "data",
            blob_store="s3",
            s3_endpoint_url=moto.url,
            s3_bucket=BUCKET,
            s3_region="us-east-1",
            s3_access_key_id="testing",
            s3_secret_access_key="testing-secret",
            s3_prefix="rec/",
            s3_timeout_s=2,
            s3_outbox_retry_max_s=0.2,  # retries while S3 is away: at most 0.2 s apart
            metrics_token=METRICS_TOKEN,
        ) as rec:
            outbox = rec.app.blobs
            assert isinstance(outbox, OutboxBlobStore)

            # S3 answers: a recording is uploaded and leaves the disk
            [before] = await _record(rec, 1, first=0)
            await _drained(outbox)
            assert not list((tmp_path / "data/outbox").rglob("*.mp3"))

            moto.kill()  # the outage
            during = await _record(rec, 2, first=1)
            waiting = outbox.pending()
            assert sorted(k.rsplit("/", 1)[1] for k in waiting) == sorted(
                f"{r}.mp3" for r in during
            )
            metrics = await _metrics(rec)
            assert metrics["callvault_blob_outbox_files"] == 2
            assert metrics["callvault_blob_outbox_bytes"] > 0
            assert metrics["callvault_blob_uploads_total"] == 1
            # the portal plays a waiting recording, from the local disk
            for recording_id in during:
                _pcm, _rate, raw = await rec.audio(recording_id)
                assert hashlib.sha256(raw).hexdigest() == await _sha256(rec, recording_id)
            # the drain keeps trying (and failing) while S3 is away
            deadline = time.monotonic() + 30
            while (await _metrics(rec))["callvault_blob_upload_failures_total"] < 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert len(outbox.pending()) == 2

            moto.start()  # S3 is back (fresh: the bucket is made again)
            moto.create_bucket(BUCKET)
            await _drained(outbox)
            metrics = await _metrics(rec)
            assert metrics["callvault_blob_outbox_files"] == 0
            assert metrics["callvault_blob_outbox_bytes"] == 0
            assert metrics["callvault_blob_uploads_total"] == 3
            assert not list((tmp_path / "data/outbox").rglob("*.mp3"))

            # now from S3: ranged GETs of the stored objects, answered 206
            for recording_id in during:
                sha = await _sha256(rec, recording_id)
                r = await rec.http.get(
                    f"/api/v1/recordings/{recording_id}/audio", headers={"Range": "bytes=0-"}
                )
                assert r.status_code == 206 and hashlib.sha256(r.content).hexdigest() == sha
                r = await rec.http.get(
                    f"/api/v1/recordings/{recording_id}/audio", headers={"Range": "bytes=100-199"}
                )
                assert r.status_code == 206 and len(r.content) == 100
                gets = [
                    line
                    for line in moto.requests()
                    if f"GET /{BUCKET}/rec/" in line and f"{recording_id}.mp3" in line
                ]
                assert len(gets) == 2 and all('" 206' in line for line in gets), gets
            assert before not in during
    finally:
        moto.kill()
