"""``python -m bench``: every benchmark with small defaults, tables on stdout.

Runs the recorder capacity bench (``bench/run_recorder.py``: concurrent calls on
one core, set-up rate, memory per call) with short steps, then, each as its own
process with a smoke-sized run (``FOLLOWERS``):

- the MP3 finishing speed (``bench/finish_speed.py``);
- steady-state capacity, capture and finishing on one core (``bench/steady.py``,
  one load step of one minute: a smoke figure, not a capacity one);
- S3 upload throughput against the local disk (``bench/s3_upload.py``, 64 MiB to
  moto's server on loopback);
- calls per second and calls at once through Kamailio to one node and to two
  (``bench/cluster.py``, two small steps).

A bench whose program or Python package is missing here is skipped with a line
saying what to install. Extra arguments go to ``run_recorder`` (e.g. ``python -m
bench --steps 500,1000``); run a bench's own file for its full run.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import run_recorder

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--steps", "250,500,1000,1500,2000,3000,4000", "--duration", "5", "--setup-duration", "5"]


@dataclass(frozen=True)
class Follower:
    """A bench run after ``run_recorder``: ``python -m bench.<module> <args>``."""

    title: str
    module: str
    args: tuple[str, ...] = ()
    programs: tuple[str, ...] = ()  # on PATH
    packages: tuple[str, ...] = ()  # importable
    timeout_s: float = 900.0

    def missing(self) -> list[str]:
        return [p for p in self.programs if shutil.which(p) is None] + [
            p for p in self.packages if importlib.util.find_spec(p) is None
        ]


FOLLOWERS = (
    Follower("MP3 finishing speed", "finish_speed"),
    Follower(
        "Steady-state capacity, smoke run",
        "steady",
        ("--loads", "20", "--minutes", "1", "--hold-mean", "20", "--crecv-minutes", "0.5"),
        programs=("gcc", "taskset"),
    ),
    Follower("S3 upload throughput", "s3_upload", ("--mib", "64"), packages=("moto",)),
    Follower(
        "Two media nodes behind Kamailio",
        "cluster",
        ("--steps", "100,200", "--setup-seconds", "5", "--media-seconds", "3"),
        programs=("kamailio", "gcc", "taskset"),
    ),
)


def run_follower(follower: Follower) -> int:
    print(f"\n{follower.title} (bench/{follower.module}.py)", flush=True)
    if not (ROOT / "bench" / f"{follower.module}.py").exists():
        print("  not here: skipped", flush=True)
        return 0
    missing = follower.missing()
    if missing:
        print(f"  skipped: {', '.join(missing)} missing", flush=True)
        return 0
    command = [sys.executable, "-m", f"bench.{follower.module}", *follower.args]
    done = subprocess.run(command, cwd=ROOT, timeout=follower.timeout_s, check=False)
    return done.returncode


def main(argv: list[str]) -> int:
    code = run_recorder.main(QUICK + argv)
    for follower in FOLLOWERS:
        code = run_follower(follower) or code
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
