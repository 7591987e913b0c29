"""Roles in separate processes (issue 13): the directory follows changes on every
node, and every process answers /livez, /readyz and /metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text

from callvault.app import Application
from callvault.cli import build_parser
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import DirectoryVersion, Tenant
from callvault.roles.directory import directory_version
from callvault.settings import ALL_ROLES, SettingsError, load_settings
from tests.roles.nodes import a_user_added_on_web_is_seen_by_media, client, node, seeded

TOKEN = "m" * 32
# migration 0023's tables: every one Directory/SourceRegistry/RouteTable.load reads
DIRECTORY_TABLES = (
    "tenants", "tenant_domains", "tenant_numbers", "tenant_number_blocks",
    "tenant_enablements", "legal_acceptances", "announcement_prompts",
    "users", "user_numbers", "user_aors", "user_contacts", "team_members",
    "recording_sources", "recording_source_tenants", "call_routes",
)  # fmt: skip


def test_roles_setting_from_env_cli_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().roles == ALL_ROLES
    monkeypatch.setenv("CALLVAULT_ROLES", "media, worker")
    assert load_settings().roles == {"media", "worker"}
    args = build_parser().parse_args(["serve", "--roles", "web"])
    assert args.roles == "web"
    assert load_settings(roles=args.roles).roles == {"web"}
    with pytest.raises(SettingsError, match="roles"):
        load_settings(roles="media,sip")
    with pytest.raises(SettingsError, match="at least one"):
        load_settings(roles="")


def test_every_directory_table_bumps_the_version(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        with engine.connect() as connection:
            triggers = set(
                connection.execute(text("select name from sqlite_master where type='trigger'"))
                .scalars()
                .all()
            )
        for table in DIRECTORY_TABLES:
            for operation in ("insert", "update", "delete"):
                assert f"directory_changed_{table}_{operation}" in triggers
        before = directory_version(sessions)
        with sessions() as session:  # a change in the same transaction as the bump
            session.add(Tenant(name="Acme"))
            session.commit()
        assert directory_version(sessions) == before + 1
        with sessions() as session:
            tenant = session.scalars(select(Tenant)).one()
            tenant.suspended = True
            session.rollback()  # rolled back: no bump either
            assert session.get(DirectoryVersion, 1) is not None
        assert directory_version(sessions) == before + 1
    finally:
        engine.dispose()


async def test_a_change_on_the_web_node_reaches_the_media_node_within_a_second(
    tmp_path: Path,
) -> None:
    assert await a_user_added_on_web_is_seen_by_media(tmp_path) < 1.0


async def test_a_media_and_worker_node_answers_health_without_the_portal(
    tmp_path: Path,
) -> None:
    async with node(tmp_path, "media,worker", metrics_token=TOKEN) as app:
        assert app.web_role is None
        async with client(app) as http:
            assert (await http.get("/livez")).json() == {"status": "ok"}
            ready = await http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["checks"] == {"database": True, "sip": True, "jobs": True}
            assert (await http.get("/metrics")).status_code == 401
            metrics = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert metrics.status_code == 200
            assert "callvault_active_calls" in metrics.text
            assert (await http.get("/api/v1/tenants")).status_code == 404  # no portal here
            assert (await http.get("/login")).status_code == 404
        line = app.startup_line()
        assert line.startswith("callvault serving (media, worker): SIP udp 127.0.0.1:")
        assert f"health http://127.0.0.1:{app.http_port}" in line


async def test_a_worker_node_is_not_ready_once_its_runner_stopped(tmp_path: Path) -> None:
    async with node(tmp_path, "worker") as app:
        async with client(app) as http:
            ready = await http.get("/readyz")
            assert (ready.status_code, ready.json()["checks"]) == (
                200,
                {"database": True, "jobs": True},
            )
            await app.worker.stop()
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json() == {
                "status": "not ready",
                "checks": {"database": True, "jobs": False},
            }
        with pytest.raises(RuntimeError, match="no media role"):
            app.media  # noqa: B018


async def test_a_media_node_is_not_ready_without_its_database(tmp_path: Path) -> None:
    async with node(tmp_path, "media") as app:
        async with client(app) as http:
            assert (await http.get("/readyz")).json()["checks"] == {
                "database": True,
                "sip": True,
            }
            (tmp_path / "callvault.db").unlink()
            (tmp_path / "callvault.db").mkdir()  # the file is gone: no database to open
            app.engine.dispose()
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"] is False
            assert (await http.get("/livez")).status_code == 200
        (tmp_path / "callvault.db").rmdir()


async def test_one_process_with_all_roles_is_as_before(tmp_path: Path) -> None:
    token, _tenant = await seeded(load_settings(data_dir=tmp_path).db_url)
    async with node(tmp_path, "media,web,worker") as app:
        line = app.startup_line()
        assert line.startswith("callvault serving: SIP udp 127.0.0.1:")
        assert line.endswith(f"; HTTP http://127.0.0.1:{app.http_port}")
        async with client(app, token) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            ready = await http.get("/readyz")
            assert ready.json()["checks"] == {"database": True, "sip": True, "jobs": True}
            assert (await http.get("/api/v1/tenants/1")).status_code == 200


def test_an_application_runs_no_role_before_start(tmp_path: Path) -> None:
    app = Application(load_settings(data_dir=tmp_path, roles="web"))
    assert app.readiness() == {}
    assert app.media_role is None and app.worker_role is None
