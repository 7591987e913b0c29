"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import pytest

from callvault.media import pump


@pytest.fixture
def capture_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """No recorded stream is read until its call hangs up: the pump stops
    watching its sockets at their first readiness and the spool tick's read
    (``Engine.serve_now``) does nothing, so every packet waits in the kernel
    until the BYE's drain, as with an event loop seconds behind."""
    if not pump.BATCHED:
        pytest.skip("the native pump is not built: streams are asyncio transports")

    def behind(self: pump.Engine) -> None:
        self.loop.remove_reader(self.fd)  # stop watching; sockets keep their packets

    monkeypatch.setattr(pump.Engine, "_ready", behind)
    monkeypatch.setattr(pump.Engine, "serve_now", lambda self: None)
