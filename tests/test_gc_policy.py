"""The serving process's collector settings (``callvault.gc_policy``), in a child
process: freezing the test process's heap would keep every test's garbage."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
from callvault.gc_policy import YOUNG_THRESHOLD, tune_after_startup
before = gc.get_freeze_count()
assert tune_after_startup() == gc.get_threshold()
assert gc.get_threshold()[0] == YOUNG_THRESHOLD > 700
assert gc.get_freeze_count() > before + 1000, gc.get_freeze_count()
garbage = []
garbage.append(garbage)  # a cycle made after start-up is still collected
del garbage
assert gc.collect() >= 1
print("ok")
"""


def test_tune_after_startup_freezes_startup_objects_and_keeps_collecting() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
