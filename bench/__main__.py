"""``python -m bench``: every benchmark with small defaults, tables on stdout.

Runs the recorder capacity bench (``bench/run_recorder.py``: concurrent calls on
one core, set-up rate, memory per call) with short steps, then the MP3
finishing speed bench (``bench/finish_speed.py``) when it is there. Extra
arguments go to ``run_recorder`` (e.g. ``python -m bench --steps 500,1000``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench import run_recorder

QUICK = ["--steps", "250,500,1000,1500,2000,3000,4000", "--duration", "5", "--setup-duration", "5"]


def main(argv: list[str]) -> int:
    code = run_recorder.main(QUICK + argv)
    finish_speed = Path(__file__).resolve().parent / "finish_speed.py"
    if finish_speed.exists():
        print("\nMP3 finishing speed (bench/finish_speed.py)", flush=True)
        done = subprocess.run([sys.executable, str(finish_speed)], timeout=900, check=False)
        code = code or done.returncode
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
