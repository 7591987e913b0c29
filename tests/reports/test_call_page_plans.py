"""Reports › Calls on PostgreSQL (issue 13): the planner hints per database, and the
hashed sets a big tenant's walk checks against (``query.HASH_GAIN``).

The hashed plan is chosen on PostgreSQL only; here it is also forced on SQLite,
so that its rows are checked against the plain walk's and the driving set's on
every database this suite runs on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql.base import PGDialect

from callvault.db.models import Call, CallParty, Recording, RecordingLabel, Team, TeamMember
from callvault.portal import visibility
from callvault.portal.reports import query as calls_api
from callvault.portal.reports.query import worth_hashing
from tests.api.conftest import World
from tests.databases import parametrize_databases

TENANT = 7


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_databases(metafunc)  # the plans' rows on [sqlite] and [postgresql]


def _sql(statement: Any, dialect: Any) -> str:
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def test_the_scope_is_hidden_from_sqlites_indexes_only() -> None:
    """``tenant_id + 0`` steers SQLite; on PostgreSQL it would hide the statistics."""
    party = select(Call.id).where(visibility.has_party(TENANT, [1, 2], Call.id))
    ids = select(Call.id).where(calls_api.by_id_in(Call.tenant_id, TENANT))
    for statement in (party, ids):
        assert "tenant_id + 0) = 7" in _sql(statement, sqlite.dialect())
        plain = _sql(statement, PGDialect())  # type: ignore[no-untyped-call]
        assert "+ 0" not in plain and "tenant_id = 7" in plain, plain


@pytest.mark.parametrize(
    "name,size,hashed",
    [
        ("users", 55_000, True),  # one user of 200 at 10 M calls: 9,300 probes a page
        ("users", 550_000, False),  # a team of ten: one of its calls every 18
    ],
)
def test_hashing_pays_where_a_page_needs_many_probes(name: str, size: int, hashed: bool) -> None:
    assert worth_hashing(name, size, 10_000_000, 51) is hashed


BASE = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
OUTSIDE = ["+31610000001", "+31610000002"]


@dataclass
class Seeded:
    id: str
    started_at: datetime
    numbers: set[str]
    user_ids: set[int]
    labels: set[str]


@dataclass
class Calls:
    world: World
    calls: list[Seeded]

    def expected(self, match: Callable[[Seeded], bool]) -> list[str]:
        hits = [c for c in self.calls if match(c)]
        return [c.id for c in sorted(hits, key=lambda c: (c.started_at, c.id), reverse=True)]

    def walk(self, who: str, **params: Any) -> list[str]:
        """Every page (of 5) of tenant A's calls list, checked for order and repeats."""
        seen: list[str] = []
        cursor: str | None = None
        while True:
            query = {"limit": 5, **params} | ({"cursor": cursor} if cursor else {})
            r = self.world.client.get(
                f"/api/v1/tenants/{self.world.tenant_a}/calls",
                params=query,
                headers=self.world.auth(who),
            )
            assert r.status_code == 200, r.text
            seen += [c["id"] for c in r.json()["items"]]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)), "a call was listed twice"
        return seen


