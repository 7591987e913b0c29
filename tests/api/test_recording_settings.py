"""Settings › Recording over the API: notice first, list, modes, short code, contacts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from callvault.db.models import AuditEvent, LegalAcceptance, Tenant
from callvault.tenants.legal import NOTICE_VERSION
from tests.api.conftest import World, portal_session

PURPOSE = "training and quality of the service desk"


def _accept(world: World, who: str = "a_admin") -> None:
    """The admin's click, in their own portal session."""
    r = portal_session(world, who).post(
        f"/api/v1/tenants/{world.tenant_a}/legal-notice/accept",
        json={"version": NOTICE_VERSION, "purpose": PURPOSE},
    )
    assert r.status_code == 201, r.text


def test_nothing_changes_before_the_notice_is_accepted(world: World) -> None:
    base = f"/api/v1/tenants/{world.tenant_a}"
    h = world.auth("a_admin")
    notice = world.client.get(f"{base}/legal-notice", headers=h).json()
    assert notice["accepted"] is False and set(notice["text"]) == {"en", "nl", "de"}
    settings = world.client.get(f"{base}/recording-settings", headers=h).json()
    assert settings["active"] is False
    for method, path, body in [
        ("PATCH", "/recording-settings", {"short_code": "*2"}),
        ("POST", "/recording-list", {"user_id": world.users["a_listener"]}),
        ("PUT", f"/recording-list/{world.users['a_user']}", {"mode": "always"}),
    ]:
        r = world.client.request(method, base + path, json=body, headers=h)
        assert r.status_code == 409, (path, r.text)
        assert r.json()["error"]["id"] == "legal-notice-required"


def test_accepting_stores_who_when_which_version_and_purpose(world: World) -> None:
    base = f"/api/v1/tenants/{world.tenant_a}"
    admin = portal_session(world, "a_admin")
    wrong = admin.post(
        f"{base}/legal-notice/accept", json={"version": "1999-01", "purpose": PURPOSE}
    )
    assert wrong.status_code == 409 and wrong.json()["error"]["id"] == "legal-notice-version"
    short = admin.post(
        f"{base}/legal-notice/accept", json={"version": NOTICE_VERSION, "purpose": "x"}
    )
    assert short.status_code == 422 and "purpose" in short.json()["error"]["message"]
    for who in ("operator", "a_user", "a_admin"):  # only the admin, in person, accepts
        r = world.client.post(
            f"{base}/legal-notice/accept",
            json={"version": NOTICE_VERSION, "purpose": PURPOSE},
            headers=world.auth(who),
        )
        assert r.status_code == 403
    _accept(world)
    notice = world.client.get(f"{base}/legal-notice", headers=world.auth("a_admin")).json()
    assert notice["accepted"] and notice["accepted_version"] == NOTICE_VERSION
    assert notice["purpose"] == PURPOSE and "Ada" in notice["accepted_by"]
    with world.sessions() as session:
        row = session.scalar(select(LegalAcceptance))
        assert row is not None and row.user_id == world.users["a_admin"]
        actions = list(session.scalars(select(AuditEvent.action)))
    assert "legal.accept" in actions


def test_plus_mode_and_cross(world: World) -> None:
    _accept(world)
    base = f"/api/v1/tenants/{world.tenant_a}"
    h = world.auth("a_admin")
    listener = world.users["a_listener"]
    r = world.client.post(f"{base}/recording-list", json={"user_id": listener}, headers=h)
    assert r.status_code == 201
    assert r.json()["mode"] == "on_demand_user"  # a newly added user starts here
    again = world.client.post(f"{base}/recording-list", json={"user_id": listener}, headers=h)
    assert again.status_code == 409
    r = world.client.put(f"{base}/recording-list/{listener}", json={"mode": "playback"}, headers=h)
    assert r.status_code == 200 and r.json()["mode"] == "playback"
    bad = world.client.put(
        f"{base}/recording-list/{listener}", json={"mode": "sometimes"}, headers=h
    )
    assert bad.status_code == 422
    listed = {
        u["user_id"]: u["mode"]
        for u in world.client.get(f"{base}/recording-list", headers=h).json()
    }
    assert listed[listener] == "playback"
    assert world.client.delete(f"{base}/recording-list/{listener}", headers=h).status_code == 204
    left = {u["user_id"] for u in world.client.get(f"{base}/recording-list", headers=h).json()}
    assert listener not in left
    # a user of another tenant cannot be added: 404, not 403
    foreign = world.client.post(
        f"{base}/recording-list", json={"user_id": world.users["b_user"]}, headers=h
    )
    assert foreign.status_code == 404


