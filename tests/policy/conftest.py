"""The policy suite on both databases (issue 13): a test here that takes the API
tests' ``world`` runs once on SQLite and once on PostgreSQL (tests/databases.py).

The recording policy itself (policy/engine.py, live.py, modes.py) is pure and
reads no database, so most tests here run once; the policy as stored (modes,
contact lists, short codes per tenant and user) is exercised through the API in
tests/api/test_recording_settings.py, on both databases.
"""

from __future__ import annotations

import pytest
from tests.api.conftest import world  # noqa: F401  (fixture)
from tests.databases import parametrize_databases, register_marker


def pytest_configure(config: pytest.Config) -> None:
    register_marker(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_databases(metafunc)
