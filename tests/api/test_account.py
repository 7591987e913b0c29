"""Portal sessions: login cookie, CSRF, logout, expiry, throttling, passwords, /me."""

from __future__ import annotations

import hashlib

from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from callvault.db.models import AuditEvent, Tenant, User, WebSession
from callvault.portal.passwords import verify_password
from tests.api.conftest import PASSWORD, Clock, World, give_login

SESSION = "/api/v1/session"


def _login(client: TestClient, login: str, password: str = PASSWORD) -> dict[str, object]:
    r = client.post(SESSION, json={"login": login, "password": password})
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def test_login_sets_a_hardened_cookie_and_stores_only_its_hash(
    world: World, browser: TestClient
) -> None:
    login = give_login(world, "a_user")
    r = browser.post(SESSION, json={"login": login.upper(), "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["role"] == "user" and body["name"] == "Anna"
    assert body["tenant_id"] == world.tenant_a and body["user_id"] == world.users["a_user"]
    assert body["language"] == "nl" and len(body["csrf_token"]) >= 40
    cookie = r.headers["set-cookie"]
    for part in ("cv_session=", "HttpOnly", "Secure", "SameSite=lax", "Path=/", "Max-Age=43200"):
        assert part in cookie, part
    token = browser.cookies["cv_session"]
    assert len(token) >= 43  # 256 bits, url-safe base64
    with world.sessions() as session:
        row = session.scalars(select(WebSession)).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in (row.csrf_token, row.token_hash)
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "login.success"))
        assert event is not None and event.tenant_id == world.tenant_a
    me = browser.get(SESSION).json()
    assert me["csrf_token"] == body["csrf_token"] and me["user_id"] == world.users["a_user"]


def test_operator_logs_in_in_english(world: World, browser: TestClient) -> None:
    body = _login(browser, give_login(world, "operator"))
    assert body["role"] == "operator" and body["language"] == "en" and body["tenant_id"] is None
    assert browser.get("/api/v1/tenants").status_code == 200


