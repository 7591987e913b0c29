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


def test_a_stored_calls_spool_is_recycled_as_the_next_calls(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    spools = ReadySpools(root, depth=2)
    name, writer = spools.take()
    writer.record(End(t=10, reason="bye"))
    writer.stream(0).append(5, b"\x80" + b"\x00" * 11)
    writer.close()
    assert (root / name / "stream-0.rtp").exists()
    wait_ready(spools, 2)  # the thread makes no more than 2: the third is the recycled one
    spools.recycle(root / name)
    assert not (root / name).exists()
    assert len(spools._ready) == 3
    recycled_name, recycled = spools._ready[-1]
    assert recycled_name != name and recycled.directory == root / recycled_name
    assert is_unused(recycled.directory)  # journal emptied, the stream file gone
    recycled.record(End(t=20, reason="bye"))  # its journal is open and written afresh
    recycled.discard()
    assert (recycled.directory / JOURNAL).read_text().count("\n") == 1
    spools.close()
    assert sorted(p.name for p in root.iterdir()) == []  # the unused ones, recycled too, gone


def test_recycling_removes_when_none_are_kept_or_it_cannot(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    plain = ReadySpools(root)  # nothing made ahead: nothing recycled
    name, writer = plain.take()
    writer.discard()
    plain.recycle(root / name)
    assert not (root / name).exists()

    spools = ReadySpools(root, depth=2)  # nothing taken yet: no thread, none ready
    odd = make_spool_here(root)
    (root / odd / "not-ours").mkdir()  # unlink fails on it: the spool is removed instead
    spools.recycle(root / odd)
    assert not (root / odd).exists() and not spools._ready


def make_spool_here(root: Path) -> str:
    from callvault.recording.ready_spools import make_spool

    name, writer = make_spool(root)
    writer.discard()
    return name
