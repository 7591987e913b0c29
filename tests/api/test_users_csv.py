"""Users in bulk by CSV (issue 15 part 3): import, validation as a whole, export, round trip."""

from __future__ import annotations

import time
from typing import Any

import pytest
from httpx2 import Response
from sqlalchemy import func, select

from callvault.admin import accept_legal_notice
from callvault.db.models import AuditEvent, Team, TeamMember, Tenant, User, UserAor, UserNumber
from callvault.portal.api import users_csv
from callvault.portal.api.users_csv_format import MAX_BYTES, MAX_USERS, read_users_csv
from tests.api.conftest import World

HEADER = "name,extension,numbers,aors,email,role,teams,recording_mode\n"
CSV = {"Content-Type": "text/csv"}


def _path(world: World, tenant: int | None = None) -> str:
    return f"/api/v1/tenants/{tenant or world.tenant_a}/users.csv"


def _post(world: World, text: str | bytes, who: str = "a_admin", **params: str) -> Response:
    body = text.encode() if isinstance(text, str) else text
    return world.client.post(
        _path(world), content=body, headers=CSV | world.auth(who), params=params
    )


def _accept(world: World) -> None:
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        admin = session.get(User, world.users["a_admin"])
        assert tenant is not None and admin is not None
        accept_legal_notice(session, tenant, admin)
        session.commit()


def _team(world: World, name: str) -> int:
    with world.sessions() as session:
        team = Team(tenant_id=world.tenant_a, name=name)
        session.add(team)
        session.commit()
        return team.id


def _users(world: World) -> dict[str, User]:
    with world.sessions() as session:
        users = session.scalars(select(User).where(User.tenant_id == world.tenant_a)).all()
        for u in users:
            _ = u.numbers, u.aors
        session.expunge_all()
        return {u.extension: u for u in users if u.extension}


def _snapshot(world: World) -> tuple[object, ...]:
    with world.sessions() as session:
        return (
            sorted(
                (u.id, u.name, u.extension, u.role, u.email, u.recorded, u.recording_mode)
                for u in session.scalars(select(User))
            ),
            sorted(session.scalars(select(UserAor.aor))),
            sorted(session.scalars(select(UserNumber.number))),
            sorted((m.team_id, m.user_id) for m in session.scalars(select(TeamMember))),
        )


def test_import_creates_and_updates_by_extension_and_is_audited(world: World) -> None:
    _accept(world)
    sales = _team(world, "Sales")
    text = HEADER + (
        "Anna de Vries,101,+31201110000,anna@alpha.example,anna@alpha.nl,user,Sales,always\n"
        "Nina,200,,nina@alpha.example; nina-mobile@alpha.example,,listener,,on_demand_keep\n"
        "Otto,201,,,,,,\n"
    )
    r = _post(world, text)
    assert r.status_code == 200, r.text
    assert r.json() == {"users": 3, "created": 2, "updated": 1, "unchanged": 0, "dry_run": False}
    users = _users(world)
    anna = users["101"]
    assert anna.id == world.users["a_user"]  # matched by extension, not created again
    assert (anna.name, anna.email, anna.recorded, anna.recording_mode) == (
        "Anna de Vries",
        "anna@alpha.nl",
        True,
        "always",
    )
    assert [n.number for n in anna.numbers] == ["+31201110000"]
    nina = users["200"]
    assert [a.aor for a in nina.aors] == ["nina@alpha.example", "nina-mobile@alpha.example"]
    assert (nina.role, nina.recorded, nina.recording_mode) == ("listener", True, "on_demand_keep")
    assert users["201"].recorded is False and users["201"].role == "user"
    with world.sessions() as session:
        members = session.scalars(select(TeamMember.user_id).where(TeamMember.team_id == sales))
        assert list(members) == [anna.id]
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "users.import"))
        assert event.tenant_id == world.tenant_a and event.actor.startswith("user:")
        assert event.details["created"] == 2 and event.details["updated"] == 1
    # the same file again changes nothing
    again = _post(world, text)
    assert again.json()["unchanged"] == 3 and again.json()["created"] == 0


