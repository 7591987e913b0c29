"""What a tenant may claim (SPEC 2): users inside the tenant's own domains and numbers.

Regression tests for issue 7, finding 1 (A's admin gave a user B's extension
AOR and B's main number, and B's calls were stored in tenant A), finding 4
(probing other tenants through 409 answers) and the user PATCH of finding 5.
Runs on the API suite's two-tenant world (tests/api/conftest.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callvault.admin import create_tenant, create_user
from callvault.cli import main
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import AuditEvent, Tenant, User, UserAor, UserNumber, WebSession
from callvault.tenants.claims import OutsideTenant
from callvault.tenants.directory import Directory
from tests.api import conftest as api
from tests.api.conftest import World, give_login, portal_session

world = api.world  # the API suite's fixture, used here as well

B_MAIN = "+31202220000"  # tenant B's main number (tests/api/conftest.py)


def _users(world: World, tenant: int) -> str:
    return f"/api/v1/tenants/{tenant}/users"


def _create(world: World, who: str, tenant: int, **body: Any) -> tuple[int, dict[str, Any]]:
    r = world.client.post(
        _users(world, tenant), json={"name": "Mallory", **body}, headers=world.auth(who)
    )
    return r.status_code, r.json()


def _directory(world: World) -> Directory:
    with world.sessions() as session:
        return Directory.load(session)


def test_admin_cannot_give_a_user_another_tenants_aor_or_number(world: World) -> None:
    status, body = _create(world, "a_admin", world.tenant_a, aors=["201@beta.example"])
    assert status == 422 and body["error"]["id"] == "outside-tenant", body
    status, body = _create(world, "a_admin", world.tenant_a, numbers=[B_MAIN])
    assert status == 422 and body["error"]["id"] == "outside-tenant", body
    # the operator is held to the same rule: a user lies inside its own tenant
    status, body = _create(world, "operator", world.tenant_a, aors=["201@beta.example"])
    assert status == 422 and body["error"]["id"] == "outside-tenant", body
    # and inside the tenant's own domain and numbers it works
    status, body = _create(
        world, "a_admin", world.tenant_a, aors=["201@alpha.example"], numbers=["+31201110000"]
    )
    assert status == 201, body
    match = _directory(world).match("sip:201@beta.example")
    assert match.tenant_id == world.tenant_b and match.user is None


def test_cli_helpers_follow_the_same_rules(world: World) -> None:
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        assert tenant is not None
        with pytest.raises(OutsideTenant):
            create_user(session, tenant, "Mallory", aors=["201@beta.example"])
        with pytest.raises(OutsideTenant):
            create_user(session, tenant, "Mallory", numbers=[B_MAIN])


def test_the_directory_resolves_the_tenant_before_the_user(world: World) -> None:
    """Rows written before the check existed cannot pull B's calls into A."""
    with world.sessions() as session:
        b_user = session.get(User, world.users["b_user"])
        assert b_user is not None
        b_user.aors = [UserAor(tenant_id=world.tenant_b, aor="bob@beta.example")]
        squatter = User(tenant_id=world.tenant_a, name="Squatter", recorded=True)
        squatter.aors = [UserAor(tenant_id=world.tenant_a, aor="201@beta.example")]
        squatter.numbers = [UserNumber(tenant_id=world.tenant_a, number=B_MAIN)]
        session.add(squatter)
        session.commit()
    directory = _directory(world)
    for aor in ("sip:201@beta.example", f"sip:{B_MAIN}@sbc.example", "tel:020 222 0000"):
        match = directory.match(aor)
        assert match.tenant_id == world.tenant_b, aor
        assert match.user is None, aor
    # B's own user by AOR and by extension within B's domain; A's user by extension in A's
    assert directory.match("sip:bob@beta.example").user is not None
    assert directory.match("sip:101@beta.example").user == directory.user(world.users["b_user"])
    assert directory.match("sip:101@alpha.example").user == directory.user(world.users["a_user"])
    # one call, two tenants: each party on its own
    assert directory.match("sip:101@alpha.example").tenant_id == world.tenant_a


