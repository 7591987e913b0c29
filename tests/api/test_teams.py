"""Teams: admins build them, leads are listeners, other tenants' teams do not exist."""

from __future__ import annotations

from sqlalchemy import select

from callvault.db.models import AuditEvent, TeamMember
from tests.api.conftest import World


def _teams(world: World, tenant: int) -> str:
    return f"/api/v1/tenants/{tenant}/teams"


def test_team_lifecycle(world: World) -> None:
    h = world.auth("a_admin")
    base = _teams(world, world.tenant_a)
    r = world.client.post(base, json={"name": "  Service   desk "}, headers=h)
    assert r.status_code == 201, r.text
    team = r.json()
    assert team["name"] == "Service desk" and team["members"] == []
    dup = world.client.post(base, json={"name": "Service desk"}, headers=h)
    assert dup.status_code == 409 and dup.json()["error"]["id"] == "team-exists"
    lead = world.client.put(
        f"{base}/{team['id']}/members/{world.users['a_listener']}",
        json={"is_lead": True},
        headers=h,
    )
    assert lead.status_code == 200, lead.text
    member = world.client.put(
        f"{base}/{team['id']}/members/{world.users['a_user']}", json={}, headers=h
    )
    assert {(m["name"], m["is_lead"]) for m in member.json()["members"]} == {
        ("Lisa", True),
        ("Anna", False),
    }
    not_listener = world.client.put(
        f"{base}/{team['id']}/members/{world.users['a_user']}", json={"is_lead": True}, headers=h
    )
    assert not_listener.status_code == 422
    assert not_listener.json()["error"]["id"] == "lead-must-be-listener"
    listed = world.client.get(base, headers=h).json()
    assert [t["name"] for t in listed] == ["Service desk"]
    r = world.client.delete(f"{base}/{team['id']}/members/{world.users['a_user']}", headers=h)
    assert r.status_code == 204
    r = world.client.delete(f"{base}/{team['id']}/members/{world.users['a_user']}", headers=h)
    assert r.status_code == 404
    assert world.client.delete(f"{base}/{team['id']}", headers=h).status_code == 204
    assert world.client.get(base, headers=h).json() == []
    with world.sessions() as session:
        assert session.scalars(select(TeamMember)).all() == []
        actions = set(session.scalars(select(AuditEvent.action)))
    assert {"team.create", "team.member", "team.member-remove", "team.delete"} <= actions


def test_teams_are_tenant_scoped(world: World) -> None:
    b_team = world.client.post(
        _teams(world, world.tenant_b), json={"name": "Beta team"}, headers=world.auth("b_admin")
    ).json()
    a = world.auth("a_admin")
    base = _teams(world, world.tenant_a)
    # B's team id under A's path, and B's user in A's team: both do not exist
    assert world.client.delete(f"{base}/{b_team['id']}", headers=a).status_code == 404
    assert (
        world.client.put(
            f"{base}/{b_team['id']}/members/{world.users['a_user']}", json={}, headers=a
        ).status_code
        == 404
    )
    a_team = world.client.post(base, json={"name": "Alpha team"}, headers=a).json()
    r = world.client.put(
        f"{base}/{a_team['id']}/members/{world.users['b_user']}", json={}, headers=a
    )
    assert r.status_code == 404 and r.json()["error"]["id"] == "user-not-found"
    assert world.client.get(_teams(world, world.tenant_b), headers=a).status_code == 404
    assert world.client.get(base, headers=world.auth("a_listener")).status_code == 403
