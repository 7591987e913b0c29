"""The retention slider, plans and legal holds through the API (issue 8 section 2).

Time is the portal's clock (``app.state.clock``), moved by hand.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from sqlalchemy import inspect, select, text, update

from callvault.db.engine import alembic_config, make_engine, make_sessionmaker
from callvault.db.models import AuditEvent, Plan, Recording, Tenant
from callvault.retention.rule import local_day_start
from tests.api.conftest import Clock, World, seed_recording
from tests.api.test_operator import _accept, _settings

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _seed_ages(world: World) -> dict[str, str]:
    """Recordings of tenant A at -100, -20 and -3 days (kept 180 days) and an unsaved
    Playback one at -2 days (3 days, whatever the slider says)."""
    ids: dict[str, str] = {}
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        assert tenant is not None
        tenant.retention_days = 180
        user = world.users["a_user"]
        for n, (name, days) in enumerate(
            [("old", 100), ("month", 20), ("recent", 3), ("playback", 2)], start=10
        ):
            rid = seed_recording(session, world.blobs, world.tenant_a, user, world.audio, n)
            started = T0 - timedelta(days=days)
            unsaved = name == "playback"
            session.execute(
                update(Recording)
                .where(Recording.id == rid)
                .values(
                    started_at=started,
                    saved=not unsaved,
                    expires_at=started + timedelta(days=3 if unsaved else 180),
                )
            )
            ids[name] = rid
        session.commit()
    return ids


def _reachable(world: World, ids: dict[str, str]) -> set[str]:
    out = set()
    for name, rid in ids.items():
        r = world.client.get(
            f"/api/v1/recordings/{rid}/audio",
            headers={**world.auth("a_admin"), "Range": "bytes=0-1"},
        )
        assert r.status_code in (206, 410), r.text
        if r.status_code == 206:
            out.add(name)
    return out


def test_slider_180_to_30_then_60_ten_days_later(world: World) -> None:
    clock = Clock(T0)
    world.app.state.clock = clock
    _accept(world)
    ids = _seed_ages(world)
    assert _reachable(world, ids) == {"old", "month", "recent", "playback"}

    assert _settings(world, {"retention_days": 30})[0] == 200
    day0 = local_day_start(T0, "Europe/Amsterdam")
    with world.sessions() as session:
        expiry = {
            rid: at.replace(tzinfo=UTC)
            for rid, at in session.execute(select(Recording.id, Recording.expires_at))
            if at is not None
        }
    for name in ("old", "month", "recent"):  # old ones included, counted from today
        assert expiry[ids[name]] == day0 + timedelta(days=30)
    assert expiry[ids["playback"]] == T0 - timedelta(days=2) + timedelta(days=3)

    clock.advance(days=2)  # the unsaved Playback one went after its 3 days
    assert _reachable(world, ids) == {"old", "month", "recent"}

    clock.advance(days=8)  # ten days after the first change: 30 -> 60
    assert _settings(world, {"retention_days": 60})[0] == 200
    clock.advance(days=25)  # 35 days after the first change: 30 would have expired them
    assert _reachable(world, ids) == {"old", "month", "recent"}
    clock.now = local_day_start(T0 + timedelta(days=10), "Europe/Amsterdam") + timedelta(
        days=60, seconds=-1
    )
    assert _reachable(world, ids) == {"old", "month", "recent"}
    clock.advance(seconds=2)
    assert _reachable(world, ids) == set()


def test_a_thousand_recordings_move_in_one_statement(world: World) -> None:
    _accept(world)
    with world.sessions() as session:
        call_id = session.scalar(select(Recording.call_id).where(Recording.id == world.recording_a))
        session.add_all(
            Recording(
                id=f"{n:032x}",
                tenant_id=world.tenant_a,
                call_id=call_id,
                blob_key="k",
                sha256="x",
                size_bytes=1,
                duration_ms=1000,
                channels=2,
                sample_rate=8000,
                started_at=datetime(2026, 1, 1, tzinfo=UTC),
                expires_at=datetime(2026, 1, 8, tzinfo=UTC),
            )
            for n in range(1, 1001)
        )
        session.commit()
    assert _settings(world, {"retention_days": 90})[0] == 200
    with world.sessions() as session:
        expiries = set(
            session.scalars(
                select(Recording.expires_at).where(Recording.tenant_id == world.tenant_a)
            )
        )
    assert len(expiries) == 1  # every one of the tenant's recordings, by the one rule


def test_plans_crud_operator_only_and_narrowing_moves_sliders(world: World) -> None:
    op = world.auth("operator")
    made = world.client.post(
        "/api/v1/plans",
        json={
            "name": "gold",
            "retention_min_days": 60,
            "retention_max_days": 400,
            "retention_default_days": 90,
        },
        headers=op,
    )
    assert made.status_code == 201, made.text
    dup = world.client.post(
        "/api/v1/plans",
        json={"name": "gold", "retention_min_days": 7, "retention_max_days": 8},
        headers=op,
    )
    assert dup.status_code == 409 and dup.json()["error"]["id"] == "plan-exists"
    bad = world.client.post(
        "/api/v1/plans",
        json={"name": "bad", "retention_min_days": 30, "retention_max_days": 8},
        headers=op,
    )
    assert bad.status_code == 422 and bad.json()["error"]["id"] == "retention-range-invalid"
    assert world.client.get("/api/v1/plans", headers=world.auth("a_admin")).status_code == 403
    names = {p["name"] for p in world.client.get("/api/v1/plans", headers=op).json()}
    assert {"standard", "30-120", "fixed-180", "fixed-365", "minutes-100000", "gold"} <= names

    tenant_url = f"/api/v1/tenants/{world.tenant_a}"
    body = world.client.patch(tenant_url, json={"plan": "gold"}, headers=op).json()
    assert (body["plan"], body["retention_days"], body["retention_min_days"]) == ("gold", 90, 60)
    assert world.client.delete("/api/v1/plans/gold", headers=op).status_code == 409
    # within the new range: the slider stays; outside: the default
    narrowed = world.client.patch(
        "/api/v1/plans/gold",
        json={"retention_min_days": 100, "retention_default_days": 120},
        headers=op,
    )
    assert narrowed.status_code == 200, narrowed.text
    settings = world.client.get(
        f"{tenant_url}/recording-settings", headers=world.auth("a_admin")
    ).json()
    assert (settings["retention_days"], settings["retention_min_days"]) == (120, 100)
    with world.sessions() as session:
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert {"plan.create", "plan.change", "tenant.change"} <= set(actions)


def test_quota_plan_shows_minutes_used_to_the_admin(world: World) -> None:
    from tests.api.conftest import portal_session

    _accept(world)
    world.client.patch(
        f"/api/v1/tenants/{world.tenant_a}",
        json={"plan": "minutes-100000"},
        headers=world.auth("operator"),
    )
    page = portal_session(world, "a_admin").get("/settings/recording")
    assert page.status_code == 200
    assert 'id="quota-used"' in page.text and "1.0 / 100000" in page.text  # two 30 s calls


def test_legal_holds_scopes_roles_and_foreign_ids(world: World) -> None:
    url = f"/api/v1/tenants/{world.tenant_a}/legal-holds"
    admin = world.auth("a_admin")
    no_reason = world.client.post(url, json={"scope": "tenant", "reason": ""}, headers=admin)
    assert no_reason.status_code == 422
    foreign_user = world.client.post(
        url,
        json={"scope": "user", "user_id": world.users["b_user"], "reason": "inquiry"},
        headers=admin,
    )
    assert foreign_user.status_code == 404
    foreign_rec = world.client.post(
        url,
        json={"scope": "recording", "recording_id": world.recording_b, "reason": "inquiry"},
        headers=admin,
    )
    assert foreign_rec.status_code == 404
    mixed = world.client.post(
        url,
        json={"scope": "tenant", "user_id": world.users["a_user"], "reason": "inquiry"},
        headers=admin,
    )
    assert mixed.status_code == 422 and mixed.json()["error"]["id"] == "hold-scope-invalid"
    assert (
        world.client.post(
            url, json={"scope": "tenant", "reason": "inquiry"}, headers=world.auth("a_user")
        ).status_code
        == 403
    )
    held = world.client.post(
        url,
        json={"scope": "recording", "recording_id": world.recording_a, "reason": "inquiry"},
        headers=admin,
    )
    assert held.status_code == 201 and held.json()["active"] is True
    hold_id = held.json()["id"]
    # another tenant's admin cannot see or lift it, even under their own path
    b_url = f"/api/v1/tenants/{world.tenant_b}/legal-holds"
    assert (
        world.client.post(
            f"{b_url}/{hold_id}/lift", json={"reason": "nope"}, headers=world.auth("b_admin")
        ).status_code
        == 404
    )
    assert world.client.get(b_url, headers=world.auth("b_admin")).json() == []
    lift = world.client.post(f"{url}/{hold_id}/lift", json={"reason": "done"}, headers=admin)
    assert lift.status_code == 200
    again = world.client.post(f"{url}/{hold_id}/lift", json={"reason": "done"}, headers=admin)
    assert again.status_code == 409 and again.json()["error"]["id"] == "legal-hold-lifted"
    assert world.client.get(f"{url}?active=true", headers=admin).json() == []
    with world.sessions() as session:
        events = list(
            session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("legal-hold.%")))
        )
    assert events == ["legal-hold.place", "legal-hold.lift"]


def test_migration_0009_maps_ranges_to_plans(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    config = alembic_config(url)
    command.upgrade(config, "0008")
    engine = make_engine(url)
    try:
        with engine.begin() as db:
            for n, (plan, low, high) in enumerate(
                [("standard", 7, 180), ("basic", 30, 120), ("standard", 14, 60)]
            ):
                db.execute(
                    text(
                        "INSERT INTO tenants (name, country_code, suspended, created_at, language,"
                        " plan, retention_min_days, retention_max_days, retention_days, "
                        "stream_only, bulk_download, short_code, pause_mode, channels) VALUES "
                        f"('t{n}', '31', 0, '2026-01-01', 'nl', :p, :lo, :hi, :lo, 0, 0, '*1', "
                        "'cut', 'both')"
                    ),
                    {"p": plan, "lo": low, "hi": high},
                )
        command.upgrade(config, "0009")
        columns = {c["name"] for c in inspect(engine).get_columns("tenants")}
        assert not {"retention_min_days", "retention_max_days"} & columns
        with make_sessionmaker(engine)() as session:
            plans = dict(session.execute(select(Tenant.name, Tenant.plan)).all())
            assert plans == {"t0": "standard", "t1": "30-120", "t2": "custom-14-60"}
            custom = session.scalar(select(Plan).where(Plan.name == "custom-14-60"))
            assert custom is not None and custom.retention_default_days == 14
        command.downgrade(config, "0008")
        with engine.begin() as db:
            rows = db.execute(
                text(
                    "SELECT name, retention_min_days, retention_max_days FROM tenants ORDER BY name"
                )
            ).all()
        assert [tuple(r) for r in rows] == [("t0", 7, 180), ("t1", 30, 120), ("t2", 14, 60)]
    finally:
        engine.dispose()


def test_cli_plan_add_list_assign(tmp_path: Path) -> None:
    def cv(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "callvault", "admin", *args, "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    added = cv("plan", "add", "bronze", "--min", "14", "--max", "60")
    assert added.returncode == 0, added.stderr
    assert cv("plan", "add", "bronze", "--min", "14", "--max", "60").returncode == 2
    assert cv("plan", "add", "worse", "--min", "90", "--max", "60").returncode == 2
    listing = cv("plan", "list")
    assert "bronze" in listing.stdout and "14-60 days" in listing.stdout
    assert cv("plan", "assign", "nobody", "bronze").returncode == 2
