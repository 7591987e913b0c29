"""Suite-wide hooks: the ``peer`` marker's check (see tests/peers.py)."""

from __future__ import annotations

import pytest

from tests.peers import check_marker

pytest_plugins = ["pytester"]  # tests/test_peers.py runs small suites of its own


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before the test's fixtures run, so a missing peer is reported as such
    # rather than as whatever the first fixture needing it would raise.
    check_marker(item)
