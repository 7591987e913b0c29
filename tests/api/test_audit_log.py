"""The audit log: admins read their tenant's, the operator everything; paging and filters."""

from __future__ import annotations

from datetime import UTC, datetime

from callvault.db.models import AuditEvent
from tests.api.conftest import World


def _seed(world: World) -> None:
    with world.sessions() as session:
        for n in range(7):
            session.add(
                AuditEvent(
                    tenant_id=world.tenant_a,
                    at=datetime(2026, 1, 1 + n, tzinfo=UTC),
                    actor=f"user:{world.users['a_user']}",
                    action="recording.play" if n % 2 else "settings.recording",
                    target="recording:x",
                    details={"n": n},
                )
            )
        session.add(AuditEvent(tenant_id=world.tenant_b, actor="user:1", action="recording.play"))
        session.add(AuditEvent(tenant_id=None, actor="login:ghost", action="login.failed"))
        session.commit()


def test_admin_pages_through_own_tenant(world: World) -> None:
    _seed(world)
    url = f"/api/v1/tenants/{world.tenant_a}/audit"
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = world.client.get(url, params=params, headers=world.auth("a_admin")).json()
        # the seeding's own rows (the operator enabled recording) are not numbered
        seen += [row["details"]["n"] for row in page["items"] if "n" in row["details"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [6, 5, 4, 3, 2, 1, 0]
    row = world.client.get(url, params={"limit": 1}, headers=world.auth("a_admin")).json()
    item = row["items"][0]
    assert item["actor"] == "Anna" and item["actor_ref"].startswith("user:")
    assert set(item) >= {"at", "actor", "action", "target", "remote_addr", "details"}
    bad = world.client.get(url, params={"cursor": "abc"}, headers=world.auth("a_admin"))
    assert bad.status_code == 422


def test_filters(world: World) -> None:
    _seed(world)
    url = f"/api/v1/tenants/{world.tenant_a}/audit"
    plays = world.client.get(url, params={"action": "recording."}, headers=world.auth("a_admin"))
    assert [r["details"]["n"] for r in plays.json()["items"]] == [5, 3, 1]
    period = world.client.get(
        url,
        params={"since": "2026-01-02T00:00:00Z", "until": "2026-01-04T00:00:00Z"},
        headers=world.auth("a_admin"),
    )
    assert [r["details"]["n"] for r in period.json()["items"]] == [2, 1]
    # LIKE wildcards in the prefix are literal
    none = world.client.get(url, params={"action": "%"}, headers=world.auth("a_admin"))
    assert none.json()["items"] == []


def test_who_reads_what(world: World) -> None:
    _seed(world)
    assert (
        world.client.get(
            f"/api/v1/tenants/{world.tenant_a}/audit", headers=world.auth("a_user")
        ).status_code
        == 403
    )
    assert (
        world.client.get(
            f"/api/v1/tenants/{world.tenant_b}/audit", headers=world.auth("a_admin")
        ).status_code
        == 404
    )
    assert world.client.get("/api/v1/audit", headers=world.auth("a_admin")).status_code == 403
    everything = world.client.get(
        "/api/v1/audit", params={"limit": 500}, headers=world.auth("operator")
    ).json()
    tenants = {r["tenant_id"] for r in everything["items"]}
    assert {world.tenant_a, world.tenant_b, None} <= tenants
    ghost = next(r for r in everything["items"] if r["actor_ref"] == "login:ghost")
    assert ghost["actor"] == "login ghost"
    only_b = world.client.get(
        "/api/v1/audit", params={"tenant_id": world.tenant_b}, headers=world.auth("operator")
    ).json()
    assert {r["tenant_id"] for r in only_b["items"]} == {world.tenant_b}
