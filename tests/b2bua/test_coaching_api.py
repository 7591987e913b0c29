"""Silent coaching's settings in the API (SPEC 7): who may coach, and the tenant's
option "supervisor in the recording" (off by default); both audited and seen by
the directory the B2BUA decides with. LiveCenter's coach button without a
B2BUA in the process (the portal alone) refuses with its error id.
"""

from __future__ import annotations

from sqlalchemy import select

from callvault.admin import accept_legal_notice, enable_feature
from callvault.db.models import AuditEvent, Tenant, User
from callvault.tenants.directory import Directory
from tests.api.conftest import World


def _audits(world: World, action: str) -> list[AuditEvent]:
    with world.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_an_admin_grants_the_coaching_permission_audited(world: World) -> None:
    url = f"/api/v1/tenants/{world.tenant_a}/users/{world.users['a_listener']}"
    r = world.client.patch(url, json={"can_coach": True}, headers=world.auth("a_admin"))
    assert r.status_code == 200, r.text
    assert r.json()["can_coach"] is True
    (row,) = _audits(world, "user.change")
    assert row.details["can_coach"] is True and row.details["old"]["can_coach"] is False
    with world.sessions() as session:
        known = Directory.load(session).user(world.users["a_listener"])
    assert known is not None and (known.can_coach, known.role) == (True, "listener")
    # a listener cannot grant it (not even to themself); another tenant's admin sees 404
    mine = world.client.patch(url, json={"can_coach": False}, headers=world.auth("a_listener"))
    assert mine.status_code == 403
    foreign = world.client.patch(url, json={"can_coach": False}, headers=world.auth("b_admin"))
    assert foreign.status_code == 404


def test_supervisor_in_the_recording_is_a_tenant_option_off_by_default(world: World) -> None:
    with world.sessions() as session:  # settings change after the legal notice only
        tenant, admin = (
            session.get(Tenant, world.tenant_a),
            session.get(User, world.users["a_admin"]),
        )
        assert tenant is not None and admin is not None
        accept_legal_notice(session, tenant, admin)
        session.commit()
    url = f"/api/v1/tenants/{world.tenant_a}/recording-settings"
    assert (
        world.client.get(url, headers=world.auth("a_admin")).json()["supervisor_in_recording"]
        is False
    )
    r = world.client.patch(
        url, json={"supervisor_in_recording": True}, headers=world.auth("a_admin")
    )
    assert r.status_code == 200, r.text
    assert r.json()["supervisor_in_recording"] is True
    (row,) = _audits(world, "settings.recording")
    assert row.details["supervisor_in_recording"] is True
    with world.sessions() as session:
        directory = Directory.load(session)
    assert directory.policy(world.tenant_a).supervisor_in_recording is True
    assert directory.policy(world.tenant_b).supervisor_in_recording is False


def test_the_coach_button_needs_a_running_call(world: World) -> None:
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        assert tenant is not None
        enable_feature(session, tenant, "coaching", reference="DECL-C")
        session.commit()
    url = f"/api/v1/tenants/{world.tenant_a}/live/calls/0badc0de/coach"
    r = world.client.post(url, headers=world.auth("a_admin"))
    assert r.status_code == 404, r.text  # no such call in progress
    assert r.json()["error"]["id"] == "live-call-not-found"
    assert world.client.post(url, headers=world.auth("a_user")).status_code == 403
