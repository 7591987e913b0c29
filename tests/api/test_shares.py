"""Share links (use, expiry, revoke, every use audited) and stream-only tenants."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from callvault.db.models import AuditEvent, Call, ShareLink, Tenant
from tests.api.conftest import PASSWORD, Clock, World, give_login


def _share(world: World, who: str = "a_user", hours: int = 24) -> dict[str, str]:
    r = world.client.post(
        f"/api/v1/recordings/{world.recording_a}/shares",
        json={"expires_in_hours": hours},
        headers=world.auth(who),
    )
    assert r.status_code == 201, r.text
    body: dict[str, str] = r.json()
    return body


def test_share_link_lifecycle(world: World, clock: Clock) -> None:
    created = _share(world)
    token = created["token"]
    assert created["url"] == f"/s/{token}"
    with world.sessions() as session:
        stored = session.scalars(select(ShareLink)).one()
        assert stored.token_hash != token and token not in stored.token_hash
    anon = world.client  # no credentials
    meta = anon.get(f"/api/v1/shared/{token}")
    assert meta.status_code == 200, meta.text
    assert meta.json()["duration_ms"] == 30000
    assert meta.json()["parties"] == []  # the seeded party has no name; numbers are never shown
    assert "number" not in meta.text and "+31" not in meta.text
    audio_url = meta.json()["audio_url"]
    play = anon.get(audio_url, headers={"Range": "bytes=0-"})
    assert play.status_code == 206 and play.content == world.audio
    assert "attachment" not in play.headers.get("content-disposition", "")
    seek = anon.get(audio_url, headers={"Range": "bytes=100-199"})
    assert seek.status_code == 206 and seek.content == world.audio[100:200]
    whole = anon.get(audio_url)
    assert whole.status_code == 403 and whole.json()["error"]["id"] == "stream-only"
    listed = world.client.get(
        f"/api/v1/recordings/{world.recording_a}/shares", headers=world.auth("a_user")
    ).json()
    assert listed[0]["uses"] == 2 and listed[0]["active"] is True
    with world.sessions() as session:
        uses = session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("share.%")).order_by(AuditEvent.id)
        ).all()
    assert [u.action for u in uses] == ["share.create", "share.view", "share.play", "share.seek"]
    assert all(u.tenant_id == world.tenant_a for u in uses)
    assert all(u.remote_addr == "testclient" for u in uses)
    # expiry, by the clock
    clock.advance(hours=24, seconds=1)
    for url in (f"/api/v1/shared/{token}", audio_url):
        gone = anon.get(url, headers={"Range": "bytes=0-"})
        assert gone.status_code == 404 and gone.json()["error"]["id"] == "share-not-found"


def test_revoked_expired_and_unknown_links_answer_alike(world: World) -> None:
    revoked, expired = _share(world), _share(world, "a_admin")
    r = world.client.delete(
        f"/api/v1/recordings/{world.recording_a}/shares/{revoked['id']}",
        headers=world.auth("a_user"),
    )
    assert r.status_code == 204
    with world.sessions() as session:
        row = session.get(ShareLink, expired["id"])
        assert row is not None
        row.expires_at = datetime(2020, 1, 1, tzinfo=UTC)
        session.commit()
    answers = [
        world.client.get(f"/api/v1/shared/{t}").json()
        for t in (revoked["token"], expired["token"], "x" * 43, "short!")
    ]
    assert all(a == answers[0] for a in answers)
    assert answers[0]["error"]["id"] == "share-not-found"


def test_share_rules(world: World) -> None:
    url = f"/api/v1/recordings/{world.recording_a}/shares"
    for hours in (0, 721):
        r = world.client.post(url, json={"expires_in_hours": hours}, headers=world.auth("a_user"))
        assert r.status_code == 422
    # only who can see the recording; the operator does not share customers' recordings
    assert (
        world.client.post(url, json={"expires_in_hours": 1}, headers=world.auth("a_listener"))
    ).status_code == 404
    assert (
        world.client.post(url, json={"expires_in_hours": 1}, headers=world.auth("operator"))
    ).status_code == 403
    b_share = world.client.post(
        f"/api/v1/recordings/{world.recording_b}/shares",
        json={"expires_in_hours": 1},
        headers=world.auth("b_user"),
    ).json()
    r = world.client.delete(f"{url}/{b_share['id']}", headers=world.auth("a_admin"))
    assert r.status_code == 404


def _stream_only(world: World) -> None:
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        assert tenant is not None
        tenant.stream_only = True
        session.commit()


def test_stream_only_tenant_refuses_downloads_and_logs_plays(
    world: World, browser: TestClient
) -> None:
    _stream_only(world)
    url = f"/api/v1/recordings/{world.recording_a}/audio"
    h = world.auth("a_user")
    for params, headers in [
        ({"download": "true"}, {}),
        ({"download": "true"}, {"Range": "bytes=0-"}),
        ({}, {}),  # a full fetch outside the player
        ({}, {"Range": "bytes=0-"}),  # a player-like fetch without a play link
        ({}, {"Range": "bytes=1-"}),
    ]:
        r = world.client.get(url, params=params, headers=h | headers)
        assert r.status_code == 403 and r.json()["error"]["id"] == "stream-only", params
    csrf = browser.post(
        "/api/v1/session", json={"login": give_login(world, "a_user"), "password": PASSWORD}
    ).json()["csrf_token"]
    link = browser.post(
        f"/api/v1/recordings/{world.recording_a}/play", headers={"X-CSRF-Token": csrf}
    ).json()["url"]
    play = browser.get(link, headers={"Range": "bytes=0-"})
    assert play.status_code == 206 and play.content == world.audio
    assert play.headers["content-disposition"] == "inline"
    assert play.headers["cache-control"] == "no-store"
    assert browser.get(link).status_code == 403  # no Range: "save as", not the player
    browser.get(link, headers={"Range": "bytes=500-"})
    browser.get(link, headers={"Range": "bytes=0-99"})
    with world.sessions() as session:
        plays = session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("recording.%"))
        ).all()
    assert [p.action for p in plays] == ["recording.play"]  # once per listening session
    assert all(p.details["stream_only"] is True for p in plays)


@pytest.mark.parametrize(
    "from_number,to_number,expected",
    [
        ("+31201234567", "+31207654321", "2026-11-01_1001_+31201234567_+31207654321.mp3"),
        ('a"b;c\r\nd', None, "2026-11-01_1001_a-b-c-d_unknown.mp3"),
    ],
)
def test_download_filename(
    world: World, from_number: str, to_number: str | None, expected: str
) -> None:
    with world.sessions() as session:
        call = session.get(Call, world.recording_a)
        assert call is not None
        call.from_number, call.to_number = from_number, to_number
        session.commit()
    r = world.client.get(
        f"/api/v1/recordings/{world.recording_a}/audio",
        params={"download": "true"},
        headers=world.auth("a_user"),
    )
    assert r.headers["content-disposition"] == f'attachment; filename="{expected}"'
