"""API tokens and accounts: list, revoke, expire; password change; inactive users (item 5).

Found: tokens could not be listed, revoked or expired, and a password change
left them (and other sessions) valid. Now each account lists and revokes its
own, an admin the tenant's, the operator all (a token beyond one's reach is a
404); a token may expire; a password change revokes them all; a user whose
``active`` is false is refused with any credential. Every change is audited.
Runs on the API suite's world against the live app.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from callvault.db.models import ApiToken, AuditEvent, User
from callvault.portal.auth import hash_token, issue_token
from tests.api import conftest as api
from tests.api.conftest import PASSWORD, Clock, World, give_login

world = api.world
clock = api.clock

TOKENS = "/api/v1/tokens"


def _session(world: World, who: str) -> TestClient:
    client = TestClient(world.app, base_url="https://testserver")
    r = client.post("/api/v1/session", json={"login": give_login(world, who), "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


def _token_id(world: World, who: str) -> int:
    with world.sessions() as session:
        token_id = session.scalar(
            select(ApiToken.id).where(ApiToken.token_hash == hash_token(world.tokens[who]))
        )
    assert token_id is not None
    return token_id


def _ids(rows: list[dict[str, Any]]) -> set[int]:
    return {row["id"] for row in rows}


def _works(world: World, who: str) -> bool:
    return world.client.get("/api/v1/me", headers=world.auth(who)).status_code == 200


def test_who_sees_which_tokens(world: World) -> None:
    own = world.client.get(TOKENS, headers=world.auth("a_user")).json()
    assert _ids(own) == {_token_id(world, "a_user")}
    assert "token_hash" not in own[0] and "token" not in own[0]
    assert own[0]["active"] is True and own[0]["expires_at"] is None
    tenant = world.client.get(
        f"/api/v1/tenants/{world.tenant_a}/tokens", headers=world.auth("a_admin")
    ).json()
    a_users = ("a_admin", "a_user", "a_colleague", "a_listener")
    assert _ids(tenant) == {_token_id(world, who) for who in a_users}
    assert (
        world.client.get(
            f"/api/v1/tenants/{world.tenant_b}/tokens", headers=world.auth("a_admin")
        ).status_code
        == 404
    )
    assert (
        world.client.get(
            f"/api/v1/tenants/{world.tenant_a}/tokens", headers=world.auth("a_user")
        ).status_code
        == 403
    )
    everything = world.client.get("/api/v1/operator/tokens", headers=world.auth("operator")).json()
    assert _ids(everything) == {_token_id(world, who) for who in world.tokens}
    assert (
        world.client.get("/api/v1/operator/tokens", headers=world.auth("a_admin")).status_code
        == 403
    )


def test_revoking_own_tenant_and_foreign_tokens(world: World) -> None:
    def revoke(who: str, whose: str) -> int:
        url = f"{TOKENS}/{_token_id(world, whose)}"
        return world.client.delete(url, headers=world.auth(who)).status_code

    assert revoke("a_user", "a_colleague") == 404  # a colleague's: as if missing
    assert revoke("a_admin", "b_user") == 404  # another tenant's
    assert revoke("a_listener", "a_user") == 404
    assert revoke("a_user", "a_user") == 204
    assert not _works(world, "a_user")
    assert revoke("a_admin", "a_colleague") == 204
    assert not _works(world, "a_colleague")
    assert revoke("operator", "b_user") == 204
    assert not _works(world, "b_user")
    assert _works(world, "a_listener") and _works(world, "b_admin")
    with world.sessions() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "token.revoke")
        ).all()
    assert [(e.actor, e.tenant_id) for e in events] == [
        (f"user:{world.users['a_user']}", world.tenant_a),
        (f"user:{world.users['a_admin']}", world.tenant_a),
        ("operator:1", world.tenant_b),
    ]
    listed = world.client.get(
        f"/api/v1/tenants/{world.tenant_a}/tokens", headers=world.auth("a_admin")
    ).json()
    revoked = {row["id"] for row in listed if not row["active"] and row["revoked_at"]}
    assert revoked == {_token_id(world, "a_user"), _token_id(world, "a_colleague")}


def test_a_token_may_expire(world: World, clock: Clock) -> None:
    r = world.client.post(
        TOKENS, json={"name": "ci", "expires_in_days": 1}, headers=world.auth("a_admin")
    )
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert world.client.get("/api/v1/me", headers=bearer).status_code == 200
    clock.advance(hours=23, minutes=59)
    assert world.client.get("/api/v1/me", headers=bearer).status_code == 200
    clock.advance(minutes=2)
    r = world.client.get("/api/v1/me", headers=bearer)
    assert r.status_code == 401 and r.json()["error"]["id"] == "auth-invalid"
    listed = world.client.get(TOKENS, headers=world.auth("a_admin")).json()
    assert [row["active"] for row in listed if row["name"] == "ci"] == [False]
    with world.sessions() as session:
        created = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "token.create")
        ).one()
    assert created.details["expires_at"] is not None
    # a plain user does not turn a portal session into a lasting credential
    assert (
        world.client.post(TOKENS, json={"name": "x"}, headers=world.auth("a_user")).status_code
        == 403
    )


def test_a_password_change_revokes_every_token_and_other_session(world: World) -> None:
    here, elsewhere = _session(world, "a_user"), _session(world, "a_user")
    with world.sessions() as session:
        user = session.get(User, world.users["a_user"])
        assert user is not None
        second = issue_token(session, "second", user=user)
        session.commit()
    r = here.post("/api/v1/session/password", json={"old": PASSWORD, "new": "a brand new password"})
    assert r.status_code == 204, r.text
    assert here.get("/api/v1/session").status_code == 200
    assert elsewhere.get("/api/v1/session").status_code == 401
    assert not _works(world, "a_user")
    assert (
        world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {second}"}).status_code
        == 401
    )
    assert _works(world, "a_colleague")
    with world.sessions() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "password.change")
        ).one()
    assert event.details == {"sessions_ended": 1, "tokens_revoked": 2}


def test_an_inactive_user_is_refused_with_any_credential(world: World) -> None:
    browser = _session(world, "a_user")
    assert browser.get("/api/v1/session").status_code == 200
    with world.sessions() as session:
        user = session.get(User, world.users["a_user"])
        assert user is not None
        user.active = False
        session.commit()
    r = browser.get("/api/v1/session")
    assert r.status_code == 401 and r.json()["error"]["id"] == "session-expired"
    assert browser.get("/reports/calls", follow_redirects=False).status_code == 303  # to login
    r = world.client.get("/api/v1/me", headers=world.auth("a_user"))
    assert r.status_code == 401 and r.json()["error"]["id"] == "auth-invalid"
    login = give_login(world, "a_user")
    r = world.client.post("/api/v1/session", json={"login": login, "password": PASSWORD})
    assert r.status_code == 401 and r.json()["error"]["id"] == "login-failed"
    assert _works(world, "a_colleague")