def test_a_stale_foreign_row_gives_way_to_the_rightful_tenant(world: World) -> None:
    with world.sessions() as session:
        squatter = User(tenant_id=world.tenant_a, name="Squatter")
        squatter.aors = [UserAor(tenant_id=world.tenant_a, aor="201@beta.example")]
        session.add(squatter)
        session.commit()
        squatter_id = squatter.id
    status, body = _create(world, "b_admin", world.tenant_b, aors=["201@beta.example"])
    assert status == 201, body
    with world.sessions() as session:
        assert not session.scalars(select(UserAor).where(UserAor.user_id == squatter_id)).all()
        released = session.scalar(
            select(AuditEvent).where(AuditEvent.action == "user.address-released")
        )
    assert released is not None and released.tenant_id == world.tenant_a
    assert _directory(world).match("sip:201@beta.example").user is not None


def test_operator_refuses_overlapping_claims_with_a_clear_error(world: World) -> None:
    h = world.auth("operator")
    a = f"/api/v1/tenants/{world.tenant_a}"
    r = world.client.patch(a, json={"blocks": ["+3120222*"]}, headers=h)  # holds B's number
    assert r.status_code == 409 and "Beta" in r.json()["error"]["message"], r.text
    r = world.client.patch(a, json={"numbers": ["+31201110000", B_MAIN]}, headers=h)
    assert r.status_code == 409 and "Beta" in r.json()["error"]["message"], r.text
    r = world.client.patch(
        f"/api/v1/tenants/{world.tenant_b}", json={"blocks": ["+312022*"]}, headers=h
    )
    assert r.status_code == 200 and r.json()["blocks"] == ["+312022*"], r.text
    for body in (
        {"name": "Gamma", "blocks": ["+31202*"]},  # covers B's block
        {"name": "Gamma", "blocks": ["+3120222000*"]},  # inside B's block
        {"name": "Gamma", "numbers": ["+31202212345"]},  # a number in B's block
        {"name": "Gamma", "domains": ["beta.example"]},
    ):
        r = world.client.post("/api/v1/tenants", json=body, headers=h)
        assert r.status_code == 409, (body, r.text)
        assert "Beta" in r.json()["error"]["message"]
    r = world.client.post("/api/v1/tenants", json={"name": "Gamma", "blocks": ["+3*"]}, headers=h)
    assert r.status_code == 422  # far too wide to be a customer's block
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_b)
        assert tenant is not None and [b.prefix for b in tenant.blocks] == ["+312022"]


def test_users_claim_numbers_inside_the_tenants_block(world: World) -> None:
    h = world.auth("operator")
    r = world.client.patch(
        f"/api/v1/tenants/{world.tenant_a}", json={"blocks": ["+31 20 111*"]}, headers=h
    )
    assert r.status_code == 200 and r.json()["blocks"] == ["+3120111*"], r.text
    status, body = _create(world, "a_admin", world.tenant_a, numbers=["+31201110042"])
    assert status == 201, body
    status, body = _create(world, "a_admin", world.tenant_a, numbers=["+31201120042"])
    assert status == 422 and body["error"]["id"] == "outside-tenant"
    directory = _directory(world)
    match = directory.match("sip:+31201110042@sbc.provider.example")
    assert match.tenant_id == world.tenant_a and match.user is not None
    assert match.user.name == "Mallory" and match.number == "+31201110042"
    match = directory.match("sip:0201110099@sbc.provider.example")  # national form, no user
    assert match.tenant_id == world.tenant_a and match.user is None
    # the block cannot be taken away while a user's number lies in it
    r = world.client.patch(f"/api/v1/tenants/{world.tenant_a}", json={"blocks": []}, headers=h)
    assert r.status_code == 409 and r.json()["error"]["id"] == "tenant-claim-in-use"


