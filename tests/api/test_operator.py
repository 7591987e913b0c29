"""Operator's tenant controls and usage; the retention / stream-only / delivery settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from callvault.admin import accept_legal_notice
from callvault.db.models import AuditEvent, Tenant, User
from tests.api.conftest import Clock, World


def _accept(world: World) -> None:
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        admin = session.get(User, world.users["a_admin"])
        assert tenant is not None and admin is not None
        accept_legal_notice(session, tenant, admin)
        session.commit()


def _settings(
    world: World, body: dict[str, object], who: str = "a_admin"
) -> tuple[int, dict[str, Any]]:
    r = world.client.patch(
        f"/api/v1/tenants/{world.tenant_a}/recording-settings", json=body, headers=world.auth(who)
    )
    return r.status_code, r.json()


def test_retention_within_plan_and_bulk_needs_180_days(world: World, clock: Clock) -> None:
    _accept(world)
    status, body = _settings(world, {"retention_days": 200})
    assert status == 422 and body["error"]["id"] == "retention-out-of-plan"
    assert "7 to 180" in body["error"]["message"]
    status, body = _settings(world, {"bulk_download": True})
    assert status == 422 and body["error"]["id"] == "bulk-needs-180-days"
    status, body = _settings(world, {"retention_days": 180, "bulk_download": True})
    assert status == 200, body
    assert body["retention_days"] == 180 and body["bulk_download"] is True
    assert body["retention_changed_at"].startswith(clock.now.date().isoformat())
    status, body = _settings(world, {"retention_days": 30})
    assert status == 422 and body["error"]["id"] == "bulk-needs-180-days"
    with world.sessions() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "settings.recording")
        ).one()
    assert event.details["retention_days"] == 180 and event.details["old"]["retention_days"] == 7
    assert event.details["old"]["bulk_download"] is False


def test_stream_only_delivery_and_language(world: World) -> None:
    _accept(world)
    status, body = _settings(
        world, {"stream_only": True, "delivery_email": "rec@alpha.example", "language": "de"}
    )
    assert status == 200, body
    assert body["stream_only"] and body["delivery_email"] == "rec@alpha.example"
    assert body["language"] == "de"
    for bad in ("not-an-address", "a@b", "x@@y.example"):
        status, body = _settings(world, {"delivery_email": bad})
        assert status == 422 and "e-mail" in body["error"]["message"], bad
    status, body = _settings(world, {"delivery_email": ""})
    assert status == 200 and body["delivery_email"] is None
    status, body = _settings(world, {"language": "fr"})
    assert status == 422
    # the tenant's language is the users' default
    me = world.client.get("/api/v1/me", headers=world.auth("a_user")).json()
    assert me["language"] == "de"


def test_operator_changes_plan_and_retention_moves_to_its_default(world: World) -> None:
    _accept(world)
    assert _settings(world, {"retention_days": 180, "bulk_download": True})[0] == 200
    url = f"/api/v1/tenants/{world.tenant_a}"
    r = world.client.patch(url, json={"plan": "30-120"}, headers=world.auth("operator"))
    assert r.status_code == 200, r.text
    body = r.json()
    # 180 lies outside 30-120: the plan's default, and bulk download (180 days) goes off
    assert (body["plan"], body["retention_days"], body["bulk_download"]) == ("30-120", 30, False)
    assert (body["retention_min_days"], body["retention_max_days"]) == (30, 120)
    # the range comes from the plan only
    bad = world.client.patch(url, json={"retention_min_days": 200}, headers=world.auth("operator"))
    assert bad.status_code == 422
    unknown = world.client.patch(url, json={"plan": "gold"}, headers=world.auth("operator"))
    assert unknown.status_code == 404 and unknown.json()["error"]["id"] == "plan-not-found"
    dup = world.client.patch(url, json={"name": "Beta"}, headers=world.auth("operator"))
    assert dup.status_code == 409
    assert (
        world.client.patch(url, json={"plan": "x"}, headers=world.auth("a_admin")).status_code
        == 403
    )
    r = world.client.patch(url, json={"suspended": True}, headers=world.auth("operator"))
    assert r.json()["suspended"] is True
    blocked = world.client.get("/api/v1/me", headers=world.auth("a_user"))
    assert blocked.status_code == 403 and blocked.json()["error"]["id"] == "tenant-suspended"
    with world.sessions() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "tenant.change").order_by(AuditEvent.id)
        ).first()
    assert event is not None and event.details["old"]["retention_days"] == 180


def test_usage_for_billing(world: World) -> None:
    # a month in the tenant's time zone (tests/reports/test_usage.py has the rest)
    r = world.client.get(
        f"/api/v1/tenants/{world.tenant_a}/usage?month=2026-11", headers=world.auth("operator")
    )
    assert r.status_code == 200
    usage = r.json()
    assert usage["recorded_users"] == 2 and usage["recordings"] == 2
    assert usage["recorded_minutes"] == 1.0
    assert usage["bytes_stored"] == 2 * len(world.audio)
    assert usage["retention"] == {
        "plan": "standard",
        "retention_days": 7,
        "retention_min_days": 7,
        "retention_max_days": 180,
    }
    # the tenant's admin reads its own usage; a user does not
    r = world.client.get(f"/api/v1/tenants/{world.tenant_a}/usage", headers=world.auth("a_admin"))
    assert r.status_code == 200
    r = world.client.get(f"/api/v1/tenants/{world.tenant_a}/usage", headers=world.auth("a_user"))
    assert r.status_code == 403


def test_operator_replaces_domains_and_numbers(world: World) -> None:
    url = f"/api/v1/tenants/{world.tenant_a}"
    h = world.auth("operator")
    r = world.client.patch(
        url,
        json={"domains": ["Alpha.Example", "alpha2.example"], "numbers": ["0031201110001"]},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["domains"] == ["alpha.example", "alpha2.example"]
    assert r.json()["numbers"] == ["+31201110001"]
    taken = world.client.patch(url, json={"domains": ["beta.example"]}, headers=h)
    assert taken.status_code == 409 and taken.json()["error"]["id"] == "tenant-exists"
    bad = world.client.patch(url, json={"numbers": ["12ab"]}, headers=h)
    assert bad.status_code == 422 and "E.164" in bad.json()["error"]["message"]
    admin = world.client.patch(url, json={"domains": []}, headers=world.auth("a_admin"))
    assert admin.status_code == 403
    with world.sessions() as session:
        from sqlalchemy import select

        from callvault.db.models import AuditEvent

        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "tenant.change"))
    assert event is not None and event.details["domains"] == ["alpha.example", "alpha2.example"]
