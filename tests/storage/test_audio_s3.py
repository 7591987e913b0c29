"""A recording kept in S3 plays through the portal's audio route (issue 13).

The API suite's two-tenant world, its app rebuilt on an ``S3BlobStore`` that
talks HTTP to a real S3 server; the server's request log shows what was
fetched: a Range request is one ranged GET of exactly that range (never the
whole file), the whole file is streamed, and an S3 outage is a 503.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from callvault.db.models import AuditEvent, Recording
from callvault.portal.app import create_app
from callvault.portal.context import PortalContext
from callvault.storage.s3 import S3BlobStore
from tests.api import conftest as api
from tests.api.conftest import PASSWORD, World, give_login
from tests.storage.conftest import s3_settings
from tests.storage.s3_server import S3Server

world = api.world


class S3World:
    def __init__(self, world: World, server: S3Server, store: S3BlobStore) -> None:
        self.world, self.server, self.store = world, server, store
        with world.sessions() as session:
            recording = session.get(Recording, world.recording_a)
            assert recording is not None
            self.key = recording.blob_key
        self.path = f"/{store.bucket}/{store.prefix}{self.key}"
        store.put(self.key, world.audio)  # the recording's bytes, now in the bucket only
        world.blobs.delete(self.key)
        self.app = create_app(PortalContext(world.sessions, store))

    def url(self) -> str:
        return f"/api/v1/recordings/{self.world.recording_a}/audio"


@pytest.fixture
def s3_world(world: World, s3: S3Server, tmp_path: Path) -> Iterator[S3World]:
    settings = s3_settings(s3.url, tmp_path, s3.new_bucket())
    built = S3World(world, s3, S3BlobStore.from_settings(settings, attempts=2))
    s3.clear_log()
    yield built


def test_a_range_request_fetches_only_that_range(s3_world: S3World) -> None:
    audio = s3_world.world.audio
    with TestClient(s3_world.app) as client:
        r = client.get(
            s3_world.url(), headers={**s3_world.world.auth("a_admin"), "Range": "bytes=1000-1999"}
        )
    assert r.status_code == 206, r.text
    assert r.content == audio[1000:2000]
    assert r.headers["content-range"] == f"bytes 1000-1999/{len(audio)}"
    assert r.headers["content-length"] == "1000"
    gets = s3_world.server.requests("GET", s3_world.path)
    assert [(g.range, g.status, g.sent) for g in gets] == [("bytes=1000-1999", 206, 1000)]


def test_the_whole_file_is_streamed_from_s3(s3_world: S3World) -> None:
    audio = s3_world.world.audio
    with TestClient(s3_world.app) as client:
        r = client.get(s3_world.url(), headers=s3_world.world.auth("a_admin"))
    assert r.status_code == 200, r.text
    assert r.content == audio and r.headers["content-length"] == str(len(audio))
    assert r.headers["accept-ranges"] == "bytes"
    with s3_world.world.sessions() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "recording.download")
        ).all()
    assert len(events) == 1


def test_the_players_play_link_works_over_s3(s3_world: S3World) -> None:
    client = TestClient(s3_world.app, base_url="https://testserver")
    login = give_login(s3_world.world, "a_user")
    r = client.post("/api/v1/session", json={"login": login, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    link = client.post(f"/api/v1/recordings/{s3_world.world.recording_a}/play")
    assert link.status_code == 200, link.text
    r = client.get(link.json()["url"], headers={"Range": "bytes=0-"})  # what a player sends
    assert r.status_code == 206 and r.content == s3_world.world.audio
    gets = s3_world.server.requests("GET", s3_world.path)
    assert [(g.range, g.sent) for g in gets] == [(f"bytes=0-{len(r.content) - 1}", len(r.content))]


def test_an_s3_outage_is_a_503(s3_world: S3World) -> None:
    s3_world.server.fail("*", 503, times=10)
    with TestClient(s3_world.app) as client:
        r = client.get(
            s3_world.url(), headers={**s3_world.world.auth("a_admin"), "Range": "bytes=0-99"}
        )
    assert r.status_code == 503, r.text
    assert r.json()["error"]["id"] == "storage-unavailable"


def test_a_blob_missing_from_s3_is_gone(s3_world: S3World) -> None:
    s3_world.store.delete(s3_world.key)
    with TestClient(s3_world.app) as client:
        r = client.get(s3_world.url(), headers=s3_world.world.auth("a_admin"))
    assert r.status_code == 410 and r.json()["error"]["id"] == "audio-gone"


class NoWholeReads(S3BlobStore):
    """The store, but ``read`` (bytes in memory) is refused: audio must come by ``read_range``."""

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        raise AssertionError(f"the audio route read {key} [{start}, {end}) into memory")


def test_audio_is_streamed_never_read_into_memory(s3_world: S3World) -> None:
    """A player's ``bytes=0-`` is the whole file: it comes in chunks, as does a plain GET."""
    store = s3_world.store
    app = create_app(
        PortalContext(
            s3_world.world.sessions, NoWholeReads(store.client, store.bucket, store.prefix)
        )
    )
    with TestClient(app) as client:
        for extra in ({"Range": "bytes=0-"}, {}):
            r = client.get(s3_world.url(), headers={**s3_world.world.auth("a_admin"), **extra})
            assert r.status_code in (200, 206) and r.content == s3_world.world.audio