def test_unsafe_cookie_requests_need_the_csrf_token(world: World, browser: TestClient) -> None:
    csrf = str(_login(browser, give_login(world, "a_admin"))["csrf_token"])
    url = f"/api/v1/tenants/{world.tenant_a}/teams"
    missing = browser.post(url, json={"name": "Sales"})
    assert missing.status_code == 403 and missing.json()["error"]["id"] == "csrf-failed"
    wrong = browser.post(url, json={"name": "Sales"}, headers={"X-CSRF-Token": csrf[:-1] + "x"})
    assert wrong.status_code == 403 and wrong.json()["error"]["id"] == "csrf-failed"
    assert browser.get(url).status_code == 200  # safe methods need none
    ok = browser.post(url, json={"name": "Sales"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201, ok.text
    # a JSON body's csrf_token is not a form field: not read
    r = browser.request("DELETE", SESSION, json={"csrf_token": csrf})
    assert r.status_code == 403
    # an HTML form post may carry it as a field
    r = browser.request("DELETE", SESSION, data={"csrf_token": csrf})
    assert r.status_code == 204


def test_bearer_tokens_need_no_csrf(world: World) -> None:
    r = world.client.post(
        f"/api/v1/tenants/{world.tenant_a}/teams", json={"name": "X"}, headers=world.auth("a_admin")
    )
    assert r.status_code == 201


def test_logout_and_expiry_end_the_session(world: World, browser: TestClient, clock: Clock) -> None:
    login = give_login(world, "a_user")
    csrf = str(_login(browser, login)["csrf_token"])
    token = browser.cookies["cv_session"]
    assert browser.request("DELETE", SESSION, headers={"X-CSRF-Token": csrf}).status_code == 204
    with world.sessions() as session:
        assert session.scalars(select(WebSession)).all() == []
    stale = world.client.get(SESSION, headers={"Cookie": f"cv_session={token}"})
    assert stale.status_code == 401 and stale.json()["error"]["id"] == "session-expired"

    _login(browser, login)
    assert browser.get(SESSION).status_code == 200
    clock.advance(hours=11, minutes=59)
    assert browser.get(SESSION).status_code == 200
    clock.advance(minutes=2)
    assert browser.get(SESSION).status_code == 401


def test_unknown_login_and_wrong_password_look_the_same(world: World) -> None:
    login = give_login(world, "a_user")
    unknown = world.client.post(SESSION, json={"login": "nobody", "password": PASSWORD})
    wrong = world.client.post(SESSION, json={"login": login, "password": "wrong password!"})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert unknown.json()["error"]["id"] == "login-failed"
    with world.sessions() as session:
        failed = {
            e.actor: e.tenant_id
            for e in session.scalars(select(AuditEvent).where(AuditEvent.action == "login.failed"))
        }
    assert failed == {"login:nobody": None, f"login:{login}": world.tenant_a}


def test_throttling_per_login_then_recovery(world: World, clock: Clock) -> None:
    login = give_login(world, "a_user")
    for _ in range(5):
        r = world.client.post(SESSION, json={"login": login, "password": "wrong password!"})
        assert r.status_code == 401
    r = world.client.post(SESSION, json={"login": login, "password": PASSWORD})
    assert r.status_code == 429 and r.json()["error"]["id"] == "login-throttled"
    retry = int(r.headers["retry-after"])
    assert retry == 2  # backoff: the first wait is short, each further failure doubles it
    clock.advance(seconds=1)
    assert (
        world.client.post(SESSION, json={"login": login, "password": PASSWORD}).status_code == 429
    )
    clock.advance(seconds=1)
    assert (
        world.client.post(SESSION, json={"login": login, "password": PASSWORD}).status_code == 200
    )


def test_throttling_per_address(world: World, clock: Clock) -> None:
    for n in range(20):
        r = world.client.post(SESSION, json={"login": f"guess{n}", "password": "x" * 10})
        assert r.status_code == 401
    login = give_login(world, "a_admin")
    r = world.client.post(SESSION, json={"login": login, "password": PASSWORD})
    assert r.status_code == 429 and "retry-after" in r.headers
    clock.advance(minutes=15, seconds=1)
    assert (
        world.client.post(SESSION, json={"login": login, "password": PASSWORD}).status_code == 200
    )


def test_password_change(world: World, browser: TestClient) -> None:
    login = give_login(world, "a_user")
    other = TestClient(world.app, base_url="https://testserver")
    _login(other, login)
    csrf = {"X-CSRF-Token": str(_login(browser, login)["csrf_token"])}
    url = f"{SESSION}/password"
    wrong = browser.post(
        url, json={"old": "not it at all", "new": "a new long password"}, headers=csrf
    )
    assert wrong.status_code == 403 and wrong.json()["error"]["id"] == "password-wrong"
    short = browser.post(url, json={"old": PASSWORD, "new": "short"}, headers=csrf)
    assert short.status_code == 422 and short.json()["error"]["id"] == "password-too-short"
    assert "10" in short.json()["error"]["message"]
    ok = browser.post(url, json={"old": PASSWORD, "new": "a new long password"}, headers=csrf)
    assert ok.status_code == 204
    assert browser.get(SESSION).status_code == 200  # this session goes on
    assert other.get(SESSION).status_code == 401  # the others end
    assert (
        world.client.post(SESSION, json={"login": login, "password": PASSWORD}).status_code == 401
    )
    _login(world.client, login, "a new long password")


def test_a_weak_hash_is_replaced_at_login(world: World) -> None:
    login = give_login(world, "a_user")
    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    with world.sessions() as session:
        user = session.get(User, world.users["a_user"])
        assert user is not None
        user.password_hash = weak
        session.commit()
    _login(world.client, login)
    with world.sessions() as session:
        user = session.get(User, world.users["a_user"])
        assert user is not None and user.password_hash != weak
        assert verify_password(user.password_hash, PASSWORD).ok


def test_suspended_tenant_cannot_log_in(world: World) -> None:
    login = give_login(world, "a_user")
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        assert tenant is not None
        tenant.suspended = True
        session.commit()
    r = world.client.post(SESSION, json={"login": login, "password": PASSWORD})
    # the same answer as a wrong password: a login cannot be probed for its tenant's state
    wrong = world.client.post(SESSION, json={"login": login, "password": "wrong password!"})
    assert r.status_code == wrong.status_code == 401 and r.json() == wrong.json()
    assert r.json()["error"]["id"] == "login-failed"


def test_credentials_are_set_by_admin_or_operator(world: World) -> None:
    base = f"/api/v1/tenants/{world.tenant_a}/users"
    url = f"{base}/{world.users['a_user']}/credentials"
    body = {"login": "Anna.A", "password": "long enough pw"}
    assert world.client.put(url, json=body, headers=world.auth("a_user")).status_code == 403
    assert world.client.put(url, json=body, headers=world.auth("b_admin")).status_code == 404
    r = world.client.put(url, json=body, headers=world.auth("a_admin"))
    assert r.status_code == 204, r.text
    assert _login(world.client, "anna.a", "long enough pw")["user_id"] == world.users["a_user"]
    taken = world.client.put(
        f"{base}/{world.users['a_colleague']}/credentials",
        json={"login": "anna.a", "password": "long enough pw"},
        headers=world.auth("operator"),
    )
    assert taken.status_code == 409 and taken.json()["error"]["id"] == "login-unavailable"
    op_login = give_login(world, "operator")
    taken = world.client.put(
        url, json={"login": op_login, "password": "long enough pw"}, headers=world.auth("a_admin")
    )
    assert taken.status_code == 409
    short = world.client.put(
        url, json={"login": "anna2", "password": "short"}, headers=world.auth("a_admin")
    )
    assert short.status_code == 422 and short.json()["error"]["id"] == "password-too-short"
    foreign = world.client.put(
        f"{base}/{world.users['b_user']}/credentials", json=body, headers=world.auth("operator")
    )
    assert foreign.status_code == 404  # b_user is not a user of tenant A
    with world.sessions() as session:
        actions = session.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "user.credentials")
        ).all()
    assert actions and all("password" not in str(d) for d in actions)


