"""Push tests: the API world of ``tests/api`` (two tenants, every role)."""

from tests.api.conftest import clock, world  # noqa: F401
