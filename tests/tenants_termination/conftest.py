"""The portal world of the API tests (two tenants, users, recordings, tokens)."""

from tests.api.conftest import clock, world  # noqa: F401  (fixtures)
