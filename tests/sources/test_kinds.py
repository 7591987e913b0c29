"""A source's kind (SPEC section 2): siprec, or pbx / trunk for the B2BUA, through every door."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from callvault.cli import main
from callvault.db.models import AuditEvent
from callvault.errors import InvalidInput
from callvault.sources.registry import SourceRegistry
from callvault.sources.store import SourceSpec, add_source, change_source, register_loopback_source
from tests.api import conftest as api
from tests.api.conftest import World
from tests.sources.test_cli import _registry
from tests.sources.test_cli import data_dir as data_dir

world = api.world

URL = "/api/v1/sources"


def test_the_kind_is_stored_loaded_and_changed(world: World) -> None:
    with world.sessions() as session:
        legacy = register_loopback_source(session, [world.tenant_a])
        pbx = add_source(
            session,
            SourceSpec(
                name="pbx", networks=["192.0.2.0/24"], tenant_ids=[world.tenant_a], kind="pbx"
            ),
            created_by="test",
        )
        session.commit()
        registry = SourceRegistry.load(session)
        legacy_source, pbx_source = registry.get(legacy.id), registry.get(pbx.id)
        assert legacy_source is not None and pbx_source is not None
        assert (legacy_source.kind, legacy_source.is_b2bua_leg) == ("siprec", False)
        assert (pbx_source.kind, pbx_source.is_b2bua_leg) == ("pbx", True)
        assert change_source(session, pbx, {"kind": "trunk"}) == {
            "kind": {"old": "pbx", "new": "trunk"}
        }
        with pytest.raises(InvalidInput) as caught:
            change_source(session, pbx, {"kind": "sbc"})
        assert caught.value.error_id == "source-kind-invalid"
        with pytest.raises(InvalidInput):
            add_source(session, SourceSpec(name="x", networks=["10.0.0.0/8"], kind="PBX"),
                       created_by="test")  # fmt: skip


def test_the_api_creates_reads_and_changes_the_kind(world: World) -> None:
    op = world.auth("operator")
    body = {"name": "trunk-1", "networks": ["198.51.100.0/24"], "tenant_ids": [world.tenant_a]}
    r = world.client.post(URL, json={**body, "kind": "trunk"}, headers=op)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["kind"] == "trunk"
    assert world.client.get(f"{URL}/{created['id']}", headers=op).json()["kind"] == "trunk"
    r = world.client.post(URL, json={**body, "name": "sbc", "networks": ["192.0.2.0/24"]},
                          headers=op)  # fmt: skip
    assert r.status_code == 201 and r.json()["kind"] == "siprec"  # the default: SIPREC

    r = world.client.patch(f"{URL}/{created['id']}", json={"kind": "pbx"}, headers=op)
    assert r.status_code == 200 and r.json()["kind"] == "pbx"
    for bad in ("sbc", "", "PBX", 1):
        r = world.client.post(URL, json={**body, "name": "x", "kind": bad}, headers=op)
        assert r.status_code == 422 and r.json()["error"]["id"] == "invalid-input", r.text
        assert "kind" in r.json()["error"]["message"]
    r = world.client.post(URL, json={**body, "name": "y", "kind": "pbx"},
                          headers=world.auth("a_admin"))  # fmt: skip
    assert r.status_code == 403 and r.json()["error"]["id"] == "role-required"

    with world.sessions() as session:
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action.startswith("source."))
            .order_by(AuditEvent.id)
        ).all()
    assert [(e.action, e.details["kind"]) for e in events] == [
        ("source.create", "trunk"),
        ("source.create", "siprec"),
        ("source.change", "pbx"),
    ]
    assert events[-1].details["old"] == {"kind": "trunk"}


def test_the_cli_adds_and_lists_the_kind(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--data-dir", str(data_dir)]
    add = ["admin", "source", "add", "pbx-1", "--kind", "pbx", "--network", "192.0.2.0/24"]
    assert main([*add, "--tenant", "Acme", *where]) == 0
    registry, events = _registry(data_dir)
    (source,) = registry.sources
    assert source.kind == "pbx"
    assert events[-1].details["kind"] == "pbx"
    capsys.readouterr()
    assert main(["admin", "source", "list", "--json", *where]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "pbx"
    assert main(["admin", "source", "list", *where]) == 0
    assert "\tpbx\t" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main(["admin", "source", "add", "x", "--kind", "sbc", "--network", "10.0.0.0/8", *where])
    assert exited.value.code == 2
    assert "invalid choice: 'sbc'" in capsys.readouterr().err