def test_every_bad_line_is_reported_and_nothing_changes(world: World) -> None:
    before = _snapshot(world)
    text = HEADER + (
        "Good,300,,good@alpha.example,,,,\n"
        "Foreign AOR,301,,x@beta.example,,,,\n"  # tenant B's domain
        "Nobody's number,302,+49301234567,,,,,\n"
        "Twice,300,,,,,,\n"
        "Bad role,303,,,,boss,,\n"
        "Bad mode,304,,,,,,sometimes\n"
        "No team,305,,,,,Ghosts,\n"
        "Taken,306,,,,,,\n"
        ",307,,,,,,\n"
        "Short,308\n"
        "Shared AOR,309,,good@alpha.example,,,,\n"
        "Not listed,310,,,,,,always\n"  # the notice is not accepted yet
    )
    r = _post(world, text)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["id"] == "users-csv-invalid"
    reasons = {e["line"]: e["reason"] for e in error["lines"]}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 10, 11, 12, 13]
    assert "SIP domains" in reasons[3]  # same answer as for nobody's domain
    assert "numbers and number blocks" in reasons[4]
    assert "line 2" in reasons[5]
    assert "role" in reasons[6] and "mode" in reasons[7] and "Ghosts" in reasons[8]
    assert "name: required" in reasons[10] and "2 cells" in reasons[11]
    assert "line 2" in reasons[12] and "legal notice" in reasons[13]
    assert _snapshot(world) == before


def test_an_address_of_a_user_outside_the_file_is_refused_but_may_move_inside_it(
    world: World,
) -> None:
    first = _post(world, HEADER + "P,400,,p@alpha.example,,,,\nQ,401,,q@alpha.example,,,,\n")
    assert first.status_code == 200, first.text
    clash = _post(world, HEADER + "R,402,,p@alpha.example,,,,\n")
    assert clash.status_code == 422
    assert "belongs to another user" in clash.json()["error"]["lines"][0]["reason"]
    # P and Q swap their devices in one file
    swap = _post(world, HEADER + "P,400,,q@alpha.example,,,,\nQ,401,,p@alpha.example,,,,\n")
    assert swap.status_code == 200, swap.text
    users = _users(world)
    assert [a.aor for a in users["400"].aors] == ["q@alpha.example"]
    assert [a.aor for a in users["401"].aors] == ["p@alpha.example"]


def test_optional_columns_keep_what_is_stored(world: World) -> None:
    _accept(world)
    assert (
        _post(world, HEADER + "S,500,,s@alpha.example,s@alpha.nl,listener,,always\n").status_code
        == 200
    )
    r = _post(world, "extension,name\n500,Sam\n")
    assert r.status_code == 200, r.text
    sam = _users(world)["500"]
    assert (sam.name, sam.email, sam.role, sam.recorded, sam.recording_mode) == (
        "Sam",
        "s@alpha.nl",
        "listener",
        True,
        "always",
    )
    assert [a.aor for a in sam.aors] == ["s@alpha.example"]


def test_the_admin_keeps_their_own_admin_role(world: World) -> None:
    r = _post(world, "name,extension,role\nAda,100,user\n")
    assert r.status_code == 422
    assert "own admin access" in r.json()["error"]["lines"][0]["reason"]


