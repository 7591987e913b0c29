"""Logins: atomic backoff, no lock-out by a third party, bounded hashing, no probing.

Issue 7, items 2, 3, 8. Found: 19 of 25 concurrent wrong passwords were
checked against a limit of 5; anyone could lock a known login (the
operator's too) for 15 minutes; 20 concurrent logins ran 20 argon2 hashes of
64 MiB at once; a suspended tenant's user answered 403 to the right password
and 401 to a wrong one. Runs on the API suite's world against the live app;
the clock is the app's (``Clock``), never slept on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from callvault.db.models import AuditEvent, LoginThrottle, Tenant, User
from callvault.portal import passwords
from callvault.portal.api import account
from tests.api import conftest as api
from tests.api.conftest import PASSWORD, Clock, World, give_login

world = api.world
clock = api.clock

SESSION = "/api/v1/session"


def _from(world: World, address: str) -> TestClient:
    """A client at ``address`` (the throttle keys on the client address)."""
    return TestClient(world.app, base_url="https://testserver", client=(address, 40000))


def _try(client: TestClient, login: str, password: str) -> int:
    return client.post(SESSION, json={"login": login, "password": password}).status_code


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password check the login route makes, by login-independent marker."""
    seen: list[str] = []
    real = passwords.verify_password

    def counting(stored: str | None, password: str) -> passwords.Verified:
        seen.append(password)
        return real(stored, password)

    monkeypatch.setattr(account, "verify_password", counting)
    return seen


def test_concurrent_wrong_passwords_get_exactly_the_free_checks(
    world: World, clock: Clock, checks: list[str]
) -> None:
    login = give_login(world, "a_user")
    with ThreadPoolExecutor(max_workers=25) as pool:
        statuses = list(
            pool.map(lambda n: _try(world.client, login, f"wrong password {n}"), range(25))
        )
    assert len(checks) == passwords.FREE_PER_PAIR == 5
    assert sorted(statuses) == [401] * 5 + [429] * 20
    with world.sessions() as session:
        row = session.scalars(select(LoginThrottle).where(LoginThrottle.kind == "pair")).one()
    assert row.failures == 5


def test_backoff_doubles_then_caps_and_a_success_forgets(world: World, clock: Clock) -> None:
    login = give_login(world, "a_user")
    for _ in range(passwords.FREE_PER_PAIR):
        assert _try(world.client, login, "wrong password!") == 401
    waits = []
    for _ in range(12):
        r = world.client.post(SESSION, json={"login": login, "password": "wrong password!"})
        assert r.status_code == 429 and r.json()["error"]["id"] == "login-throttled"
        wait = int(r.headers["retry-after"])
        waits.append(wait)
        clock.advance(seconds=wait)
        assert _try(world.client, login, "wrong password!") == 401
    assert waits[:6] == [2, 4, 8, 16, 32, 64]
    assert max(waits) == 15 * 60 and waits[-1] == 15 * 60
    r = world.client.post(SESSION, json={"login": login, "password": PASSWORD})
    clock.advance(seconds=int(r.headers["retry-after"]))
    assert _try(world.client, login, PASSWORD) == 200
    # forgotten: the next typo is free again
    assert _try(world.client, login, "wrong password!") == 401
    assert _try(world.client, login, PASSWORD) == 200


def test_someone_elsewhere_cannot_lock_the_real_user_or_the_operator_out(
    world: World, clock: Clock
) -> None:
    user, operator = give_login(world, "a_admin"), give_login(world, "operator")
    attacker, office = _from(world, "203.0.113.66"), _from(world, "198.51.100.7")
    for login in (user, operator):
        for _ in range(passwords.FREE_PER_PAIR + 3):
            assert _try(attacker, login, "guessing away") in (401, 429)
        assert _try(attacker, login, PASSWORD) == 429  # the attacker waits, even when right
        assert _try(office, login, PASSWORD) == 200  # the real user does not


