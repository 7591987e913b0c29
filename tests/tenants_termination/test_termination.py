"""Tenant termination (issue 8 section 5, HIP): the operator's two steps, a receipt with
the SHA-256 of each destroyed file, refused while a legal hold is active; a wrong token
or name is a precise 4xx and loses nothing."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import func, select

from callvault.db.models import AuditEvent, Call, LegalHold, Recording, Tenant, User
from tests.api.conftest import Clock, World


def _ask(world: World, tenant_id: int) -> dict[str, object]:
    r = world.client.post(
        f"/api/v1/operator/tenants/{tenant_id}/termination", headers=world.auth("operator")
    )
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


def _confirm(world: World, tenant_id: int, token: object, name: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = world.client.post(
        f"/api/v1/operator/tenants/{tenant_id}/termination/confirm",
        json={"token": token, "name": name},
        headers=world.auth("operator"),
    )
    return r.status_code, r.json()


def _count(world: World, model: Any, tenant_id: int) -> int:
    with world.sessions() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(model).where(model.tenant_id == tenant_id)
            )
            or 0
        )


def _intact(world: World, tenant_id: int, recordings: int = 2) -> None:
    assert _count(world, Recording, tenant_id) == recordings
    assert _count(world, User, tenant_id) >= 2
    with world.sessions() as session:
        for row in session.scalars(select(Recording).where(Recording.tenant_id == tenant_id)):
            assert (world.blobs.root / row.blob_key).exists()


def test_only_the_operator_asks_and_a_foreign_or_unknown_tenant_is_404(world: World) -> None:
    url = f"/api/v1/operator/tenants/{world.tenant_a}/termination"
    assert world.client.post(url, headers=world.auth("a_admin")).status_code == 403
    r = world.client.post(
        url + "/confirm", json={"token": "x", "name": "Alpha"}, headers=world.auth("a_admin")
    )
    assert r.status_code == 403
    r = world.client.post(
        "/api/v1/operator/tenants/99999/termination", headers=world.auth("operator")
    )
    assert (r.status_code, r.json()["error"]["id"]) == (404, "tenant-not-found")
    _intact(world, world.tenant_a)


def test_wrong_token_wrong_name_expired_token_and_a_hold_refuse_and_lose_nothing(
    world: World, clock: Clock
) -> None:
    asked = _ask(world, world.tenant_a)
    assert asked["will_destroy"] == {
        "users": 4,
        "calls": 2,
        "recordings": 2,
        "audio_files": 2,
        "audio_bytes": 2 * len(world.audio),
        "export_files": 0,
        "export_bytes": 0,
    }
    token = asked["confirmation_token"]
    token_b = _ask(world, world.tenant_b)["confirmation_token"]

    assert _confirm(world, world.tenant_a, "term_not-a-token", "Alpha")[1]["error"]["id"] == (
        "termination-token-invalid"
    )
    status, body = _confirm(world, world.tenant_a, token_b, "Alpha")  # B's token for A
    assert (status, body["error"]["id"]) == (422, "termination-token-invalid")
    status, body = _confirm(world, world.tenant_a, token, "alpha")  # the exact name only
    assert (status, body["error"]["id"]) == (422, "termination-name-mismatch")

    with world.sessions() as session:
        hold = LegalHold(
            tenant_id=world.tenant_a,
            scope="user",
            user_id=world.users["a_user"],
            reason="litigation",
            placed_by="operator:1",
        )
        session.add(hold)
        session.commit()
        hold_id = hold.id
    status, body = _confirm(world, world.tenant_a, token, "Alpha")
    assert (status, body["error"]["id"]) == (409, "legal-hold-active")
    r = world.client.post(
        f"/api/v1/operator/tenants/{world.tenant_a}/termination", headers=world.auth("operator")
    )
    assert (r.status_code, r.json()["error"]["id"]) == (409, "legal-hold-active")
    with world.sessions() as session:
        lifted = session.get(LegalHold, hold_id)
        assert lifted is not None
        lifted.lifted_at, lifted.lifted_by = clock.now, "operator:1"
        session.commit()

    clock.advance(minutes=10, seconds=1)
    status, body = _confirm(world, world.tenant_a, token, "Alpha")
    assert (status, body["error"]["id"]) == (422, "termination-token-expired")
    _intact(world, world.tenant_a)
    _intact(world, world.tenant_b, recordings=1)


def test_confirmed_termination_destroys_everything_and_keeps_a_receipt(
    world: World, clock: Clock
) -> None:
    reloads: list[int] = []
    world.app.state.context.on_directory_change = lambda: reloads.append(1)
    with world.sessions() as session:
        blob_keys = list(
            session.scalars(select(Recording.blob_key).where(Recording.tenant_id == world.tenant_a))
        )
    first = _ask(world, world.tenant_a)["confirmation_token"]
    token = _ask(world, world.tenant_a)["confirmation_token"]  # asking again voids the first
    assert _confirm(world, world.tenant_a, first, "Alpha")[1]["error"]["id"] == (
        "termination-token-invalid"
    )
    status, body = _confirm(world, world.tenant_a, token, "Alpha")
    assert status == 200, body
    assert reloads == [1]
    receipt = body["receipt"]
    assert (receipt["kind"], receipt["tenant_id"], receipt["tenant_name"]) == (
        "termination",
        None,
        "Alpha",
    )
    assert receipt["counts"]["recordings"] == 2 and receipt["counts"]["users"] == 4
    assert receipt["actor"].startswith("operator:") and receipt["finished_at"]

    with world.sessions() as session:
        assert session.get(Tenant, world.tenant_a) is None
    for model in (Recording, Call, User, AuditEvent):
        assert _count(world, model, world.tenant_a) == 0, model
    assert not any((world.blobs.root / key).exists() for key in blob_keys)
    _intact(world, world.tenant_b, recordings=1)

    # the receipt: downloadable by the operator, its lines the destroyed files' SHA-256
    r = world.client.get(receipt["download"], headers=world.auth("operator"))
    assert r.status_code == 200
    assert (
        hashlib.sha256(r.content).hexdigest() == receipt["sha256"] == r.headers["x-content-sha256"]
    )
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert sorted(line["blob_key"] for line in lines) == sorted(blob_keys)
    assert {line["sha256"] for line in lines} == {hashlib.sha256(world.audio).hexdigest()}
    listed = world.client.get(
        "/api/v1/operator/deletion-receipts?kind=termination", headers=world.auth("operator")
    ).json()["items"]
    assert [item["id"] for item in listed] == [receipt["id"]]
    assert world.client.get(receipt["download"], headers=world.auth("b_admin")).status_code == 403

    # audited in the operator's audit (no tenant: the tenant's own rows are gone)
    with world.sessions() as session:
        actions = session.execute(
            select(AuditEvent.action, AuditEvent.tenant_id, AuditEvent.details)
            .where(AuditEvent.action.startswith("tenant.terminat"))
            .order_by(AuditEvent.id)
        ).all()
    assert [(a, t) for a, t, _ in actions] == [
        ("tenant.termination.request", None),
        ("tenant.termination.request", None),
        ("tenant.terminate", None),
    ]
    assert actions[-1][2]["receipt_id"] == receipt["id"]
    # the token is spent with the tenant
    status, body = _confirm(world, world.tenant_a, token, "Alpha")
    assert (status, body["error"]["id"]) == (404, "tenant-not-found")
