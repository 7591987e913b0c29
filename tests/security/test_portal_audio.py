"""Listening: play links, stream-only, one audit row per listening session (issue 7, item 1).

Found: ``Range: bytes=0-`` handed a stream-only recording's whole file to any
client, and ``bytes=1-`` played with no audit row. Now stream-only audio is
served only through a play link bound to the portal session (minutes long,
inline, no-store), issuing the link is the one audit row, and fetches outside
the player are refused (stream-only) or audited one by one. Also: a Range of
5,000 digits was a 500 (item 7) and metadata views were not audited.
Runs on the API suite's two-tenant world, against the live app.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from callvault.db.models import AuditEvent, Tenant
from tests.api import conftest as api
from tests.api.conftest import PASSWORD, Clock, World, give_login

world = api.world
clock = api.clock


def _session(world: World, who: str) -> TestClient:
    """A browser: https (the cookie is Secure), logged in, CSRF header set."""
    client = TestClient(world.app, base_url="https://testserver")
    r = client.post("/api/v1/session", json={"login": give_login(world, who), "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


def _stream_only(world: World) -> None:
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        assert tenant is not None
        tenant.stream_only = True
        session.commit()


def _actions(world: World, prefix: str = "recording.") -> list[str]:
    with world.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.action.like(prefix + "%"))
                .order_by(AuditEvent.id)
            )
        )


def _link(client: TestClient, recording_id: str) -> str:
    r = client.post(f"/api/v1/recordings/{recording_id}/play")
    assert r.status_code == 200, r.text
    url: str = r.json()["url"]
    return url


def test_stream_only_audio_is_never_served_outside_a_play_link(world: World) -> None:
    _stream_only(world)
    url = f"/api/v1/recordings/{world.recording_a}/audio"
    for who in ("a_user", "a_admin", "operator"):
        for headers in ({"Range": "bytes=0-"}, {"Range": "bytes=1-"}, {"Range": "bytes=-100"}, {}):
            r = world.client.get(url, headers=world.auth(who) | headers)
            assert r.status_code == 403 and r.json()["error"]["id"] == "stream-only", (who, headers)
    # and a bearer token cannot get a play link: those are for the portal's player
    r = world.client.post(
        f"/api/v1/recordings/{world.recording_a}/play", headers=world.auth("a_user")
    )
    assert r.status_code == 403 and r.json()["error"]["id"] == "player-only"
    assert _actions(world) == []


def test_a_listening_session_is_audited_once_whatever_the_ranges(world: World) -> None:
    _stream_only(world)
    browser = _session(world, "a_user")
    link = _link(browser, world.recording_a)
    for first in ("0", "1", "100", "5000"):
        r = browser.get(link, headers={"Range": f"bytes={first}-"})
        assert r.status_code == 206 and r.content == world.audio[int(first) :]
        assert r.headers["content-disposition"] == "inline"
        assert r.headers["cache-control"] == "no-store"
    assert browser.get(link).status_code == 403  # no Range: a "save as", not the player
    assert browser.get(link + "&download=true", headers={"Range": "bytes=0-"}).status_code == 403
    assert _actions(world) == ["recording.play"]
    with world.sessions() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "recording.play")
        ).one()
    assert event.actor == f"user:{world.users['a_user']}" and event.tenant_id == world.tenant_a
    assert event.target == f"recording:{world.recording_a}" and event.details["stream_only"]
    # a second listening session is a second row
    _link(browser, world.recording_a)
    assert _actions(world) == ["recording.play", "recording.play"]


def test_a_play_link_is_bound_to_its_session_recording_and_time(world: World, clock: Clock) -> None:
    _stream_only(world)
    browser = _session(world, "a_admin")
    link = _link(browser, world.recording_a)
    ranged = {"Range": "bytes=0-"}
    assert browser.get(link, headers=ranged).status_code == 206
    # the same user's other session, a bearer token, nobody: not theirs
    other = _session(world, "a_admin")
    assert other.get(link, headers=ranged).status_code == 403
    assert world.client.get(link, headers=ranged | world.auth("a_admin")).status_code == 403
    assert world.client.get(link, headers=ranged).status_code == 401
    # another recording's URL with this token, or a token altered
    moved = link.replace(world.recording_a, world.recording_a2)
    assert browser.get(moved, headers=ranged).json()["error"]["id"] == "play-link-expired"
    expires, _, mac = link.partition("play=")[2].partition(".")
    tampered = link.replace(f"{expires}.", f"{int(expires) + 3600}.")
    assert browser.get(tampered, headers=ranged).status_code == 403
    assert browser.get(link.replace(mac, mac[:-2] + "AA"), headers=ranged).status_code == 403
    # minutes, not hours
    clock.advance(minutes=9)
    assert browser.get(link, headers=ranged).status_code == 206
    clock.advance(minutes=2)
    r = browser.get(link, headers=ranged)
    assert r.status_code == 403 and r.json()["error"]["id"] == "play-link-expired"
    # logging out ends its links
    fresh = _link(browser, world.recording_a)
    assert browser.delete("/api/v1/session").status_code == 204
    assert browser.get(fresh, headers=ranged).status_code == 401


def test_play_links_keep_visibility(world: World) -> None:
    browser = _session(world, "a_user")
    for foreign in (world.recording_a2, world.recording_b):
        assert browser.post(f"/api/v1/recordings/{foreign}/play").status_code == 404
    assert (
        browser.post(
            f"/api/v1/recordings/{world.recording_a}/play", headers={"X-CSRF-Token": "wrong"}
        ).status_code
        == 403
    )


def test_fetches_outside_the_player_are_each_audited(world: World) -> None:
    url = f"/api/v1/recordings/{world.recording_a}/audio"
    h = world.auth("a_user")
    for headers in ({"Range": "bytes=1-"}, {"Range": "bytes=0-"}, {}):
        r = world.client.get(url, headers=h | headers)
        assert r.status_code in (200, 206) and r.headers["cache-control"] == "no-store"
    assert _actions(world) == ["recording.download"] * 3


def test_the_recording_page_and_metadata_views_are_audited(world: World) -> None:
    r = world.client.get(f"/api/v1/recordings/{world.recording_a}", headers=world.auth("a_user"))
    assert r.status_code == 200
    assert _actions(world) == ["recording.view"]
    browser = _session(world, "a_user")
    page = browser.get(f"/recordings/{world.recording_a}")
    assert page.status_code == 200
    # the page's player gets its own play link: opening the page is a view and a play
    assert f"/api/v1/recordings/{world.recording_a}/audio?play=" in page.text
    assert _actions(world) == ["recording.view", "recording.view", "recording.play"]


def test_a_range_of_thousands_of_digits_is_416_not_500(world: World) -> None:
    url = f"/api/v1/recordings/{world.recording_a}/audio"
    for header in (
        "bytes=" + "9" * 5000 + "-",
        "bytes=0-" + "9" * 5000,
        "bytes=-" + "1" * 5000,
        "bytes=" + "0" * 4999 + "1-",
        "bytes=" + "1" * 19 + "-",
        "bytes=0-1," * 1000,
    ):
        r = world.client.get(url, headers=world.auth("a_user") | {"Range": header})
        assert r.status_code == 416, (header[:20], r.status_code)
    share = world.client.post(
        f"/api/v1/recordings/{world.recording_a}/shares",
        json={"expires_in_hours": 1},
        headers=world.auth("a_user"),
    ).json()
    r = world.client.get(
        f"/api/v1/shared/{share['token']}/audio", headers={"Range": "bytes=" + "9" * 5000 + "-"}
    )
    assert r.status_code == 416
