"""Playback's web app, server side: manifest, service worker, home, lists, notifications.

The browser half (installability, swipe, the worker's answers) is
tests/browser/test_playback_app.py; here the pages and files as a TestClient
gets them, per role, and the small ``PATCH /api/v1/me`` field they use.
"""

from __future__ import annotations

import json
import re
import struct
from datetime import UTC, datetime

from sqlalchemy import select

from callvault.db.models import AuditEvent, Tenant, User, UserContact
from callvault.portal import i18n
from callvault.portal.playback.pages import STATIC
from tests.api.conftest import World, portal_session
from tests.playback.helpers import recording


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_manifest_makes_the_portal_installable(world: World) -> None:
    r = world.client.get("/manifest.webmanifest")  # public: the browser fetches it without cookies
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/manifest+json")
    manifest = json.loads(r.text)
    assert manifest["start_url"] == "/" and manifest["scope"] == "/"
    assert manifest["display"] == "standalone"
    assert manifest["name"] and manifest["short_name"]
    assert manifest["theme_color"] and manifest["background_color"]
    seen: set[tuple[str, str]] = set()
    for icon in manifest["icons"]:
        png = world.client.get(icon["src"])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        width, height = _png_size(png.content)
        assert icon["sizes"] == f"{width}x{height}"
        seen.add((icon["sizes"], icon["purpose"]))
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= seen


def test_service_worker_is_served_from_the_root_for_the_whole_portal(world: World) -> None:
    r = world.client.get("/sw.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["service-worker-allowed"] == "/"
    assert r.headers["cache-control"] == "no-cache"  # a new release reaches installed apps
    assert "script-src 'self'" in r.headers["content-security-policy"]
    for handler in ("install", "fetch", "push", "notificationclick", "message"):
        assert f'addEventListener("{handler}"' in r.text
    # the worker answers without cookies, and never caches the API or audio
    assert 'credentials: "omit"' in r.text


def test_every_page_links_the_manifest_and_a_member_gets_the_inbox_badge(world: World) -> None:
    anna = portal_session(world, "a_user")
    page = anna.get("/reports/calls").text
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page
    assert '<script src="/static/app.js"></script>' in page
    assert 'id="inbox-count"' in page and 'href="/home?mark=unsaved"' in page
    assert 'href="/lists"' in page and 'href="/notifications"' in page
    operator = portal_session(world, "operator").get("/operator/tenants").text
    assert 'id="inbox-count"' not in operator and 'href="/home"' not in operator
    assert '<link rel="manifest"' in world.client.get("/login").text


def test_home_is_the_app_shell_with_the_mark_filter(world: World) -> None:
    anna = portal_session(world, "a_user")
    home = anna.get("/home")
    assert home.status_code == 200
    assert 'id="home" data-mark=""' in home.text
    assert 'id="recording-item"' in home.text and 'id="discard-dialog"' in home.text
    assert 'id="home" data-mark="unsaved"' in anna.get("/home?mark=unsaved").text
    # anything else lists them all (the value never reaches the page's script)
    assert 'id="home" data-mark=""' in anna.get("/home?mark=%22%3E%3Cscript%3E").text
    assert anna.get("/", follow_redirects=False).headers["location"] == "/home"
    nobody = world.client.get("/home", follow_redirects=False)
    assert nobody.status_code == 303 and nobody.headers["location"].startswith("/login?next=")


def _contact(world: World, who: str, kind: str, value: str) -> None:
    with world.sessions() as session:
        user = session.get(User, world.users[who])
        assert user is not None
        session.add(UserContact(tenant_id=user.tenant_id, user_id=user.id, list=kind, value=value))
        session.commit()


def test_my_lists_shows_only_my_own_lists_explained_in_my_language(world: World) -> None:
    _contact(world, "a_user", "blacklist", "+31611111111")
    _contact(world, "a_user", "whitelist", "sip:boss@alpha.example")
    _contact(world, "a_colleague", "blacklist", "+31622222222")
    anna = portal_session(world, "a_user")
    page = anna.get("/lists").text
    assert f'data-tenant="{world.tenant_a}" data-user="{world.users["a_user"]}"' in page
    blacklist = page.split('id="blacklist"')[1].split('id="whitelist"')[0]
    assert "+31611111111" in blacklist and "sip:boss@alpha.example" not in blacklist
    assert "sip:boss@alpha.example" in page.split('id="whitelist"')[1]
    assert "+31622222222" not in page  # a colleague's list is not shown
    assert "nooit bewaard, nooit gevraagd" in page  # Dutch: the tenant's language
    assert "altijd bewaard, nooit gevraagd" in page
    anna.patch("/api/v1/me", json={"language": "en"})
    english = anna.get("/lists").text
    assert "never kept, never asked" in english and "always kept, never asked" in english


def test_the_admin_sees_and_keeps_a_users_lists_on_the_users_page(world: World) -> None:
    _contact(world, "a_user", "whitelist", "+31633333333")
    admin = portal_session(world, "a_admin")
    page = admin.get(f"/users/{world.users['a_user']}").text
    assert 'id="contact-lists"' in page and "+31633333333" in page
    assert f'data-user="{world.users["a_user"]}"' in page
    # the page's script calls the contacts API: the admin adds, the user sees it
    base = f"/api/v1/tenants/{world.tenant_a}/users/{world.users['a_user']}/contacts"
    added = admin.post(base, json={"list": "blacklist", "value": "+31 6 44444444"})
    assert added.status_code == 201, added.text
    assert "+31644444444" in portal_session(world, "a_user").get("/lists").text
    assert admin.delete(f"{base}/{added.json()['id']}").status_code == 204
    assert "+31644444444" not in admin.get(f"/users/{world.users['a_user']}").text


def test_notifications_page_and_the_e_mail_choice(world: World) -> None:
    anna = portal_session(world, "a_user")
    page = anna.get("/notifications").text
    assert 'id="push-toggle"' in page and 'id="device-list"' in page
    assert 'id="playback-email" >' in page or 'id="playback-email">' in page  # unchecked
    assert 'id="no-email"' in page  # Anna has no address: she is told
    r = anna.patch("/api/v1/me", json={"playback_email": True})
    assert r.status_code == 200 and r.json()["playback_email"] is True
    assert r.json()["own_language"] is None  # the language was not sent: unchanged
    assert 'id="playback-email" checked' in anna.get("/notifications").text
    assert anna.get("/api/v1/me").json()["playback_email"] is True
    with world.sessions() as session:
        user = session.get(User, world.users["a_user"])
        assert user is not None and user.playback_email is True
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "user.playback_email")
        ).all()
        assert event.target == f"user:{world.users['a_user']}"
    # the language alone leaves the choice as it is; nothing sent changes nothing
    assert anna.patch("/api/v1/me", json={"language": "de"}).json()["playback_email"] is True
    assert anna.patch("/api/v1/me", json={}).json()["language"] == "de"
    bad = anna.patch("/api/v1/me", json={"playback_email": "sometimes"})
    assert bad.status_code == 422


