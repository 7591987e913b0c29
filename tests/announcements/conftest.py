"""Announcement tests: the API world (real blobs, SQLite) and audio made here, by content."""

from __future__ import annotations

from tests.api.conftest import World, world  # noqa: F401  (the fixture)
