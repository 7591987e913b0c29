"""Minute quotas (issue 8 section 2, HIP): over the plan's quota the purge deletes the
oldest recordings first (reason ``quota``), never one under a legal hold, until the tenant
is within it; ``quota_usage`` says how much is used."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from callvault.db.models import LegalHold, Plan, Tenant
from callvault.retention.purge import purge
from callvault.retention.quota import quota_usage
from tests.retention.purge_world import NOW, PurgeWorld, make_world

DAY = timedelta(days=1)


@pytest.fixture
def world(tmp_path: Path) -> PurgeWorld:
    world = make_world(tmp_path)
    with world.sessions() as session:
        session.add(
            Plan(
                name="two-minutes",
                retention_min_days=365,
                retention_max_days=365,
                retention_default_days=365,
                minute_quota=2,
            )
        )
        tenant = session.get(Tenant, world.tenants["a"])
        assert tenant is not None
        tenant.plan = "two-minutes"
        session.commit()
    return world


def test_over_the_quota_the_oldest_go_first_holds_stay_and_usage_is_shown(
    world: PurgeWorld,
) -> None:
    year = 365 * DAY
    oldest_held = world.recording("a", "anna", started=-50 * DAY, expires=year, duration_s=60)
    old = world.recording("a", "anna", started=-40 * DAY, expires=year, duration_s=60)
    older = world.recording("a", "arie", started=-45 * DAY, expires=year, duration_s=30)
    recent = world.recording("a", "anna", started=-DAY, expires=year, duration_s=60)
    newest = world.recording("a", "arie", started=-DAY / 2, expires=year, duration_s=30)
    other_tenant = world.recording("b", "bob", started=-90 * DAY, expires=year, duration_s=600)
    with world.sessions() as session:
        session.add(
            LegalHold(
                tenant_id=world.tenants["a"],
                scope="recording",
                recording_id=oldest_held,
                reason="dispute",
                placed_by="user:1",
            )
        )
        session.commit()
        assert quota_usage(session, world.tenants["a"], NOW) == (4.0, 2)
        assert quota_usage(session, world.tenants["b"], NOW) == (10.0, None)

    result = purge(world.sessions, world.blobs, NOW)

    # 4 minutes against 2: the held minute stays; "older" (30 s), "old" (60 s) and "recent"
    # (60 s) go, oldest first, until at most 2 minutes are left
    assert result["quota"] == 3 and result["expired"] == 0
    for gone in (older, old, recent):
        assert world.deleted_reason(gone) == "quota" and not world.has_blob(gone)
    for kept in (oldest_held, newest, other_tenant):
        assert world.deleted_reason(kept) is None and world.has_blob(kept)
    with world.sessions() as session:
        assert quota_usage(session, world.tenants["a"], NOW) == (1.5, 2)
    [receipt] = world.receipts()
    assert receipt.counts["quota"] == 3 and receipt.tenant_id == world.tenants["a"]
    assert [line["recording_id"] for line in world.receipt_lines(receipt)] == [older, old, recent]
    assert purge(world.sessions, world.blobs, NOW)["quota"] == 0
    assert len(world.receipts()) == 1


def test_a_tenant_hold_keeps_everything_over_the_quota(world: PurgeWorld) -> None:
    kept = [
        world.recording("a", "anna", started=-n * DAY, expires=None, duration_s=120) for n in (1, 2)
    ]
    with world.sessions() as session:
        session.add(
            LegalHold(tenant_id=world.tenants["a"], scope="tenant", reason="audit", placed_by="x")
        )
        session.commit()
    assert purge(world.sessions, world.blobs, NOW)["quota"] == 0
    assert all(world.has_blob(i) and world.deleted_reason(i) is None for i in kept)
