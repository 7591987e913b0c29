"""Call routes of the B2BUA (issue 10): targets, look-up, validation, REST API and CLI.

The API runs on the API suite's two-tenant world (tests/api/conftest.py):
routes are the operator's, every change is audited and calls the portal's
``on_directory_change`` (where the running server reloads its ``RouteTable``);
a refused change does neither.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.b2bua.routes import (
    InvalidRouteTarget,
    Route,
    RouteTable,
    RouteTarget,
    parse_target,
)
from callvault.cli import main
from callvault.db.models import AuditEvent, CallRoute, RecordingSourceRow
from callvault.sources.store import SourceSpec, add_source, change_source
from tests.api import conftest as api
from tests.api.conftest import World
from tests.sources.test_cli import data_dir as data_dir

world = api.world

URL = "/api/v1/routes"
TARGET = "sip:192.0.2.10:5060;transport=udp"


# -- targets -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,host,port,transport",
    [
        ("sip:192.0.2.10:5070;transport=udp", "192.0.2.10", 5070, "udp"),
        ("sip:192.0.2.10", "192.0.2.10", 5060, "udp"),
        ("sip:192.0.2.10;transport=tcp", "192.0.2.10", 5060, "tcp"),
        ("sip:pbx.example;transport=TLS", "pbx.example", 5061, "tls"),
        ("SIP:PBX.Example.:5080", "pbx.example", 5080, "udp"),
        ("sip:[2001:DB8::1]:5062;transport=tcp", "2001:db8::1", 5062, "tcp"),
        ("sip:[::1]", "::1", 5060, "udp"),
        ("  sip:trunk-1.carrier.example:5060  ", "trunk-1.carrier.example", 5060, "udp"),
    ],
)
def test_targets_parse(text: str, host: str, port: int, transport: str) -> None:
    assert parse_target(text) == RouteTarget(host, port, transport)  # type: ignore[arg-type]


def test_the_canonical_text_parses_to_itself() -> None:
    for text in ("sip:pbx.example;transport=tls", "sip:[2001:db8::1]", "sip:192.0.2.1:7"):
        target = parse_target(text)
        assert parse_target(target.text) == target
    assert parse_target("sip:[2001:db8::1]").text == "sip:[2001:db8::1]:5060;transport=udp"
    assert str(parse_target("sip:pbx.example;transport=tls")) == (
        "sip:pbx.example:5061;transport=tls"
    )


@pytest.mark.parametrize(
    "text,needle",
    [
        ("", "starts with sip:"),
        ("192.0.2.1:5060", "starts with sip:"),
        ("sips:192.0.2.1", "starts with sip:"),
        ("tel:+31201234567", "starts with sip:"),
        ("sip:", "no host"),
        ("sip::5060", "no host"),
        ("sip:alice@192.0.2.1", "no user part"),
        ("sip:192.0.2.1?subject=x", "no headers"),
        ("sip:192.0.2.1:0", "port '0'"),
        ("sip:192.0.2.1:65536", "port '65536'"),
        ("sip:192.0.2.1:50x", "port '50x'"),
        ("sip:192.0.2.1:", "port ''"),
        ("sip:192.0.2.1;transport=sctp", "udp, tcp or tls"),
        ("sip:192.0.2.1;transport=udp;transport=tcp", "twice"),
        ("sip:192.0.2.1;lr", "unknown target parameter 'lr'"),
        ("sip:192.0.2.300", "not an IPv4 address"),
        ("sip:2001:db8::1", "in brackets"),
        ("sip:[2001:db8::1", "unclosed"),
        ("sip:[2001:db8::1]x", "unexpected"),
        ("sip:[pbx.example]", "not an IPv6 address"),
        ("sip:-pbx.example", "not an IP address or a DNS name"),
        ("sip:pbx_1.example", "not an IP address or a DNS name"),
        ("sip:pbx example", "not an IP address or a DNS name"),
        ("sip:" + "a" * 64 + ".example", "not an IP address or a DNS name"),
        ("sip:" + "a." * 130, "at most 255"),
    ],
)
def test_bad_targets_say_why(text: str, needle: str) -> None:
    with pytest.raises(InvalidRouteTarget) as caught:
        parse_target(text)
    assert needle in str(caught.value)
    assert isinstance(caught.value, ValueError)


# -- look-up -------------------------------------------------------------------------------
def route(route_id: int, source_id: int, prefix: str, tenant_id: int = 1) -> Route:
    return Route(route_id, tenant_id, source_id, prefix, parse_target(f"sip:192.0.2.{route_id}"))


def test_the_longest_prefix_of_the_source_wins() -> None:
    table = RouteTable(
        [route(1, 10, ""), route(2, 10, "+31"), route(3, 10, "+3120"), route(4, 11, "+3120123")]
    )
    assert len(table) == 4
    found = table.lookup(10, "+31201234567", "0201234567")
    assert found is not None and found.id == 3
    found = table.lookup(10, "+31301234567", "0301234567")
    assert found is not None and found.id == 2
    found = table.lookup(10, "+4930123", "004930123")
    assert found is not None and found.id == 1  # "" matches any call
    found = table.lookup(11, "+31201234567", "x")
    assert found is not None and found.id == 4  # another source's routes are not this one's
    assert table.lookup(11, "+3120", "+3120123") is None  # the number, not the user part
    assert table.lookup(12, "+31201234567", "x") is None  # a source without routes
    assert RouteTable().lookup(10, None, "100") is None


def test_without_a_number_the_user_part_is_compared() -> None:
    table = RouteTable([route(1, 10, "1"), route(2, 10, "*9"), route(3, 10, "#")])
    for user, expected in (("101", 1), ("*98", 2), ("#31#", 3)):
        found = table.lookup(10, None, user)
        assert found is not None and found.id == expected, user
    assert table.lookup(10, None, "") is None
    assert table.lookup(10, None, "200") is None


# -- store and table from the database -----------------------------------------------------
def _source(session: Session, name: str, kind: str, tenant_ids: list[int]) -> int:
    spec = SourceSpec(name=name, networks=["198.51.100.0/24"], tenant_ids=tenant_ids, kind=kind)
    return add_source(session, spec, created_by="test").id


@pytest.fixture
def sources(world: World) -> dict[str, int]:
    """A PBX of tenant A, a trunk of both tenants, an SBC of A (SIPREC)."""
    with world.sessions() as session:
        ids = {
            "pbx": _source(session, "pbx-a", "pbx", [world.tenant_a]),
            "trunk": _source(session, "trunk", "trunk", [world.tenant_a, world.tenant_b]),
            "sbc": _source(session, "sbc", "siprec", [world.tenant_a]),
        }
        session.commit()
    return ids


@pytest.fixture
def reloads(world: World) -> list[int]:
    calls: list[int] = []
    world.app.state.context.on_directory_change = lambda: calls.append(1)
    return calls


def _audit(world: World) -> list[AuditEvent]:
    with world.sessions() as session:
        query = select(AuditEvent).where(AuditEvent.action.startswith("route."))
        return list(session.scalars(query.order_by(AuditEvent.id)))


def _table(world: World) -> RouteTable:
    with world.sessions() as session:
        return RouteTable.load(session)


def test_the_table_leaves_out_routes_their_source_may_no_longer_use(
    world: World, sources: dict[str, int]
) -> None:
    op = world.auth("operator")
    body = {"tenant_id": world.tenant_a, "source_id": sources["pbx"], "target": TARGET}
    assert world.client.post(URL, json=body, headers=op).status_code == 201
    body = {**body, "source_id": sources["trunk"], "tenant_id": world.tenant_b, "prefix": "+49"}
    assert world.client.post(URL, json=body, headers=op).status_code == 201
    table = _table(world)
    assert len(table) == 2
    found = table.lookup(sources["pbx"], "+31201234567", "0201234567")
    assert found is not None and found.tenant_id == world.tenant_a
    assert found.target == RouteTarget("192.0.2.10", 5060, "udp")
    with world.sessions() as session:
        pbx = session.get(RecordingSourceRow, sources["pbx"])
        trunk = session.get(RecordingSourceRow, sources["trunk"])
        assert pbx is not None and trunk is not None
        change_source(session, pbx, {"kind": "siprec"})  # no longer a B2BUA leg
        change_source(session, trunk, {"tenant_ids": [world.tenant_a]})  # no longer B's
        session.commit()
    assert len(_table(world)) == 0
    assert len(world.client.get(URL, headers=op).json()) == 2  # still listed


# -- API -----------------------------------------------------------------------------------
def test_operator_adds_lists_and_removes_routes(
    world: World, sources: dict[str, int], reloads: list[int]
) -> None:
    op = world.auth("operator")
    body = {
        "tenant_id": world.tenant_a,
        "source_id": sources["pbx"],
        "prefix": "+3120",
        "target": "sip:PBX.example;transport=tls",
    }
    r = world.client.post(URL, json=body, headers=op)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["target"] == "sip:pbx.example:5061;transport=tls"  # stored canonical
    assert (created["prefix"], created["tenant_id"]) == ("+3120", world.tenant_a)
    assert created["created_by"].startswith("operator:")
    assert reloads == [1]
    r = world.client.post(
        URL, json={**body, "source_id": sources["trunk"], "prefix": ""}, headers=op
    )
    assert r.status_code == 201, r.text
    other = r.json()
    assert other["prefix"] == ""

    assert world.client.get(URL, headers=op).json() == [created, other]
    by_source = world.client.get(URL, params={"source_id": sources["trunk"]}, headers=op)
    assert by_source.json() == [other]
    by_tenant = world.client.get(URL, params={"tenant_id": world.tenant_b}, headers=op)
    assert by_tenant.json() == []
    assert world.client.get(URL, params={"tenant_id": 0}, headers=op).status_code == 422

    assert world.client.delete(f"{URL}/{created['id']}", headers=op).status_code == 204
    assert reloads == [1, 1, 1]
    r = world.client.delete(f"{URL}/{created['id']}", headers=op)
    assert r.status_code == 404 and r.json()["error"]["id"] == "route-not-found"
    assert world.client.get(URL, headers=op).json() == [other]

    create, _, remove = _audit(world)
    assert [e.action for e in (create, remove)] == ["route.create", "route.delete"]
    for event in (create, remove):
        assert event.tenant_id is None  # operator level, like the sources
        assert event.actor == created["created_by"] and event.target == f"route:{created['id']}"
        assert event.details["route"] == {
            "tenant_id": world.tenant_a,
            "source_id": sources["pbx"],
            "prefix": "+3120",
            "target": "sip:pbx.example:5061;transport=tls",
        }


@pytest.mark.parametrize(
    "changes,status,error_id,needle",
    [
        ({"source_id": "sbc"}, 422, "route-source-invalid", "kind siprec"),
        ({"source_id": 4242}, 422, "route-source-invalid", "no such recording source: 4242"),
        ({"tenant_id": "b"}, 422, "route-tenant-invalid", "may not record for tenant"),
        ({"tenant_id": 4242}, 422, "route-tenant-invalid", "4242"),
        ({"prefix": "+31-20"}, 422, "route-prefix-invalid", "+31-20"),
        ({"prefix": "++31"}, 422, "route-prefix-invalid", "++31"),
        ({"prefix": "+"}, 422, "route-prefix-invalid", "'+'"),
        ({"prefix": "1" * 32}, 422, "route-prefix-invalid", "1111"),
        ({"prefix": "1" * 33}, 422, "invalid-input", "prefix"),
        ({"target": "sip:alice@192.0.2.1"}, 422, "route-target-invalid", "no user part"),
        ({"target": "http://pbx.example"}, 422, "route-target-invalid", "starts with sip:"),
        ({"target": "sip:" + "a" * 300}, 422, "invalid-input", "target"),
        ({"target": ""}, 422, "invalid-input", "target"),
        ({"tenant_id": 0}, 422, "invalid-input", "tenant_id"),
        ({"source_id": 2**40}, 422, "invalid-input", "source_id"),
        ({"colour": "red"}, 422, "invalid-input", "colour"),
    ],
)
def test_invalid_routes_are_refused_precisely(
    world: World,
    sources: dict[str, int],
    reloads: list[int],
    changes: dict[str, Any],
    status: int,
    error_id: str,
    needle: str,
) -> None:
    body: dict[str, Any] = {
        "tenant_id": world.tenant_a,
        "source_id": sources["pbx"],
        "prefix": "+31",
        "target": TARGET,
        **changes,
    }
    if body["source_id"] == "sbc":
        body["source_id"] = sources["sbc"]
    if body["tenant_id"] == "b":  # the PBX records for tenant A only
        body["tenant_id"] = world.tenant_b
    r = world.client.post(URL, json=body, headers=world.auth("operator"))
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["id"] == error_id and needle in error["message"], error
    assert reloads == [] and _audit(world) == []
    with world.sessions() as session:
        assert session.scalars(select(CallRoute)).first() is None


def test_one_route_per_source_and_prefix(
    world: World, sources: dict[str, int], reloads: list[int]
) -> None:
    op = world.auth("operator")
    body = {"tenant_id": world.tenant_a, "source_id": sources["trunk"], "target": TARGET}
    assert world.client.post(URL, json=body, headers=op).status_code == 201
    r = world.client.post(URL, json={**body, "target": "sip:192.0.2.11"}, headers=op)
    assert r.status_code == 409 and r.json()["error"]["id"] == "route-exists"
    assert "(any call)" in r.json()["error"]["message"]
    # the same prefix for the other tenant of the same trunk is still the same (source, prefix)
    r = world.client.post(URL, json={**body, "tenant_id": world.tenant_b}, headers=op)
    assert r.status_code == 409
    # another prefix, or the same prefix on another source, is fine
    assert world.client.post(URL, json={**body, "prefix": "+31"}, headers=op).status_code == 201
    r = world.client.post(URL, json={**body, "source_id": sources["pbx"]}, headers=op)
    assert r.status_code == 201
    assert reloads == [1, 1, 1] and len(_audit(world)) == 3


@pytest.mark.parametrize("who", ["a_admin", "a_user", "a_listener", "b_admin"])
def test_only_the_operator_sees_or_changes_routes(
    world: World, sources: dict[str, int], reloads: list[int], who: str
) -> None:
    op = world.auth("operator")
    body = {"tenant_id": world.tenant_a, "source_id": sources["pbx"], "target": TARGET}
    created = world.client.post(URL, json=body, headers=op).json()
    reloads.clear()
    headers = world.auth(who)
    attempts = [
        world.client.get(URL, headers=headers),
        world.client.get(URL, params={"tenant_id": world.tenant_a}, headers=headers),
        world.client.post(URL, json={**body, "prefix": "+1"}, headers=headers),
        world.client.delete(f"{URL}/{created['id']}", headers=headers),
        world.client.delete(f"{URL}/4242", headers=headers),  # no way to probe which ids exist
    ]
    for r in attempts:
        assert r.status_code == 403 and r.json()["error"]["id"] == "role-required", r.text
    assert world.client.get(URL).status_code == 401
    assert world.client.get(URL, headers=op).json() == [created]
    assert reloads == [] and [e.action for e in _audit(world)] == ["route.create"]
    if who.endswith("admin"):  # nor does the tenant's own audit log show the operator's routes
        tenant = world.tenant_a if who.startswith("a_") else world.tenant_b
        log = world.client.get(f"/api/v1/tenants/{tenant}/audit", headers=headers).json()
        assert not [item for item in log["items"] if item["action"].startswith("route.")]


# -- CLI -----------------------------------------------------------------------------------
def _cli_state(data_dir: Path) -> tuple[RouteTable, list[AuditEvent]]:
    from callvault.db.engine import make_engine, make_sessionmaker

    engine = make_engine(f"sqlite:///{data_dir / 'callvault.db'}")
    try:
        with make_sessionmaker(engine)() as session:
            query = select(AuditEvent).where(AuditEvent.action.startswith("route."))
            events = list(session.scalars(query.order_by(AuditEvent.id)))
            return RouteTable.load(session), events
    finally:
        engine.dispose()


def test_cli_adds_lists_and_removes(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = ["--data-dir", str(data_dir)]
    source = ["admin", "source", "add", "pbx-1", "--kind", "pbx", "--network", "192.0.2.0/24"]
    assert main([*source, "--tenant", "Acme", *where]) == 0
    add = ["admin", "route", "add", "--tenant", "Acme", "--source", "pbx-1"]
    assert main([*add, "--prefix", "+3120", "--target", "sip:192.0.2.10:5070", *where]) == 0
    assert "route 1 added: +3120 -> sip:192.0.2.10:5070;transport=udp" in capsys.readouterr().out
    assert main(["admin", "route", "add", "--tenant", "1", "--source", "1",
                 "--target", "sip:trunk.example;transport=tcp", *where]) == 0  # fmt: skip
    assert "(any) -> sip:trunk.example:5060;transport=tcp" in capsys.readouterr().out
    table, events = _cli_state(data_dir)
    found = table.lookup(1, "+31201234567", "")
    assert found is not None and found.target.port == 5070
    found = table.lookup(1, "+4930", "")
    assert found is not None and found.target.host == "trunk.example"
    assert [(e.action, e.actor, e.tenant_id) for e in events] == [("route.create", "cli", None)] * 2

    assert main(["admin", "route", "list", "--json", *where]) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert second == {"id": 1, "tenant_id": 1, "source_id": 1, "prefix": "+3120",
                      "target": "sip:192.0.2.10:5070;transport=udp"}  # fmt: skip
    assert first["prefix"] == ""  # listed by source, then prefix
    assert main(["admin", "route", "list", *where]) == 0
    assert "\t(any)\tsip:trunk.example:5060;transport=tcp" in capsys.readouterr().out

    assert main(["admin", "route", "remove", "1", *where]) == 0
    assert "route 1 removed" in capsys.readouterr().out
    table, events = _cli_state(data_dir)
    assert len(table) == 1 and events[-1].action == "route.delete"
    assert events[-1].details["route"]["prefix"] == "+3120"
    assert main(["admin", "route", "remove", "1", *where]) == 1
    assert "no such call route: 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--tenant", "Nobody", "--source", "pbx-1"], "no such tenant: Nobody"),
        (["--tenant", "Acme", "--source", "nothing"], "no such recording source: nothing"),
        (["--tenant", "Acme", "--source", "sbc"], "kind siprec"),
        (["--tenant", "Beta", "--source", "pbx-1"], "may not record for tenant 2"),
        (["--tenant", "Acme", "--source", "pbx-1", "--prefix", "0x1"], "not '0x1'"),
    ],
)
def test_cli_refuses_what_the_api_refuses(
    data_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    where = ["--data-dir", str(data_dir)]
    for name, kind in (("pbx-1", "pbx"), ("sbc", "siprec")):
        add = [
            "admin",
            "source",
            "add",
            name,
            "--kind",
            kind,
            "--network",
            f"192.0.{len(name)}.0/24",
        ]
        assert main([*add, "--tenant", "Acme", *where]) == 0
    capsys.readouterr()
    assert main(["admin", "route", "add", *args, "--target", TARGET, *where]) == 2
    assert needle in capsys.readouterr().err
    assert main(["admin", "route", "add", "--tenant", "Acme", "--source", "pbx-1",
                 "--target", "sip:a@b", *where]) == 2  # fmt: skip
    assert "no user part" in capsys.readouterr().err
    table, events = _cli_state(data_dir)
    assert len(table) == 0 and events == []
