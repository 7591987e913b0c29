"""Playback tests: the API tests' world (``tests/api``), its portal clock and browser."""

from tests.api.conftest import browser, clock, world  # noqa: F401
