"""Usage for billing per tenant and month (issue 8 section 5): API, CSV, page."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from callvault.db.models import AuditEvent, Recording, Tenant
from tests.api.conftest import Clock, World, seed_recording


def _usage(world: World, who: str, month: str | None = None, tenant: int | None = None) -> dict:  # type: ignore[type-arg]
    params = {"month": month} if month else {}
    url = f"/api/v1/tenants/{tenant or world.tenant_a}/usage"
    r = world.client.get(url, params=params, headers=world.auth(who))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_a_tenants_month_in_its_own_time_zone(world: World, clock: Clock) -> None:
    clock.now = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)
    with world.sessions() as session:
        # 23:30 UTC on 30 November is 00:30 on 1 December in Amsterdam
        late = seed_recording(
            session, world.blobs, world.tenant_a, world.users["a_user"], b"x" * 10, 9
        )
        session.execute(
            update(Recording)
            .where(Recording.id == late)
            .values(started_at=datetime(2026, 11, 30, 23, 30, tzinfo=UTC), duration_ms=90_000)
        )
        session.commit()
    november = _usage(world, "operator", "2026-11")
    assert (november["recorded_users"], november["recordings"]) == (2, 2)
    assert november["recorded_minutes"] == 1.0
    assert november["period_start"] == "2026-10-31T23:00:00+00:00"
    assert november["period_end"] == "2026-11-30T23:00:00+00:00"
    december = _usage(world, "a_admin", "2026-12")  # the tenant's admin reads its own
    assert (december["recorded_users"], december["recordings"]) == (1, 1)
    assert december["recorded_minutes"] == 1.5
    assert _usage(world, "a_admin") == december  # default: this month on the tenant's clock
    # bytes stored: now, whatever the month, available audio only
    assert november["bytes_stored"] == december["bytes_stored"] == 2 * len(world.audio) + 10
    with world.sessions() as session:
        session.execute(
            update(Recording)
            .where(Recording.id == world.recording_a)
            .values(expires_at=clock.now - timedelta(seconds=1))
        )
        session.commit()
    assert _usage(world, "operator", "2026-11")["bytes_stored"] == len(world.audio) + 10
    assert november["plan"] == "standard" and november["retention_days"] == 7
    assert november["minute_quota"] is None and november["timezone"] == "Europe/Amsterdam"


def test_who_may_read_usage_and_bad_months(world: World, clock: Clock) -> None:
    clock.now = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)
    url = f"/api/v1/tenants/{world.tenant_a}/usage"
    for who, status in (("a_listener", 403), ("a_user", 403), ("b_admin", 404)):
        r = world.client.get(url, headers=world.auth(who))
        assert r.status_code == status, (who, r.text)
    for who in ("a_admin", "a_user"):
        assert (
            world.client.get("/api/v1/operator/usage", headers=world.auth(who)).status_code == 403
        )
        r = world.client.get("/api/v1/operator/usage.csv", headers=world.auth(who))
        assert r.status_code == 403
    for month, error in (
        ("2026-13", "invalid-month"),
        ("2026-1", "invalid-month"),
        ("november", "invalid-month"),
        ("2027-01", "month-in-future"),
    ):
        r = world.client.get(url, params={"month": month}, headers=world.auth("operator"))
        assert r.status_code == 422 and r.json()["error"]["id"] == error, (month, r.text)
        r = world.client.get(
            "/api/v1/operator/usage", params={"month": month}, headers=world.auth("operator")
        )
        assert r.status_code == 422 and r.json()["error"]["id"] == error, (month, r.text)


def test_operator_usage_of_every_tenant_and_its_csv(world: World, clock: Clock) -> None:
    clock.now = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)
    with world.sessions() as session:
        beta = session.get(Tenant, world.tenant_b)
        assert beta is not None
        beta.name = '=HYPERLINK("http://evil.example")'
        session.commit()
    r = world.client.get(
        "/api/v1/operator/usage", params={"month": "2026-11"}, headers=world.auth("operator")
    )
    assert r.status_code == 200, r.text
    rows = {t["tenant_id"]: t for t in r.json()["tenants"]}
    assert rows[world.tenant_a]["recordings"] == 2 and rows[world.tenant_b]["recordings"] == 1
    r = world.client.get(
        "/api/v1/operator/usage.csv", params={"month": "2026-11"}, headers=world.auth("operator")
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "callvault-usage-2026-11.csv" in r.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(r.text)))
    by_id = {int(row["tenant_id"]): row for row in table}
    assert by_id[world.tenant_a]["recorded_minutes"] == "1.00"
    assert by_id[world.tenant_a]["bytes_stored"] == str(2 * len(world.audio))
    assert by_id[world.tenant_b]["tenant"].startswith("'=")  # never run as a formula
    with world.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "usage.export")).one()
    assert event.details["month"] == "2026-11"


def test_operator_usage_page_lists_tenants_with_a_csv_link(world: World, clock: Clock) -> None:
    from tests.api.conftest import portal_session

    clock.now = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)
    page = portal_session(world, "operator").get("/operator/usage?month=2026-11")
    assert page.status_code == 200, page.text
    assert "Alpha" in page.text and "Beta" in page.text
    assert 'href="/api/v1/operator/usage.csv?month=2026-11"' in page.text
    assert 'type="month"' in page.text
    bad = portal_session(world, "operator").get("/operator/usage?month=2031-01")
    assert bad.status_code == 200 and 'id="usage-error"' in bad.text
