"""Retention tests: the API world (``tests/api``) and a throw-away PostgreSQL server."""

from tests.api.conftest import browser, clock, world  # noqa: F401
from tests.postgres.conftest import postgres_url  # noqa: F401
