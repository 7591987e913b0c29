"""The API tests' world (two tenants, their users and recordings) and clock."""

from tests.api.conftest import browser, clock, world

__all__ = ["browser", "clock", "world"]
