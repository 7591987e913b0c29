"""Users CSV and Users pages across tenants (issue 15): nothing of another tenant, ever.

An admin can neither import into nor export another tenant (404, as for a
tenant that does not exist); a file naming another tenant's addresses gets
the same answer as one naming nobody's; another tenant's user's profile page
is the same 404 as a missing one. The operator may import and export any
tenant. Runs on the API suite's two-tenant world (tests/api/conftest.py).
"""

from __future__ import annotations

from sqlalchemy import select

from callvault.db.models import AuditEvent, User
from tests.api import conftest as api
from tests.api.conftest import World, portal_session

world = api.world  # the API suite's fixture, used here as well

CSV = {"Content-Type": "text/csv"}


def _csv(world: World, tenant: int) -> str:
    return f"/api/v1/tenants/{tenant}/users.csv"


def _state(world: World) -> list[tuple[int, int, str, str | None]]:
    with world.sessions() as session:
        return sorted(
            (u.id, u.tenant_id, u.name, u.extension) for u in session.scalars(select(User))
        )


def test_admin_cannot_import_into_or_export_another_tenant(world: World) -> None:
    before = _state(world)
    text = b"name,extension\nMallory,555\nBert the Evil,100\n"
    for tenant in (world.tenant_b, 999_999):  # another's and nobody's: one answer
        imported = world.client.post(
            _csv(world, tenant), content=text, headers=CSV | world.auth("a_admin")
        )
        assert imported.status_code == 404
        assert imported.json()["error"]["id"] == "tenant-not-found"
        exported = world.client.get(_csv(world, tenant), headers=world.auth("a_admin"))
        assert exported.status_code == 404
        assert "Bert" not in exported.text
    assert _state(world) == before
    with world.sessions() as session:
        assert not list(
            session.scalars(select(AuditEvent).where(AuditEvent.action.like("users.%")))
        )


def test_listener_and_user_cannot_import_or_export(world: World) -> None:
    for who in ("a_listener", "a_user"):
        r = world.client.post(
            _csv(world, world.tenant_a),
            content=b"name,extension\nX,777\n",
            headers=CSV | world.auth(who),
        )
        assert r.status_code == 403
        assert (
            world.client.get(_csv(world, world.tenant_a), headers=world.auth(who)).status_code
            == 403
        )


def test_another_tenants_addresses_get_the_same_answer_as_nobodys(world: World) -> None:
    text = (
        "name,extension,numbers,aors\n"
        "A,600,,someone@beta.example\n"  # tenant B's domain
        "B,601,,someone@nobody.example\n"  # nobody's
        "C,602,+31202220000,\n"  # tenant B's main number
        "D,603,+31209990000,\n"  # nobody's
    )
    r = world.client.post(
        _csv(world, world.tenant_a), content=text.encode(), headers=CSV | world.auth("a_admin")
    )
    assert r.status_code == 422
    reasons = [e["reason"].split(" is not")[1] for e in r.json()["error"]["lines"]]
    assert reasons[0] == reasons[1] and reasons[2] == reasons[3]
    assert "Beta" not in r.text


def test_operator_imports_and_exports_any_tenant(world: World) -> None:
    text = b"name,extension,aors\nOtto,700,otto@beta.example\n"
    r = world.client.post(
        _csv(world, world.tenant_b), content=text, headers=CSV | world.auth("operator")
    )
    assert r.status_code == 200, r.text
    exported = world.client.get(_csv(world, world.tenant_b), headers=world.auth("operator"))
    assert "otto@beta.example" in exported.text and "Anna" not in exported.text
    with world.sessions() as session:
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "users.import"))
        assert event.tenant_id == world.tenant_b and event.actor.startswith("operator:")


def test_import_in_a_portal_session_needs_the_csrf_token(world: World) -> None:
    client = portal_session(world, "a_admin")
    token = client.headers.pop("X-CSRF-Token")
    path = _csv(world, world.tenant_a)
    refused = client.post(path, content=b"name,extension\nCsrf,880\n", headers=CSV)
    assert refused.status_code == 403 and refused.json()["error"]["id"] == "csrf-failed"
    done = client.post(
        path, content=b"name,extension\nCsrf,880\n", headers=CSV | {"X-CSRF-Token": token}
    )
    assert done.status_code == 200, done.text


def test_users_pages_show_own_tenant_only_and_a_foreign_id_is_404(world: World) -> None:
    client = portal_session(world, "a_admin")
    listing = client.get("/users")
    assert listing.status_code == 200
    assert "Anna" in listing.text and "Bob" not in listing.text
    own = client.get(f"/users/{world.users['a_user']}")
    assert own.status_code == 200 and 'id="recording-mode"' in own.text
    foreign = client.get(f"/users/{world.users['b_user']}")
    missing = client.get("/users/999999")
    assert foreign.status_code == missing.status_code == 404
    assert "Bob" not in foreign.text
    for who in ("a_user", "a_listener"):
        assert portal_session(world, who).get("/users").status_code == 403


def test_operator_users_page_for_any_tenant_and_for_nobody_else(world: World) -> None:
    operator = portal_session(world, "operator")
    page = operator.get(f"/operator/tenants/{world.tenant_b}/users")
    assert page.status_code == 200
    assert "Bob" in page.text and "Anna" not in page.text and 'id="csv-import"' in page.text
    assert operator.get("/operator/tenants/999999/users").status_code == 404
    admin = portal_session(world, "a_admin")
    assert admin.get(f"/operator/tenants/{world.tenant_a}/users").status_code == 403
