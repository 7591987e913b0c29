"""Spools made ahead of their calls (recording/ready_spools.py)."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

from callvault.recording.journal import End
from callvault.recording.ready_spools import ReadySpools
from callvault.recording.spool import JOURNAL, is_unused


def wait_ready(spools: ReadySpools, count: int) -> None:
    """Until the thread has made ``count`` spools (its own pace, not a timer)."""
    done = threading.Event()
    for _ in range(2000):
        if len(spools._ready) >= count:
            done.set()
            break
        done.wait(0.005)
    assert done.is_set(), f"only {len(spools._ready)} of {count} spools made"


def test_without_depth_each_spool_is_made_when_taken(tmp_path: Path) -> None:
    spools = ReadySpools(tmp_path / "spool")
    name, writer = spools.take()
    assert writer.directory == tmp_path / "spool" / name
    assert (writer.directory / JOURNAL).exists()
    assert spools._thread is None  # nothing made ahead
    other, _ = spools.take()
    assert other != name and len(name) == 32
    writer.discard()


def test_a_thread_keeps_spools_made_and_close_removes_the_unused(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    spools = ReadySpools(root, depth=8)
    first, writer = spools.take()  # made here: none was ready; the thread starts
    wait_ready(spools, 8)
    ahead = {w.directory.name for _, w in spools._ready}
    assert first not in ahead and len(ahead) == 8
    taken = [spools.take() for _ in range(5)]
    assert {n for n, _ in taken} <= ahead  # handed out from the made ones
    for name, w in taken:
        w.record(End(t=10, reason="bye"))
        assert w.directory.name == name
    wait_ready(spools, 8)  # refilled
    spools.close()
    left = sorted(p.name for p in root.iterdir())
    assert left == sorted([first, *(n for n, _ in taken)])  # the taken ones stay, the rest gone
    writer.discard()


def test_recovery_removes_unused_spools_quietly_and_keeps_real_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from callvault.recording.pipeline import Finisher

    root = tmp_path / "spool"
    spools = ReadySpools(root)
    unused, w1 = spools.take()
    w1.discard()
    used, w2 = spools.take()
    w2.record(End(t=10, reason="bye"))
    w2.discard()
    assert is_unused(root / unused) and not is_unused(root / used)
    (root / "odd").mkdir()  # no journal at all: not ours to judge as unused
    assert not is_unused(root / "odd")

    finisher = Finisher.__new__(Finisher)  # recover() needs only spool_root and submit
    finisher.spool_root = root
    submitted: list[str] = []
    finisher.submit = lambda name: submitted.append(name)  # type: ignore[assignment,method-assign,return-value]
    with caplog.at_level(logging.INFO):
        finisher.recover(active=set())
    assert not (root / unused).exists()
    assert sorted(submitted) == sorted([used, "odd"])
    assert unused not in caplog.text
    assert os.path.isdir(root / used)
