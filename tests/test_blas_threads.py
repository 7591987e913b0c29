"""numpy's BLAS runs on one thread in callvault processes (callvault/__init__.py):
its per-core threads would take the capture core's time for small products."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import os
import {first}
import numpy
a = numpy.ones((600, 600))
for _ in range(5):
    a @ a  # big enough that a multi-threaded BLAS starts its threads
print(len(os.listdir("/proc/self/task")))
"""


def threads_after_a_product(first: str) -> int:
    unset = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(first=first)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(out.stdout.strip())


def test_blas_stays_on_one_thread_once_callvault_is_imported() -> None:
    assert threads_after_a_product("callvault") == 1


def test_the_probe_sees_blas_threads_without_it() -> None:
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: OpenBLAS starts no threads")
    assert threads_after_a_product("json") > 1
