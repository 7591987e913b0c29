"""The portal world of the API tests (two tenants, users, recordings, tokens) and a
throw-away PostgreSQL server."""

from tests.api.conftest import clock, world  # noqa: F401  (fixtures)
from tests.postgres.conftest import postgres_url  # noqa: F401
