"""S3 upload throughput against the local disk (issue 13, Figures: "S3 upload throughput").

One run: N MiB (``--mib``) written through the blob stores, each timed from the
first byte to the blob being stored whole:

* ``local writer``: ``LocalBlobStore.writer`` (a file next to the blob, fsync at
  commit, rename): the local disk, as an export writes it there;
* ``S3 writer``: ``S3BlobStore.writer``, the multipart upload an export streams into
  (parts of ``--part-mib``, at most ``PARTS_IN_FLIGHT`` in flight);
* ``S3 put_file``: ``S3BlobStore.put_file`` of the same bytes from a file (s3transfer,
  multipart above 64 MiB, 4 threads): how the outbox's drain uploads a recording.

The S3 server is moto's standalone server (``python -m moto.server``, a process of its
own on a loopback port, the one the tests use). It is NOT real S3: it keeps every
object in its memory, computes the ETags in Python and shares the machine's cores with
the client, so the MB/s say what the client side costs and that the stream works at
size, not what a real bucket over a real network gives. The bytes are made from one
random 4 MiB block (S3 and the disk see incompressible data; nothing is held whole).

The peak RSS of this process (moto's is its own) is printed after a quarter of the
size and after all of it: the writer's memory does not grow with the blob.

    python bench/s3_upload.py                      # 256 MiB, parts of 16 MiB
    python bench/s3_upload.py --mib 1024 --dir /var/tmp
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from callvault.settings import load_settings
from callvault.storage.blobs import BlobStore, LocalBlobStore
from callvault.storage.s3 import MULTIPART_CHUNK, PARTS_IN_FLIGHT, S3BlobStore

MIB = 1 << 20
MB = 1_000_000
BLOCK = 4 * MIB  # what one write hands the writer, as the export's ZIP pipeline does


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"moto server exited: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    process.kill()
    raise SystemExit("moto server did not start")


def s3_store(url: str, data_dir: Path, part: int) -> S3BlobStore:
    settings = load_settings(
        data_dir=data_dir,
        blob_store="s3",
        s3_endpoint_url=url,
        s3_bucket="bench-upload",
        s3_region="us-east-1",
        s3_access_key_id="bench",
        s3_secret_access_key="bench-secret",
        s3_timeout_s=120,
    )
    made = S3BlobStore.from_settings(settings)
    made.client.create_bucket(Bucket=made.bucket)
    return S3BlobStore(made.client, made.bucket, made.prefix, multipart_chunk=part)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def written(store: BlobStore, key: str, size: int, block: bytes) -> float:
    """Seconds to write ``size`` bytes into ``store.writer(key)`` and commit."""
    began = time.perf_counter()
    with store.writer(key) as blob:
        left = size
        while left > 0:
            left -= blob.write(memoryview(block)[: min(left, len(block))])
    seconds = time.perf_counter() - began
    if store.size(key) != size:
        raise SystemExit(f"{key}: {store.size(key)} bytes stored, {size} written")
    return seconds


def put_file(store: S3BlobStore, key: str, size: int, block: bytes, path: Path) -> float:
    with open(path, "wb") as fh:  # not timed: the recording is on the disk already
        left = size
        while left > 0:
            left -= fh.write(block[: min(left, len(block))])
    began = time.perf_counter()
    store.put_file(key, path)
    seconds = time.perf_counter() - began
    if store.size(key) != size:
        raise SystemExit(f"{key}: {store.size(key)} bytes stored, {size} sent")
    return seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="MiB per upload")
    parser.add_argument("--part-mib", type=int, default=MULTIPART_CHUNK // MIB)
    parser.add_argument("--dir", type=Path, default=None, help="where the local disk is")
    args = parser.parse_args(argv)
    size = args.mib * MIB
    block = os.urandom(BLOCK)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="cv-s3-upload-") as tmp:
        root = Path(tmp)
        moto, url = start_moto(root / "moto.log")
        try:
            s3 = s3_store(url, root / "data", args.part_mib * MIB)
            local = LocalBlobStore(root / "blobs")
            rows: list[tuple[str, float]] = []
            rss: list[tuple[int, float]] = []
            quarter = max(1, size // 4)
            # warm-up and the first RSS point: a quarter of the size through the S3 writer
            written(s3, "warmup/quarter.zip", quarter, block)
            rss.append((quarter, peak_rss_mib()))
            runs: list[tuple[str, Callable[[], float]]] = [
                ("local writer (fsync, rename)", lambda: written(local, "b/l.zip", size, block)),
                ("S3 writer (multipart stream)", lambda: written(s3, "b/s.zip", size, block)),
                (
                    "S3 put_file (s3transfer, outbox)",
                    lambda: put_file(s3, "b/p.zip", size, block, root / "file.bin"),
                ),
            ]
            for name, run in runs:
                rows.append((name, size / MB / run()))
                if name.startswith("S3 writer"):
                    rss.append((size, peak_rss_mib()))
        finally:
            moto.kill()
            moto.wait()
    disk = rows[0][1]
    print(
        f"S3 upload throughput, {args.mib} MiB, parts of {args.part_mib} MiB "
        f"({PARTS_IN_FLIGHT} in flight), moto on loopback (not real S3)"
    )
    print(f"{'path':<36} {'MB/s':>9} {'÷ local disk':>13}")
    for name, speed in rows:
        print(f"{name:<36} {speed:>9.1f} {speed / disk:>12.2f}×")
    points = ", ".join(f"{n / MIB:.0f} MiB written: {mib:.0f} MiB" for n, mib in rss)
    print(f"peak RSS of this process after the S3 writer ({points})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
