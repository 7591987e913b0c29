"""The API world (tests/api/conftest.py) for the coaching settings' tests."""

from tests.api.conftest import World, world  # noqa: F401  (the fixture)
