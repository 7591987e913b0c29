"""Termination on PostgreSQL: the database's cascades take everything of the tenant and
nothing of another; the receipt stays, its tenant id gone, its name kept."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from callvault.db.models import Call, DeletionReceipt, LegalHold, Recording, Tenant, User
from callvault.tenants.termination import request_termination, terminate
from tests.retention.purge_world import NOW, make_world
from tests.retention.test_purge import DAY
from tests.retention.test_purge_postgres import _fresh_database


def test_termination_cascades_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    world = make_world(tmp_path, _fresh_database(postgres_url))
    mine = world.recording("a", "anna", started=-DAY, expires=DAY)
    theirs = world.recording("b", "bob", started=-DAY, expires=DAY)
    with world.sessions() as session:
        session.add(  # a lifted hold does not stop it
            LegalHold(
                tenant_id=world.tenants["a"],
                scope="recording",
                recording_id=mine,
                reason="x",
                placed_by="operator:1",
                lifted_at=NOW,
            )
        )
        session.commit()
        tenant = session.get(Tenant, world.tenants["a"])
        assert tenant is not None
        token, _until, summary = request_termination(session, tenant, actor="operator:1", at=NOW)
        assert (summary.recordings, summary.users) == (1, 2)
        receipt = terminate(
            session,
            world.blobs,
            world.tenants["a"],
            token=token,
            name="Alpha",
            actor="operator:1",
            at=NOW,
        )
        assert (receipt.tenant_id, receipt.tenant_name, receipt.counts["files"]) == (
            None,
            "Alpha",
            1,
        )
        for model in (Call, Recording, User):
            count = session.scalar(select(func.count()).select_from(model))
            assert count == 1, model  # tenant B's
        assert session.scalar(select(func.count()).select_from(DeletionReceipt)) == 1
    assert world.has_blob(theirs)
    assert not (world.blobs.root / f"{world.tenants['a']}/{mine}.mp3").exists()
