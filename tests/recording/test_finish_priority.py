"""Finishing never delays capture (issue 12): the finisher's pool workers run at a
lower priority than the server that captures, so a shared core serves capture first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from callvault.recording.pipeline import FINISH_NICENESS, Finisher
from callvault.storage.blobs import LocalBlobStore


@pytest.fixture
def finisher(tmp_path: Path) -> Finisher:
    return Finisher(tmp_path / "spool", sessionmaker(), LocalBlobStore(tmp_path / "blobs"))


def test_a_pool_worker_is_nicer_than_the_server(finisher: Finisher) -> None:
    try:
        server = os.nice(0)
        # os.nice(0) is picklable by reference: it runs in the worker and returns its niceness
        worker = finisher.pool.submit(os.nice, 0).result(timeout=60)
    finally:
        finisher.close()
    assert worker > server or server == 19  # 19 is the floor: nothing is nicer
    assert worker == min(19, server + FINISH_NICENESS)


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="no SCHED_BATCH on this platform")
def test_a_pool_worker_is_scheduled_as_batch_work(finisher: Finisher) -> None:
    try:
        policy = finisher.pool.submit(os.sched_getscheduler, 0).result(timeout=60)
    finally:
        finisher.close()
    assert policy == os.SCHED_BATCH