def test_a_playback_user_of_a_stream_only_tenant_gets_no_download_but_annotates(
    world: World,
) -> None:
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        assert tenant is not None
        tenant.stream_only = True
        rid = recording(
            session,
            world.blobs,
            world.tenant_a,
            world.users["a_user"],
            datetime.now(UTC),
            saved=True,
            expires_at=datetime(2099, 1, 1, tzinfo=UTC),
        )
        session.commit()
    anna = portal_session(world, "a_user")
    page = anna.get(f"/recordings/{rid}").text
    assert 'id="rec-audio"' in page and 'controlslist="nodownload"' in page
    assert 'id="rec-download"' not in page
    assert anna.get(f"/api/v1/recordings/{rid}/audio?download=true").status_code == 403
    # the player's labels, comments and share links, as the page's script sends them
    base = f"/api/v1/recordings/{rid}"
    assert anna.post(f"{base}/labels", json={"text": "offer"}).status_code == 201
    assert anna.post(f"{base}/comments", json={"text": "calls back"}).status_code == 201
    assert anna.post(f"{base}/shares", json={"expires_in_hours": 24}).status_code == 201
    page = anna.get(f"/recordings/{rid}").text
    assert "offer" in page and "calls back" in page


def test_the_app_scripts_words_exist_in_every_language() -> None:
    """``CV.t("…")`` in app.js falls back to the key itself: a missing word would show."""
    script = (STATIC / "app.js").read_text()
    used = set(re.findall(r'CV\.t\("([a-z0-9_.]+)"\)', script))
    # "home.mark." + mark: the three marks
    used |= {f"home.mark.{m}" for m in ("unsaved", "saved", "standard")}
    assert len(used) > 10
    assert used <= i18n.known_keys(), used - i18n.known_keys()


def test_the_mailed_link_leads_to_the_recording_page_which_asks_its_own_user(
    world: World,
) -> None:
    with world.sessions() as session:
        rid = recording(
            session, world.blobs, world.tenant_a, world.users["a_user"], datetime.now(UTC)
        )
        session.commit()
    anna = portal_session(world, "a_user")
    link = anna.get(f"/playback/{rid}", follow_redirects=False)
    assert link.status_code == 303 and link.headers["location"] == f"/recordings/{rid}"
    assert anna.get("/playback/not-an-id", follow_redirects=False).status_code == 404
    page = anna.get(f"/recordings/{rid}").text
    assert 'id="playback-question"' in page and 'data-answer="keep"' in page
    # an admin sees the recording but the question is the user's alone
    admin = portal_session(world, "a_admin")
    assert 'id="playback-question"' not in admin.get(f"/recordings/{rid}").text
    assert anna.post(f"/api/v1/recordings/{rid}/keep").status_code == 200
    assert 'id="playback-question"' not in anna.get(f"/recordings/{rid}").text