def test_export_round_trips(world: World) -> None:
    _accept(world)
    _team(world, "Sales")
    _team(world, "=Support, 2nd line")
    text = HEADER + (
        '"=Evil, Inc",600,+31201110000,e@alpha.example,,user,"Sales; =Support, 2nd line",playback\n'
        "Fred,601,,f@alpha.example; f2@alpha.example,f@alpha.nl,admin,,never\n"
    )
    assert _post(world, text).status_code == 200
    before = _snapshot(world)
    r = world.client.get(_path(world), headers=world.auth("a_admin"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    exported = r.text
    assert "'=Evil, Inc" in exported  # no formula for a spreadsheet
    lines, errors = read_users_csv(exported.encode())
    assert not errors
    evil = next(line for line in lines if line.extension == "600")
    assert evil.name == "=Evil, Inc" and set(evil.teams or ()) == {"Sales", "=Support, 2nd line"}
    again = _post(world, exported)
    assert again.status_code == 200, again.text
    assert again.json()["updated"] == 0 and again.json()["created"] == 0
    assert _snapshot(world) == before
    with world.sessions() as session:
        assert session.scalar(select(func.count()).where(AuditEvent.action == "users.export")) == 1


def test_dry_run_counts_without_changing(world: World) -> None:
    before = _snapshot(world)
    r = _post(world, HEADER + "New,700,,,,,,\n", dry_run="true")
    assert r.status_code == 200
    assert r.json()["created"] == 1 and r.json()["dry_run"] is True
    assert _snapshot(world) == before


def test_limits_have_precise_answers(world: World) -> None:
    too_big = _post(world, HEADER + "x" * MAX_BYTES)
    assert too_big.status_code == 413 and too_big.json()["error"]["id"] == "csv-too-large"
    many = HEADER + "".join(f"U{i},{10000 + i},,,,,,\n" for i in range(MAX_USERS + 1))
    r = _post(world, many)
    assert r.status_code == 422
    assert any(f"more than {MAX_USERS} users" in e["reason"] for e in r.json()["error"]["lines"])
    long_cell = _post(world, HEADER + "A,800," + "1" * 3000 + ",,,,,\n")
    assert "longer than 2000 characters" in long_cell.json()["error"]["lines"][0]["reason"]
    not_utf8 = _post(world, HEADER.encode() + b"A,801,,,\xff,,,\n")
    assert not_utf8.json()["error"]["lines"] == [
        {"line": 2, "reason": "the file is not UTF-8 text"}
    ]
    bad_header = _post(world, "name,phone\n")
    assert "unknown column 'phone'" in bad_header.json()["error"]["lines"][0]["reason"]
    as_json = world.client.post(_path(world), json={"x": 1}, headers=world.auth("a_admin"))
    assert as_json.status_code == 415


def test_semicolon_separated_spreadsheet_export_is_read(world: World) -> None:
    text = 'Name;Extension;AORs;E-mail\nVera;900;"v@alpha.example; v2@alpha.example";v@alpha.nl\n'
    r = _post(world, text.encode("utf-8-sig"))
    assert r.status_code == 200, r.text
    assert [a.aor for a in _users(world)["900"].aors] == ["v@alpha.example", "v2@alpha.example"]


def test_five_hundred_users_import_fast(world: World) -> None:
    _accept(world)
    _team(world, "Sales")
    rows = "".join(
        f"User {i},{2000 + i},,u{i}@alpha.example,u{i}@alpha.nl,user,Sales,always\n"
        for i in range(500)
    )
    started = time.perf_counter()
    r = _post(world, HEADER + rows)
    took = time.perf_counter() - started
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 500
    assert took < 5.0, took
    with world.sessions() as session:
        assert session.scalar(select(func.count()).select_from(UserAor)) == 500


def test_an_extension_taken_meanwhile_is_a_conflict_and_nothing_is_imported(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = users_csv._check

    def check_then_race(*args: Any) -> Any:
        plan = checked(*args)
        with world.sessions() as other:  # another request creates extension 950 now
            other.add(User(tenant_id=world.tenant_a, name="Racer", extension="950"))
            other.commit()
        return plan

    monkeypatch.setattr(users_csv, "_check", check_then_race)
    r = _post(world, HEADER + "First,949,,,,,,\nSecond,950,,,,,,\n")
    assert r.status_code == 409 and r.json()["error"]["id"] == "user-exists"
    assert "949" not in _users(world)