def test_me_and_language(world: World, browser: TestClient) -> None:
    me = world.client.get("/api/v1/me", headers=world.auth("a_user")).json()
    assert me["language"] == "nl" and me["own_language"] is None and me["tenant_name"] == "Alpha"
    r = world.client.patch("/api/v1/me", json={"language": "de"}, headers=world.auth("a_user"))
    assert r.status_code == 200 and r.json()["language"] == "de"
    assert r.json()["own_language"] == "de"
    bad = world.client.patch("/api/v1/me", json={"language": "fr"}, headers=world.auth("a_user"))
    assert bad.status_code == 422
    assert _login(browser, give_login(world, "a_user"))["language"] == "de"
    back = world.client.patch("/api/v1/me", json={"language": None}, headers=world.auth("a_user"))
    assert back.json()["language"] == "nl"
    op = world.client.patch("/api/v1/me", json={"language": "de"}, headers=world.auth("operator"))
    assert op.status_code == 403
    assert world.client.get("/api/v1/me", headers=world.auth("operator")).json()["language"] == "en"


def test_optional_principal_and_session_csrf_for_pages(world: World, browser: TestClient) -> None:
    from starlette.requests import Request

    from callvault.portal.auth import optional_principal, session_csrf

    def request(cookie: str | None) -> Request:
        headers = [(b"cookie", f"cv_session={cookie}".encode())] if cookie else []
        return Request({"type": "http", "method": "GET", "headers": headers, "app": browser.app})

    assert optional_principal(request(None)) is None
    assert session_csrf(request(None)) is None
    assert optional_principal(request("forged")) is None
    csrf = _login(browser, give_login(world, "a_listener"))["csrf_token"]
    token = browser.cookies["cv_session"]
    principal = optional_principal(request(token))
    assert principal is not None and principal.role == "listener"
    assert principal.user_id == world.users["a_listener"]
    assert session_csrf(request(token)) == csrf
