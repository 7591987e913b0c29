"""Callvault nodes with some roles each, on loopback, sharing one database (issue 13)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from callvault.app import Application
from callvault.settings import load_settings
from tests.e2e.harness import seed


def node_settings(data_dir: Path, roles: str, **overrides: Any) -> Any:
    base = random.randrange(20000, 50000, 1000)
    return load_settings(
        data_dir=data_dir,
        roles=roles,
        sip_port=0,
        http_port=0,
        rtp_port_min=base,
        rtp_port_max=base + 998,
        **overrides,
    )


@asynccontextmanager
async def node(data_dir: Path, roles: str, **overrides: Any) -> AsyncIterator[Application]:
    app = Application(node_settings(data_dir, roles, **overrides))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def seeded(url: str) -> tuple[str, int]:
    """The e2e tenant (Acme) with its admin's token."""
    token, tenant_id, _users = await asyncio.to_thread(seed, url)
    return token, tenant_id


def client(app: Application, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{app.http_port}", headers=headers, timeout=30
    )


async def within(seconds: float, condition: Callable[[], bool]) -> float:
    """How long ``condition`` took to hold; fails after ``seconds`` (looks every 10 ms)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def a_user_added_on_web_is_seen_by_media(tmp_path: Path, **overrides: Any) -> float:
    """A web node and a media node (two Applications, one database): a user created
    through the web node's API is in the media node's directory within a second."""
    (tmp_path / "web").mkdir()
    probe = node_settings(tmp_path / "web", "web", **overrides)
    token, tenant_id = await seeded(probe.db_url)
    shared = {"database_url": probe.db_url, **overrides}
    async with (
        node(tmp_path / "web", "web", **shared) as web,
        node(tmp_path / "media", "media", **shared) as media,
    ):
        assert media.media.directory.match("dave@acme.example").user is None
        async with client(web, token) as http:
            r = await http.post(
                f"/api/v1/tenants/{tenant_id}/users",
                json={"name": "Dave", "aors": ["dave@acme.example"], "recorded": True},
            )
            assert r.status_code == 201, r.text
        took = await within(
            1.0, lambda: media.media.directory.match("dave@acme.example").user is not None
        )
        assert media.media.watcher.reloads >= 1
        return took
