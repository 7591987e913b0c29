"""Issue 8's routes across tenants and roles: termination, export files, deletion receipts.

The access matrix (``tests/api/test_matrix.py``) gives each route's status per
role; these tests go one step further on the three that destroy or hand out
files: a tenant's admin holding a valid termination token and typing the exact
name is still refused and nothing is lost (the token still works for the
operator); another tenant's export file or deletion receipt is 404 whichever
tenant the path names, and no download is audited. Runs on the API suite's
two-tenant world, against the live app.
"""

from __future__ import annotations

from sqlalchemy import func, select

from callvault.db.models import AuditEvent, Recording, Tenant
from tests.api import conftest as api
from tests.api.conftest import World, portal_session
from tests.api.test_matrix import deletion_receipt, ready_export, termination_token

world = api.world


def _audited(world: World, action: str) -> int:
    with world.sessions() as session:
        return int(
            session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == action))
            or 0
        )


def _recordings(world: World, tenant_id: int) -> int:
    with world.sessions() as session:
        return int(
            session.scalar(select(func.count(Recording.id)).where(Recording.tenant_id == tenant_id))
            or 0
        )


def test_a_tenant_admin_cannot_confirm_its_own_termination(world: World) -> None:
    call = termination_token(world, "a_admin", foreign=False)
    url = f"/api/v1/operator/tenants/{world.tenant_a}/termination/confirm"
    assert call.body["name"] == "Alpha"

    r = world.client.post(url, json=call.body, headers=world.auth("a_admin"))
    assert (r.status_code, r.json()["error"]["id"]) == (403, "role-required")
    # nor through the operator's page, logged in with the CSRF token
    page = portal_session(world, "a_admin")
    r = page.post(
        f"/operator/tenants/{world.tenant_a}/termination/confirm",
        data={"token": call.body["token"], "name": "Alpha"},
    )
    assert r.status_code == 403
    with world.sessions() as session:
        assert session.get(Tenant, world.tenant_a) is not None
    assert _recordings(world, world.tenant_a) == 2
    for row in (world.recording_a, world.recording_a2):
        assert (
            world.client.get(
                f"/api/v1/recordings/{row}/audio", headers=world.auth("a_admin")
            ).status_code
            == 200
        )

    # the refusals consumed nothing: the operator's confirm with that token works
    r = world.client.post(url, json=call.body, headers=world.auth("operator"))
    assert r.status_code == 200, r.text
    with world.sessions() as session:
        assert session.get(Tenant, world.tenant_a) is None
        assert session.get(Tenant, world.tenant_b) is not None


def test_another_tenants_export_file_is_404_under_either_path(world: World) -> None:
    export_id = ready_export(world, foreign=False)
    own = f"/api/v1/tenants/{world.tenant_a}/exports/{export_id}"
    assert world.client.get(f"{own}/files/1", headers=world.auth("a_admin")).status_code == 200
    downloads = _audited(world, "export.download")

    # B's admin: A's path (foreign tenant), then B's own path with A's export id
    for path in (own, f"/api/v1/tenants/{world.tenant_b}/exports/{export_id}"):
        for suffix in ("/files/1", ""):
            r = world.client.get(path + suffix, headers=world.auth("b_admin"))
            assert r.status_code == 404, (path + suffix, r.text)
            assert export_id not in r.text
    r = world.client.get(f"/exports/{export_id}", headers=world.auth("b_admin"))
    assert r.status_code == 404
    listed = world.client.get(
        f"/api/v1/tenants/{world.tenant_b}/exports", headers=world.auth("b_admin")
    )
    assert listed.status_code == 200 and listed.json() == []
    assert _audited(world, "export.download") == downloads


def test_another_tenants_deletion_receipt_is_404_under_either_path(world: World) -> None:
    receipt_id = deletion_receipt(world, foreign=False)
    own = f"/api/v1/tenants/{world.tenant_a}/deletion-receipts/{receipt_id}"
    r = world.client.get(f"{own}/download", headers=world.auth("a_admin"))
    assert r.status_code == 200 and r.headers["x-content-sha256"]
    downloads = _audited(world, "deletion-receipt.download")

    for path in (own, f"/api/v1/tenants/{world.tenant_b}/deletion-receipts/{receipt_id}"):
        for suffix in ("/download", ""):
            r = world.client.get(path + suffix, headers=world.auth("b_admin"))
            assert r.status_code == 404, (path + suffix, r.text)
    # the operator's list of every receipt is not the tenant admin's
    r = world.client.get(
        f"/api/v1/operator/deletion-receipts/{receipt_id}/download", headers=world.auth("b_admin")
    )
    assert r.status_code == 403
    listed = world.client.get(
        f"/api/v1/tenants/{world.tenant_b}/deletion-receipts", headers=world.auth("b_admin")
    )
    assert listed.status_code == 200
    assert receipt_id not in [item["id"] for item in listed.json()["items"]]
    assert _audited(world, "deletion-receipt.download") == downloads
