"""Real peers the tests talk to: skipped locally when missing, a failure in CI.

SPEC section 11: tests talk to real peers (sipp, espeak-ng, PostgreSQL,
headless Chromium, ...), and a test needing a missing peer fails, never
silently skips, when ``CI=true``. Every such check in the suite goes through
``require`` (inside a test or fixture) or the ``peer`` marker (on a test or a
module), so the rule lives in one place:

    require("espeak-ng", "speech for the talk-off tests")     # a program on PATH
    require(Path("/usr/share/sip-tester/x.pcap"), "...")      # a file
    require(initdb is not None, "PostgreSQL (initdb)")        # any condition
    schemathesis = require_module("schemathesis", "API fuzzing")

    @pytest.mark.peer("espeak-ng", why="speech for the talk-off tests")
    def test_...

Locally a missing peer skips with how to install it; with ``CI=true`` the
same check fails the test. ``scripts/system-packages.sh`` installs the Debian
peers and ``scripts/setup.sh --test`` the Python ones.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

INSTALL_HINT = "scripts/system-packages.sh and scripts/setup.sh --test install it"

Need = str | Path | bool


def in_ci() -> bool:
    """True when the environment says this run is CI (``CI=true``, any case)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def missing(why: str) -> NoReturn:
    """Skip the current test (fail it in CI) because the peer ``why`` names is absent."""
    if in_ci():
        pytest.fail(f"missing peer: {why}; CI=true requires it ({INSTALL_HINT})", pytrace=False)
    pytest.skip(f"missing peer: {why} ({INSTALL_HINT})")


def present(need: Need) -> bool:
    """Whether ``need`` is met: a program on PATH (or an executable path), a file, a condition."""
    if isinstance(need, bool):
        return need
    if isinstance(need, Path):
        return need.exists()
    return shutil.which(need) is not None


def require(need: Need, why: str) -> None:
    """Go on only if ``need`` is met; else skip locally, fail in CI (see ``present``)."""
    if not present(need):
        missing(why)


def program(name: str, why: str) -> str:
    """The full path of program ``name``, or skip/fail as ``require`` does."""
    found = shutil.which(name)
    if found is None:
        missing(f"{name} ({why})")
    return found


def require_module(name: str, why: str) -> ModuleType:
    """Import the Python module ``name``, or skip/fail as ``require`` does."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"Python package {name} ({why})")


def check_marker(item: pytest.Item) -> None:
    """Apply every ``@pytest.mark.peer(need, why=...)`` of a test (called from conftest)."""
    for marker in item.iter_markers("peer"):
        if marker.args:  # a bare ``peer`` mark only labels the test
            need: Need = marker.args[0]
            why = str(marker.kwargs.get("why", ""))
            if not isinstance(need, bool):  # name the program or file in the message
                why = f"{need}: {why}" if why else str(need)
            require(need, why)
