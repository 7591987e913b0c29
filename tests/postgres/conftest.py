"""A throw-away PostgreSQL server (Debian's binaries) for tests, on a free loopback port.

One server serves the whole pytest session, whichever folders import this
fixture (see tests/databases.py, which also gives the API and policy suites a
fresh database per test on it). Tests here share its ``postgres`` database.
"""

from __future__ import annotations

import pytest

from tests.databases import postgres_server


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> str:
    return postgres_server(request.config).url