def test_probing_other_tenants_gets_the_answer_of_any_invalid_input(world: World) -> None:
    """An admin cannot tell another tenant's AOR, number or login from other bad input."""
    with world.sessions() as session:
        tenant_b = session.get(Tenant, world.tenant_b)
        assert tenant_b is not None
        create_user(session, tenant_b, "Bea", aors=["bea@beta.example"], numbers=[B_MAIN])
        bob = session.get(User, world.users["b_user"])
        assert bob is not None
        bob.login = "bob.beta"
        session.commit()

    def answer(**body: Any) -> tuple[int, str, str]:
        status, out = _create(world, "a_admin", world.tenant_a, **body)
        return status, out["error"]["id"], out["error"]["message"]

    taken_aor = answer(aors=["bea@beta.example"])  # B's user has it
    free_aor = answer(aors=["nobody@beta.example"])  # in B's domain, unused
    no_tenant = answer(aors=["bea@nowhere.example"])  # nobody's domain
    assert taken_aor[:2] == free_aor[:2] == no_tenant[:2] == (422, "outside-tenant")
    assert taken_aor[2].replace("bea@beta", "x") == free_aor[2].replace("nobody@beta", "x")
    assert free_aor[2].replace("beta", "nowhere") == no_tenant[2].replace("bea@", "nobody@")
    taken_number = answer(numbers=[B_MAIN])
    free_number = answer(numbers=["+31209999999"])
    assert taken_number[:2] == free_number[:2] == (422, "outside-tenant")
    assert taken_number[2].replace(B_MAIN, "x") == free_number[2].replace("+31209999999", "x")
    # logins are unique across tenants: B's login and A's own look the same
    url = f"{_users(world, world.tenant_a)}/{world.users['a_user']}/credentials"
    give_login(world, "a_colleague")
    answers = []
    for login in ("bob.beta", "a-colleague"):
        r = world.client.put(
            url, json={"login": login, "password": "long enough pw"}, headers=world.auth("a_admin")
        )
        answers.append((r.status_code, r.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 409 and answers[0][1]["error"]["id"] == "login-unavailable"


def test_admin_switches_a_user_off_and_changes_its_role(world: World) -> None:
    url = f"{_users(world, world.tenant_a)}/{world.users['a_user']}"
    anna = portal_session(world, "a_user")
    assert anna.get("/api/v1/me").status_code == 200
    r = world.client.patch(
        url, json={"active": False, "role": "listener"}, headers=world.auth("a_admin")
    )
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False and r.json()["role"] == "listener"
    with world.sessions() as session:
        assert not session.scalars(
            select(WebSession).where(WebSession.user_id == world.users["a_user"])
        ).all()
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "user.change"))
    assert event is not None and event.tenant_id == world.tenant_a
    assert event.details["active"] is False and event.details["old"] == {
        "active": True,
        "role": "user",
    }
    # an admin cannot lock themselves out; a foreign user is not found; users cannot
    own = f"{_users(world, world.tenant_a)}/{world.users['a_admin']}"
    r = world.client.patch(own, json={"role": "user"}, headers=world.auth("a_admin"))
    assert r.status_code == 409 and r.json()["error"]["id"] == "own-account"
    foreign = f"{_users(world, world.tenant_a)}/{world.users['b_user']}"
    r = world.client.patch(foreign, json={"active": False}, headers=world.auth("a_admin"))
    assert r.status_code == 404
    r = world.client.patch(url, json={"active": True}, headers=world.auth("a_colleague"))
    assert r.status_code == 403
    r = world.client.patch(url, json={"role": "operator"}, headers=world.auth("operator"))
    assert r.status_code == 422  # the operator role is not a tenant's
    r = world.client.patch(url, json={"active": True}, headers=world.auth("operator"))
    assert r.status_code == 200 and r.json()["active"] is True
    # the API tokens the deactivation revoked stay revoked after reactivation
    assert world.client.get("/api/v1/me", headers=world.auth("a_user")).status_code == 401


def test_the_cli_adds_users_under_the_same_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CALLVAULT_DATA_DIR", raising=False)
    url = f"sqlite:///{tmp_path / 'callvault.db'}"
    migrate(url)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        create_tenant(session, "Alpha", ["alpha.example"], ["+31201110000"])
        create_tenant(session, "Beta", ["beta.example"], [B_MAIN])
        session.commit()
    engine.dispose()
    base = ["admin", "add-user", "--data-dir", str(tmp_path), "Alpha", "Mallory"]
    assert main([*base, "--aor", "201@beta.example"]) == 2
    assert "not within this tenant's SIP domains" in capsys.readouterr().err
    assert main([*base, "--number", B_MAIN]) == 2
    assert main([*base, "--aor", "sip:mal@Alpha.example", "--extension", "201"]) == 0
    assert "added" in capsys.readouterr().out
