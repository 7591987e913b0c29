"""The tenant's time zone (issue 8 section 5): set by the operator and the admin,
validated, used by Reports' days and times; the API speaks UTC with +00:00."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from callvault.admin import accept_legal_notice
from callvault.db.models import AuditEvent, Call, Recording, Tenant, User
from tests.api.conftest import Clock, World, portal_session


def test_operator_and_admin_set_a_valid_time_zone(world: World) -> None:
    op = world.auth("operator")
    r = world.client.post(
        "/api/v1/tenants", json={"name": "Gamma", "timezone": "Europe/Berlin"}, headers=op
    )
    assert r.status_code == 201 and r.json()["timezone"] == "Europe/Berlin", r.text
    assert (
        world.client.post("/api/v1/tenants", json={"name": "Delta"}, headers=op).json()["timezone"]
        == "Europe/Amsterdam"
    )
    for bad in ("Mars/Olympus", "../../etc/passwd", "localtime", "", "UTC+1"):
        r = world.client.post("/api/v1/tenants", json={"name": "Eps", "timezone": bad}, headers=op)
        assert r.status_code == 422 and r.json()["error"]["id"] == "invalid-timezone", bad
    url = f"/api/v1/tenants/{world.tenant_a}"
    r = world.client.patch(url, json={"timezone": "America/New_York"}, headers=op)
    assert r.status_code == 200 and r.json()["timezone"] == "America/New_York", r.text
    r = world.client.patch(url, json={"timezone": "Nowhere/City"}, headers=op)
    assert r.status_code == 422 and r.json()["error"]["id"] == "invalid-timezone"
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        admin = session.get(User, world.users["a_admin"])
        assert tenant is not None and admin is not None
        accept_legal_notice(session, tenant, admin)
        session.commit()
    settings = f"/api/v1/tenants/{world.tenant_a}/recording-settings"
    r = world.client.patch(
        settings, json={"timezone": "Europe/Amsterdam"}, headers=world.auth("a_admin")
    )
    assert r.status_code == 200 and r.json()["timezone"] == "Europe/Amsterdam", r.text
    r = world.client.patch(settings, json={"timezone": "Moon/Base"}, headers=world.auth("a_admin"))
    assert r.status_code == 422 and r.json()["error"]["id"] == "invalid-timezone"
    with world.sessions() as session:
        actions = [
            e.details.get("timezone")
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
            if e.action in ("tenant.change", "settings.recording")
        ]
    assert actions == ["America/New_York", "Europe/Amsterdam"]


def test_a_call_at_2330_utc_is_on_the_next_local_day(world: World, clock: Clock) -> None:
    clock.now = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)
    late = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # 00:30 on 1 December in Amsterdam
    with world.sessions() as session:
        session.execute(update(Call).where(Call.id == world.recording_a).values(started_at=late))
        session.execute(
            update(Recording).where(Recording.id == world.recording_a).values(started_at=late)
        )
        session.commit()
    api = world.client.get(
        f"/api/v1/tenants/{world.tenant_a}/calls", headers=world.auth("a_admin")
    ).json()
    row = next(c for c in api["items"] if c["id"] == world.recording_a)
    assert row["started_at"] == "2026-11-30T23:30:00+00:00"  # the API: UTC, explicit offset
    assert row["audio"] == "available" and row["audio_url"]
    admin = portal_session(world, "a_admin")
    december = admin.get("/reports/calls?from=2026-12-01&to=2026-12-01")
    assert december.status_code == 200
    assert f'data-call="{world.recording_a}"' in december.text
    assert "2026-12-01 00:30:00" in december.text  # the tenant's clock
    november = admin.get("/reports/calls?from=2026-11-30&to=2026-11-30")
    assert f'data-call="{world.recording_a}"' not in november.text
    whole = admin.get("/reports/calls?from=2026-11-01&to=2026-11-30")
    assert f'data-call="{world.recording_a}"' not in whole.text
    assert f'data-call="{world.recording_a2}"' in whole.text
    page = admin.get(f"/recordings/{world.recording_a}")
    assert page.status_code == 200 and "2026-12-01 00:30:00" in page.text


def test_an_expired_recording_lists_without_play_or_download(world: World, clock: Clock) -> None:
    clock.now = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)
    with world.sessions() as session:
        session.execute(
            update(Recording)
            .where(Recording.id == world.recording_a)
            .values(expires_at=datetime(2026, 12, 1, tzinfo=UTC))
        )
        session.commit()
    api = world.client.get(
        f"/api/v1/tenants/{world.tenant_a}/calls", headers=world.auth("a_admin")
    ).json()
    rows = {c["id"]: c for c in api["items"]}
    expired = rows[world.recording_a]
    assert expired["audio"] == "expired" and expired["recording_ids"] == [world.recording_a]
    assert expired["audio_url"] is None and expired["download_url"] is None
    assert rows[world.recording_a2]["audio"] == "available"
    page = portal_session(world, "a_admin").get("/reports/calls")
    row = page.text.split(f'data-call="{world.recording_a}"')[1].split("</tr>")[0]
    assert 'data-audio="expired"' in row and "data-play" not in row and "download" not in row
    other = page.text.split(f'data-call="{world.recording_a2}"')[1].split("</tr>")[0]
    assert "data-play" in other