@pytest.fixture
def calls(world: World) -> Calls:
    """Tenant A: 32 calls (two at each instant) of four users, half recorded, a
    quarter labelled; the listener leads a team with a_user in it."""
    users = world.users
    owners = [users["a_user"], users["a_colleague"], users["a_admin"], users["a_listener"]]
    seeded: list[Seeded] = []
    with world.sessions() as session:
        team = Team(tenant_id=world.tenant_a, name="Support")
        session.add(team)
        session.flush()
        session.add_all(
            TeamMember(tenant_id=world.tenant_a, team_id=team.id, user_id=u, is_lead=lead)
            for u, lead in ((users["a_listener"], True), (users["a_user"], False))
        )
        for i in range(32):
            owner, peer = owners[i % 4], owners[(i + 1) % 4]
            own = f"+3120111{owner:04d}"
            other, parties = (
                (OUTSIDE[i % 2], {owner}) if i % 3 else (f"+3120111{peer:04d}", {owner, peer})
            )
            started = BASE + timedelta(minutes=i // 2)
            call = Call(
                tenant_id=world.tenant_a,
                sip_call_id=f"plan-{i}",
                direction="outbound" if i % 3 else "internal",
                from_number=own,
                to_number=other,
                started_at=started,
                duration_ms=1000,
            )
            call.parties = [
                CallParty(
                    tenant_id=world.tenant_a, participant_id=f"p{k}", user_id=uid, side="user"
                )
                for k, uid in enumerate(sorted(parties))
            ]
            session.add(call)
            session.flush()
            labels: set[str] = set()
            if i % 2 == 0:
                recording = Recording(
                    id=call.id,
                    tenant_id=world.tenant_a,
                    call_id=call.id,
                    user_id=owner,
                    blob_key=f"x/{call.id}.mp3",
                    sha256="0" * 64,
                    size_bytes=10,
                    duration_ms=1000,
                    channels=2,
                    sample_rate=8000,
                    started_at=started,
                    created_at=started + timedelta(seconds=2),
                )
                session.add(recording)
                session.flush()
                if i % 4 == 0:
                    labels = {"Sales"}
                    session.add(RecordingLabel.of(recording, call, "Sales"))
            seeded.append(Seeded(call.id, started, {own, other}, parties, labels))
        for call in session.scalars(  # the world fixture's own calls of tenant A
            select(Call).where(Call.tenant_id == world.tenant_a, ~Call.sip_call_id.like("plan-%"))
        ):
            seeded.append(
                Seeded(
                    call.id,
                    call.started_at.replace(tzinfo=UTC),
                    {call.from_number or "", call.to_number or ""},
                    {p.user_id for p in call.parties if p.user_id is not None},
                    set(),
                )
            )
        session.commit()
    return Calls(world, seeded)


def _force_hashing(monkeypatch: pytest.MonkeyPatch, *, drive: bool) -> None:
    """Every set that does not drive is hashed, on this database too; with
    ``drive`` False, no set drives (a big tenant's plan)."""
    monkeypatch.setattr(calls_api, "HASHED_DIALECTS", frozenset({"sqlite", "postgresql"}))
    monkeypatch.setattr(calls_api, "estimated_rows", lambda _session, _query: 1.0)
    for key in calls_api.HASH_GAIN:
        monkeypatch.setitem(calls_api.HASH_GAIN, key, float("inf"))
    if not drive:
        for key in calls_api.DRIVE_LIMITS:
            monkeypatch.setitem(calls_api.DRIVE_LIMITS, key, -1)


@pytest.mark.parametrize("drive", [True, False], ids=["driving-set", "hashed"])
def test_hashed_sets_list_what_the_other_plans_list(
    calls: Calls, monkeypatch: pytest.MonkeyPatch, drive: bool
) -> None:
    users = calls.world.users
    team = {users["a_listener"], users["a_user"]}
    colleague = users["a_colleague"]
    cases: list[tuple[str, dict[str, Any], Callable[[Seeded], bool]]] = [
        ("a_listener", {}, lambda c: bool(c.user_ids & team)),
        ("a_listener", {"label": "sales"}, lambda c: bool(c.user_ids & team) and bool(c.labels)),
        ("a_admin", {"label": "SALES"}, lambda c: bool(c.labels)),
        ("a_admin", {"user_id": colleague}, lambda c: colleague in c.user_ids),
        (
            "a_admin",
            {"user_id": colleague, "number": OUTSIDE[1]},
            lambda c: colleague in c.user_ids and OUTSIDE[1] in c.numbers,
        ),
        ("a_user", {"label": "sales"}, lambda c: users["a_user"] in c.user_ids and bool(c.labels)),
        ("a_admin", {"number": OUTSIDE[0]}, lambda c: OUTSIDE[0] in c.numbers),
        (
            "a_listener",
            {"number": f"+3120111{users['a_user']:04d}"},
            lambda c: bool(c.user_ids & team) and f"+3120111{users['a_user']:04d}" in c.numbers,
        ),
    ]
    plain = [calls.walk(who, **params) for who, params, _match in cases]
    _force_hashing(monkeypatch, drive=drive)
    for (who, params, match), before in zip(cases, plain, strict=True):
        expected = calls.expected(match)
        assert expected, params
        assert before == expected, params
        assert calls.walk(who, **params) == expected, (who, params)


def test_a_driving_set_is_not_joined_by_hashed_ones(
    calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small set drives; the others are probed for its few calls. (Hashing them
    beside it let PostgreSQL's planner hash-join the driving set to a scan of
    every call: 150 ms on 100,000 calls, where the probes take 3.)"""
    world = calls.world
    team = [world.users["a_listener"], world.users["a_user"]]
    with world.sessions() as session:
        filters = calls_api.ReportFilters(label="sales")

        def plan() -> calls_api.CallPagePlan:
            return calls_api.plan_call_page(session, world.tenant_a, team, filters, None, 51)

        _force_hashing(monkeypatch, drive=True)
        driven = plan()
        assert driven.driver is not None and driven.hashed == ()
        _force_hashing(monkeypatch, drive=False)
        walked = plan()  # the label's calls walked, the team probed for each
        assert (walked.driver, walked.hashed, walked.walk) == (None, (), "label")
        filters = calls_api.ReportFilters()
        walked = plan()
        assert walked.driver is None and walked.hashed == ("users",)
        sql = str(walked.query.compile(session.connection()))
        assert sql.count("coalesce(calls.id IN (SELECT") == 1, sql


def test_a_label_walk_lists_a_call_labelled_twice_once(
    calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Labels compare in any case, so "Sales" and "SALES" on one recording are two
    rows of the label's index for one call."""
    world = calls.world
    twice = next(c for c in calls.calls if c.labels)
    with world.sessions() as session:
        recording = session.get_one(Recording, twice.id)  # the recording has its call's id
        session.add(RecordingLabel.of(recording, session.get_one(Call, twice.id), "SALES"))
        session.commit()
    _force_hashing(monkeypatch, drive=False)  # the label's own walk
    expected = calls.expected(lambda c: bool(c.labels))
    assert twice.id in expected
    assert calls.walk("a_admin", label="sales") == expected
