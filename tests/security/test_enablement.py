"""The operator's enablement and the customer's own consent (SPEC 8; issue 7, findings 2, 3).

Recording, listening and coaching are switched on by the operator once the
customer signed the declaration (who, when, which reference; audited); until
recording is on, the admin reads the legal notice but cannot accept it and
nothing is recorded. Only the admin, in their own portal session, accepts:
not the operator, not a token the operator minted for the admin.
Runs on the API suite's two-tenant world (both tenants' recording enabled).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callvault.admin import create_tenant
from callvault.cli import main
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import AuditEvent, Tenant
from callvault.tenants.directory import Directory, TenantPolicy
from callvault.tenants.legal import NOTICE_VERSION
from tests.api import conftest as api
from tests.api.conftest import World, portal_session

world = api.world  # the API suite's fixture, used here as well

ACCEPT = {"version": NOTICE_VERSION, "purpose": "quality monitoring of the service desk"}


def _base(world: World) -> str:
    return f"/api/v1/tenants/{world.tenant_a}"


def _switch(
    world: World, feature: str, body: dict[str, object], who: str = "operator"
) -> dict[str, Any]:
    r = world.client.put(f"{_base(world)}/enablement/{feature}", json=body, headers=world.auth(who))
    return {"status": r.status_code, **r.json()}


def _policy(world: World) -> TenantPolicy:
    with world.sessions() as session:
        return Directory.load(session).policy(world.tenant_a)


def test_no_consent_and_no_recording_before_the_operator_enables(world: World) -> None:
    off = _switch(world, "recording", {"enabled": False})
    assert off["status"] == 200 and off["enabled"] is False and off["disabled_by"] == "operator:1"
    admin = portal_session(world, "a_admin")
    notice = admin.get(f"{_base(world)}/legal-notice").json()
    assert notice["recording_enabled"] is False and notice["text"]["en"]  # readable
    r = admin.post(f"{_base(world)}/legal-notice/accept", json=ACCEPT)
    assert r.status_code == 409 and r.json()["error"]["id"] == "recording-not-enabled"
    assert _policy(world).active is False
    page = admin.get("/settings/recording")
    assert page.status_code == 200 and 'id="not-enabled"' in page.text
    # enabling needs the declaration's reference; then the admin may accept
    missing = _switch(world, "recording", {"enabled": True})
    assert missing["status"] == 422 and missing["error"]["id"] == "declaration-required"
    on = _switch(world, "recording", {"enabled": True, "reference": "DECL-2026-0042"})
    assert on["status"] == 200, on
    assert on["enabled"] and on["reference"] == "DECL-2026-0042"
    assert on["enabled_by"] == "operator:1" and on["enabled_at"]
    assert _policy(world).active is False  # enabled, but the notice is not accepted yet
    r = admin.post(f"{_base(world)}/legal-notice/accept", json=ACCEPT)
    assert r.status_code == 201, r.text
    policy = _policy(world)
    assert policy.active and policy.recording_enabled
    assert not policy.listening_enabled and not policy.coaching_enabled
    with world.sessions() as session:
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.tenant_id == world.tenant_a, AuditEvent.action.like("enablement.%"))
            .order_by(AuditEvent.id)
        ).all()
    assert [(e.action, e.details["feature"]) for e in events][-2:] == [
        ("enablement.disable", "recording"),
        ("enablement.enable", "recording"),
    ]
    assert events[-1].details["reference"] == "DECL-2026-0042"
    assert events[-1].actor == "operator:1"


def test_policy_is_active_only_when_enabled_accepted_and_not_suspended(world: World) -> None:
    admin = portal_session(world, "a_admin")
    assert admin.post(f"{_base(world)}/legal-notice/accept", json=ACCEPT).status_code == 201
    assert _policy(world).active
    for feature in ("listening", "coaching"):
        assert _switch(world, feature, {"enabled": True, "reference": "D-7"})["status"] == 200
    policy = _policy(world)
    assert policy.listening_enabled and policy.coaching_enabled
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        assert tenant is not None
        tenant.suspended = True
        session.commit()
    assert _policy(world).active is False
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        assert tenant is not None
        tenant.suspended = False
        session.commit()
    assert _switch(world, "recording", {"enabled": False})["status"] == 200
    assert _policy(world).active is False  # accepted once, but switched off by the operator
    settings = world.client.get(
        f"{_base(world)}/recording-settings", headers=world.auth("a_admin")
    ).json()
    assert settings["active"] is False and settings["recording_enabled"] is False


def test_only_the_admin_in_person_accepts_the_notice(world: World) -> None:
    url = f"{_base(world)}/legal-notice/accept"
    # the operator mints a token for the customer's admin and tries to accept with it
    minted = world.client.post(
        f"{_base(world)}/users/{world.users['a_admin']}/tokens", headers=world.auth("operator")
    )
    assert minted.status_code == 201
    r = world.client.post(
        url, json=ACCEPT, headers={"Authorization": f"Bearer {minted.json()['token']}"}
    )
    assert r.status_code == 403 and r.json()["error"]["id"] == "interactive-session-required"
    assert world.client.post(url, json=ACCEPT, headers=world.auth("a_admin")).status_code == 403
    assert world.client.post(url, json=ACCEPT, headers=world.auth("operator")).status_code == 403
    operator = portal_session(world, "operator")  # not in the operator's portal session either
    assert operator.post(url, json=ACCEPT).status_code == 403
    listener = portal_session(world, "a_listener")
    assert listener.post(url, json=ACCEPT).status_code == 403
    assert portal_session(world, "b_admin").post(url, json=ACCEPT).status_code == 404
    assert _policy(world).active is False
    r = portal_session(world, "a_admin").post(url, json=ACCEPT)
    assert r.status_code == 201 and "Ada" in r.json()["accepted_by"]
    assert _policy(world).active


def test_the_switches_are_the_operators_and_readable_by_the_admin(world: World) -> None:
    r = _switch(world, "coaching", {"enabled": True, "reference": "D-1"}, who="a_admin")
    assert r["status"] == 403
    got = world.client.get(f"{_base(world)}/enablement", headers=world.auth("a_admin"))
    assert got.status_code == 200
    states = {s["feature"]: s for s in got.json()}
    assert states["recording"]["enabled"] and states["recording"]["reference"] == "DECL-TEST"
    assert not states["coaching"]["enabled"] and not states["listening"]["enabled"]
    foreign = f"/api/v1/tenants/{world.tenant_b}/enablement"
    assert world.client.get(foreign, headers=world.auth("a_admin")).status_code == 404
    assert _switch(world, "recordings", {"enabled": False})["status"] == 422


def test_the_operator_page_switches_features_with_a_form(world: World) -> None:
    operator = portal_session(world, "operator")
    csrf = operator.headers.pop("X-CSRF-Token")
    page = operator.get(f"/operator/tenants/{world.tenant_a}")
    assert page.status_code == 200 and 'data-feature="coaching"' in page.text
    form = f"/operator/tenants/{world.tenant_a}/enablement/coaching"
    r = operator.post(form, data={"csrf_token": csrf, "enabled": "true"}, follow_redirects=False)
    assert r.status_code == 303 and "error=declaration-required" in r.headers["location"]
    r = operator.post(
        form,
        data={"csrf_token": csrf, "enabled": "true", "reference": "SIGNED-9"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert _policy(world).coaching_enabled
    forged = operator.post(
        form, data={"csrf_token": "wrong", "enabled": "false"}, follow_redirects=False
    )
    assert forged.status_code in (403, 404) and _policy(world).coaching_enabled
    assert "SIGNED-9" in operator.get(f"/operator/tenants/{world.tenant_a}").text


def test_support_enables_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CALLVAULT_DATA_DIR", raising=False)
    url = f"sqlite:///{tmp_path / 'callvault.db'}"
    migrate(url)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        tenant_id = create_tenant(session, "Alpha", ["alpha.example"], []).id
        session.commit()
    base = ["admin", "enable", "--data-dir", str(tmp_path), "Alpha", "recording"]
    assert main(base) == 2  # no reference: refused
    assert "declaration" in capsys.readouterr().err
    assert main([*base, "--reference", "DECL-77"]) == 0
    with make_sessionmaker(engine)() as session:
        assert Directory.load(session).policy(tenant_id).recording_enabled
        event = session.scalar(select(AuditEvent).where(AuditEvent.tenant_id == tenant_id))
        assert event is not None and event.actor == "cli"
        assert event.details["reference"] == "DECL-77"
    engine.dispose()