def test_one_address_guessing_many_logins_backs_off(world: World, clock: Clock) -> None:
    sprayer, office = _from(world, "203.0.113.66"), _from(world, "198.51.100.7")
    for n in range(passwords.FREE_PER_ADDRESS):
        assert _try(sprayer, f"guess{n}", "x" * 10) == 401
    login = give_login(world, "a_user")
    r = sprayer.post(SESSION, json={"login": login, "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["retry-after"]) == 2
    assert _try(office, login, PASSWORD) == 200
    clock.advance(seconds=2)
    assert _try(sprayer, login, PASSWORD) == 200


def test_right_passwords_do_not_count_against_the_address(world: World, clock: Clock) -> None:
    """An office behind one address: many good logins never throttle it."""
    login = give_login(world, "a_user")
    for _ in range(passwords.FREE_PER_ADDRESS + 5):
        assert _try(world.client, login, PASSWORD) == 200


def test_the_throttle_is_audited(world: World, clock: Clock) -> None:
    login = give_login(world, "a_user")
    for _ in range(passwords.FREE_PER_PAIR + 1):
        _try(world.client, login, "wrong password!")
    with world.sessions() as session:
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions.count("login.failed") == 5 and actions.count("login.throttled") == 1


class _CountingHasher:
    """Stands in for argon2: records how many hashes run at once.

    Each call holds its slot until more than ``HASHING_SLOTS`` calls are inside
    at once (the bug: the test then fails at once) or a short while has passed.
    """

    def __init__(self, real: Any) -> None:
        self.real = real
        self.inside = 0
        self.most = 0
        self.calls = 0
        self.changed = threading.Condition()

    def _hold(self) -> None:
        with self.changed:
            self.inside += 1
            self.calls += 1
            self.most = max(self.most, self.inside)
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.inside > passwords.HASHING_SLOTS, timeout=0.05)
            self.inside -= 1

    def verify(self, stored: str, password: str) -> bool:
        self._hold()
        result: bool = self.real.verify(stored, password)
        return result

    def hash(self, password: str) -> str:
        self._hold()
        result: str = self.real.hash(password)
        return result

    def check_needs_rehash(self, stored: str) -> bool:
        result: bool = self.real.check_needs_rehash(stored)
        return result


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> Iterator[_CountingHasher]:
    passwords._dummy_hash()  # made once, outside the count
    counting = _CountingHasher(passwords._hasher)
    monkeypatch.setattr(passwords, "_hasher", counting)
    yield counting


def test_at_most_two_hashes_run_at_once(world: World, hasher: _CountingHasher) -> None:
    login = give_login(world, "a_user")
    hasher.calls = 0

    def attempt(n: int) -> int:
        # known and unknown logins, each from its own address: no backoff in the way
        client = _from(world, f"192.0.2.{n + 1}")
        return _try(client, login if n % 2 else f"nobody{n}", PASSWORD if n % 4 == 1 else "nope")

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(attempt, range(20)))
    assert hasher.calls == 20  # everyone was checked, in turn
    assert hasher.most <= passwords.HASHING_SLOTS
    assert statuses.count(200) == 5 and statuses.count(401) == 15


def test_an_unknown_login_hashes_like_a_wrong_password(
    world: World, hasher: _CountingHasher
) -> None:
    login = give_login(world, "a_user")
    hasher.calls = 0
    assert _try(world.client, "nobody-at-all", "some password") == 401
    assert _try(world.client, login, "some password") == 401
    assert hasher.calls == 2


def _same_answer(attempt: Callable[[str], Any]) -> None:
    right, wrong = attempt(PASSWORD), attempt("wrong password!")
    assert right.status_code == wrong.status_code == 401
    assert right.json() == wrong.json()
    assert right.json()["error"]["id"] == "login-failed"


def test_a_suspended_tenant_or_deactivated_user_cannot_be_probed(world: World) -> None:
    login = give_login(world, "a_user")

    def attempt(password: str) -> Any:
        return world.client.post(SESSION, json={"login": login, "password": password})

    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        assert tenant is not None
        tenant.suspended = True
        session.commit()
    _same_answer(attempt)
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        user = session.get(User, world.users["a_user"])
        assert tenant is not None and user is not None
        tenant.suspended, user.active = False, False
        session.commit()
    _same_answer(attempt)
    with world.sessions() as session:
        refused = session.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "login.failed")
        ).all()
    # the audit log, unlike the answer, says why
    assert {d.get("refused") for d in refused} == {"tenant-suspended", "inactive", None}