@pytest.mark.parametrize("code", ["#1", "*12", "55", "*a", "**", "A", "", " 5", "5" * 5000])
def test_short_code_refused_with_clear_error(world: World, code: str) -> None:
    _accept(world)
    r = world.client.patch(
        f"/api/v1/tenants/{world.tenant_a}/recording-settings",
        json={"short_code": code},
        headers=world.auth("a_admin"),
    )
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert "one key (0-9, * or #) or * followed by one digit" in message
    assert len(message) < 300  # a flood is not echoed back
    with world.sessions() as session:
        assert session.scalar(select(Tenant.short_code).where(Tenant.id == world.tenant_a)) == "*1"


@pytest.mark.parametrize("code", ["5", "*", "#", "0", "*1", "*9"])
def test_short_code_single_key_or_star_digit_is_saved_and_audited(world: World, code: str) -> None:
    """The German manual's one key (picked on the keypad) or * + digit: both are stored
    as given, read back, audited with the old value, and reach the SIP side."""
    _accept(world)
    base = f"/api/v1/tenants/{world.tenant_a}/recording-settings"
    r = world.client.patch(base, json={"short_code": code}, headers=world.auth("a_admin"))
    assert r.status_code == 200, r.text
    assert r.json()["short_code"] == code
    assert world.client.get(base, headers=world.auth("a_admin")).json()["short_code"] == code
    with world.sessions() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "settings.recording")
        ).all()
    if code == "*1":  # the default: nothing changed, nothing to audit
        assert events == []
    else:
        [event] = events
        assert event.details["short_code"] == code
        assert event.details["old"] == {"short_code": "*1"}


def test_short_code_of_another_tenant_is_not_found(world: World) -> None:
    _accept(world)
    r = world.client.patch(
        f"/api/v1/tenants/{world.tenant_b}/recording-settings",
        json={"short_code": "5"},
        headers=world.auth("a_admin"),
    )
    assert r.status_code == 404


def test_settings_change_is_audited(world: World) -> None:
    _accept(world)
    r = world.client.patch(
        f"/api/v1/tenants/{world.tenant_a}/recording-settings",
        json={"short_code": "*7", "pause_mode": "silence", "channels": "mix"},
        headers=world.auth("a_admin"),
    )
    assert r.status_code == 200
    assert (
        r.json().items()
        >= {
            "active": True,
            "short_code": "*7",
            "pause_mode": "silence",
            "channels": "mix",
        }.items()
    )
    with world.sessions() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "settings.recording"))
    assert event is not None and event.details["short_code"] == "*7"


def test_users_keep_their_own_contacts_only(world: World) -> None:
    base = f"/api/v1/tenants/{world.tenant_a}/users"
    own = world.users["a_user"]
    r = world.client.post(
        f"{base}/{own}/contacts",
        json={"list": "blacklist", "value": "+31 6 1234 5678"},
        headers=world.auth("a_user"),
    )
    assert r.status_code == 201 and r.json()["value"] == "+31612345678"
    r = world.client.post(
        f"{base}/{own}/contacts",
        json={"list": "whitelist", "value": "sip:Boss@Alpha.Example"},
        headers=world.auth("a_user"),
    )
    assert r.json()["value"] == "Boss@alpha.example"
    bad = world.client.post(
        f"{base}/{own}/contacts",
        json={"list": "greylist", "value": "+31612345678"},
        headers=world.auth("a_user"),
    )
    assert bad.status_code == 422
    colleague = world.users["a_colleague"]
    assert (
        world.client.get(f"{base}/{colleague}/contacts", headers=world.auth("a_user")).status_code
        == 403
    )
    assert (
        world.client.get(f"{base}/{colleague}/contacts", headers=world.auth("a_admin")).status_code
        == 200
    )
    foreign = f"/api/v1/tenants/{world.tenant_b}/users/{world.users['b_user']}/contacts"
    assert world.client.get(foreign, headers=world.auth("a_admin")).status_code == 404
    contacts = world.client.get(f"{base}/{own}/contacts", headers=world.auth("a_user")).json()
    assert len(contacts) == 2
    cid = contacts[0]["id"]
    assert (
        world.client.delete(
            f"{base}/{own}/contacts/{cid}", headers=world.auth("a_user")
        ).status_code
        == 204
    )


RECORDING_ENDPOINTS = [
    ("GET", "/legal-notice", None),
    ("GET", "/recording-settings", None),
    ("GET", "/recording-list", None),
    ("PATCH", "/recording-settings", {"pause_mode": "cut"}),
]


@pytest.mark.parametrize("who", ["a_user", "a_listener"])
def test_plain_users_cannot_touch_recording_settings(world: World, who: str) -> None:
    _accept(world)
    for method, path, body in RECORDING_ENDPOINTS:
        r = world.client.request(
            method, f"/api/v1/tenants/{world.tenant_a}{path}", json=body, headers=world.auth(who)
        )
        assert r.status_code == 403, (who, path)
        r = world.client.request(
            method, f"/api/v1/tenants/{world.tenant_b}{path}", json=body, headers=world.auth(who)
        )
        assert r.status_code == 404, (who, path)
