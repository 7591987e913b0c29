"""Reports › Calls: filters, keyset paging, visibility by role, query plans."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from callvault.db.models import Call, CallParty, Recording, RecordingLabel, Team, TeamMember, Tenant
from callvault.portal.reports import query as calls_api
from callvault.portal.reports.query import ReportFilters, plan_call_page
from tests.api.conftest import World

BASE = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
EXTERNAL = [f"+3161000000{k}" for k in range(5)]


@dataclass
class SeededCall:
    id: str
    started_at: datetime
    direction: str
    from_number: str
    to_number: str
    user_ids: set[int]
    recorded: bool
    labels: set[str]


@dataclass
class Report:
    world: World
    calls: list[SeededCall]  # tenant A only, including the two of the world fixture

    def walk(self, who: str, limit: int = 7, tenant: int | None = None, **params: Any) -> list[str]:
        """Every page of the calls list; checks order and that nothing repeats."""
        seen: list[str] = []
        starts: list[tuple[str, str]] = []
        cursor: str | None = None
        while True:
            query = {"limit": limit, **params} | ({"cursor": cursor} if cursor else {})
            r = self.world.client.get(
                f"/api/v1/tenants/{tenant or self.world.tenant_a}/calls",
                params=query,
                headers=self.world.auth(who),
            )
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page["items"]) <= limit
            seen += [c["id"] for c in page["items"]]
            starts += [(c["started_at"], c["id"]) for c in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert len(page["items"]) == limit
        assert len(seen) == len(set(seen)), "a call was listed twice"
        assert starts == sorted(starts, reverse=True), "not newest first"
        return seen


@pytest.fixture
def report(world: World) -> Report:
    """Tenant A: 60 more calls (three at each instant, to test ties), a team led by
    the listener with a_user as member; a_colleague is in no team of hers."""
    users = world.users
    owners = [users["a_user"], users["a_colleague"], users["a_admin"], users["a_listener"]]
    seeded: list[SeededCall] = []
    with world.sessions() as session:
        team = Team(tenant_id=world.tenant_a, name="Support")
        session.add(team)
        session.flush()
        session.add_all(
            [
                TeamMember(
                    tenant_id=world.tenant_a,
                    team_id=team.id,
                    user_id=users["a_listener"],
                    is_lead=True,
                ),
                TeamMember(tenant_id=world.tenant_a, team_id=team.id, user_id=users["a_user"]),
            ]
        )
        # a team she is only a member of: its lead's calls stay hidden from her
        other = Team(tenant_id=world.tenant_a, name="Sales")
        session.add(other)
        session.flush()
        session.add_all(
            [
                TeamMember(
                    tenant_id=world.tenant_a,
                    team_id=other.id,
                    user_id=users["a_colleague"],
                    is_lead=True,
                ),
                TeamMember(tenant_id=world.tenant_a, team_id=other.id, user_id=users["a_listener"]),
            ]
        )
        for i in range(60):
            owner = owners[i % len(owners)]
            direction = ("inbound", "outbound", "internal")[i % 3]
            external = EXTERNAL[i % len(EXTERNAL)]
            own = f"+3120111{owner:04d}"
            frm, to = (external, own) if direction == "inbound" else (own, external)
            parties = {owner}
            if direction == "internal":
                peer = owners[(i + 1) % len(owners)]
                to = f"+3120111{peer:04d}"
                parties.add(peer)
            started = BASE + timedelta(minutes=i // 3)  # three calls per instant
            call = Call(
                tenant_id=world.tenant_a,
                sip_call_id=f"r-{i}",
                direction=direction,
                from_name=f"From {i}",
                from_number=frm,
                to_name=f"To {i}",
                to_number=to,
                started_at=started,
                answered_at=started + timedelta(seconds=2),
                ended_at=started + timedelta(seconds=40),
                duration_ms=38000,
            )
            call.parties = [
                CallParty(
                    tenant_id=world.tenant_a,
                    participant_id=f"p{k}",
                    number=frm if k == 0 else to,
                    user_id=uid,
                    side="user",
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
                    duration_ms=38000,
                    channels=2,
                    sample_rate=8000,
                    started_at=started,
                    created_at=started + timedelta(seconds=41),
                )
                session.add(recording)
                session.flush()
                if i % 4 == 0:  # stored with their case, as annotations keep it
                    labels = {"Sales" if i % 8 == 0 else "sales", "Big deal"}
                    session.add_all(RecordingLabel.of(recording, call, text) for text in labels)
            seeded.append(
                SeededCall(call.id, started, direction, frm, to, parties, i % 2 == 0, labels)
            )
        # the same label in tenant B must not leak into A's results
        recording_b = session.get_one(Recording, world.recording_b)
        session.add(
            RecordingLabel.of(recording_b, session.get_one(Call, recording_b.call_id), "sales")
        )
        for call in session.scalars(
            select(Call).where(Call.tenant_id == world.tenant_a, Call.sip_call_id.like("call-%"))
        ):
            seeded.append(
                SeededCall(
                    call.id,
                    call.started_at.replace(tzinfo=UTC),
                    call.direction,
                    call.from_number or "",
                    call.to_number or "",
                    {p.user_id for p in call.parties if p.user_id is not None},
                    True,
                    set(),
                )
            )
        session.commit()
    return Report(world, seeded)


def _ids(calls: list[SeededCall]) -> list[str]:
    ordered = sorted(calls, key=lambda c: (c.started_at, c.id), reverse=True)
    return [c.id for c in ordered]


FILTERS: list[tuple[str, dict[str, Any], Any]] = [
    ("all", {}, lambda c: True),
    ("direction", {"direction": "internal"}, lambda c: c.direction == "internal"),
    (
        "period",
        {"from": "2026-10-01T08:05:00Z", "to": "2026-10-01T10:12:00+02:00"},
        lambda c: (
            datetime(2026, 10, 1, 8, 5, tzinfo=UTC)
            <= c.started_at
            < datetime(2026, 10, 1, 8, 12, tzinfo=UTC)
        ),
    ),
    (
        "number, E.164",
        {"number": EXTERNAL[1]},
        lambda c: EXTERNAL[1] in (c.from_number, c.to_number),
    ),
    (
        "number, national with spaces",
        {"number": "06 1000 0002"},
        lambda c: EXTERNAL[2] in (c.from_number, c.to_number),
    ),
    (
        "label, any case",
        {"label": "  SALES "},
        lambda c: "sales" in {t.lower() for t in c.labels},
    ),
    ("label with spaces", {"label": "big   DEAL"}, lambda c: "Big deal" in c.labels),
    ("recorded", {"recorded": "true"}, lambda c: c.recorded),
    ("not recorded", {"recorded": "false"}, lambda c: not c.recorded),
    (
        "direction + recorded + period",
        {"direction": "inbound", "recorded": "true", "from": "2026-10-01T08:03:00Z"},
        lambda c: (
            c.direction == "inbound"
            and c.recorded
            and c.started_at >= datetime(2026, 10, 1, 8, 3, tzinfo=UTC)
        ),
    ),
]


@pytest.mark.parametrize("drive", [True, False], ids=["driving-set", "time-walk"])
@pytest.mark.parametrize("name,params,match", FILTERS, ids=[f[0] for f in FILTERS])
def test_each_filter_pages_over_every_match_once(
    report: Report,
    monkeypatch: pytest.MonkeyPatch,
    drive: bool,
    name: str,
    params: dict[str, Any],
    match: Any,
) -> None:
    if not drive:  # the plan a big tenant gets: walk the time index, check each call
        for key in calls_api.DRIVE_LIMITS:
            monkeypatch.setitem(calls_api.DRIVE_LIMITS, key, -1)
    expected = _ids([c for c in report.calls if match(c)])
    assert expected, name
    assert report.walk("a_admin", **params) == expected


def test_user_filter(report: Report) -> None:
    user = report.world.users["a_colleague"]
    expected = _ids([c for c in report.calls if user in c.user_ids])
    assert report.walk("a_admin", user_id=user) == expected
    both = _ids([c for c in report.calls if user in c.user_ids and c.direction == "outbound"])
    assert report.walk("a_admin", user_id=user, direction="outbound") == both


def test_listener_sees_own_and_team_members_calls_only(report: Report) -> None:
    users = report.world.users
    team = {users["a_listener"], users["a_user"]}
    expected = _ids([c for c in report.calls if c.user_ids & team])
    assert report.walk("a_listener") == expected
    hidden = [c.id for c in report.calls if not c.user_ids & team]
    assert hidden and not set(hidden) & set(expected)
    # a member's calls through the user filter; filters combine with visibility
    member = _ids([c for c in report.calls if users["a_user"] in c.user_ids and c.recorded])
    assert report.walk("a_listener", user_id=users["a_user"], recorded="true") == member


def test_user_sees_only_own_calls(report: Report) -> None:
    me = report.world.users["a_user"]
    assert report.walk("a_user") == _ids([c for c in report.calls if me in c.user_ids])
    labelled = _ids([c for c in report.calls if me in c.user_ids and "Big deal" in c.labels])
    assert report.walk("a_user", label="big deal") == labelled


@pytest.mark.parametrize(
    "who,target",
    [
        ("a_listener", "a_colleague"),  # leads another team she is only a member of
        ("a_user", "a_colleague"),
        ("a_user", "b_user"),  # another tenant's user
        ("a_admin", "b_user"),
    ],
)
def test_user_filter_for_an_invisible_user_gives_nothing(
    report: Report, who: str, target: str
) -> None:
    assert report.walk(who, user_id=report.world.users[target]) == []
    assert report.walk(who, user_id=999_999) == []


def test_foreign_tenant_is_404_with_any_filter(report: Report) -> None:
    world = report.world
    for who in ("a_admin", "a_listener", "a_user"):
        for params in ({}, {"label": "sales"}, {"number": EXTERNAL[0], "recorded": "true"}):
            r = world.client.get(
                f"/api/v1/tenants/{world.tenant_b}/calls", params=params, headers=world.auth(who)
            )
            assert r.status_code == 404, (who, params)
            assert r.json()["error"]["id"] == "tenant-not-found"


def test_label_of_another_tenant_does_not_match(report: Report) -> None:
    world = report.world
    got = report.walk("b_admin", tenant=world.tenant_b, label="sales")
    assert got == [world.recording_b]  # B's own labelled call only (its id is the call id)
    assert world.recording_b not in report.walk("a_admin", label="sales")


def test_items_carry_buttons_labels_and_recording_ids(report: Report) -> None:
    world = report.world
    url = f"/api/v1/tenants/{world.tenant_a}/calls"
    page = world.client.get(url, params={"limit": 500}, headers=world.auth("a_admin")).json()
    by_id = {c["id"]: c for c in page["items"]}
    for seeded in report.calls:
        item = by_id[seeded.id]
        if seeded.recorded:
            rec = item["recording_ids"][0]
            assert item["audio_url"] == f"/api/v1/recordings/{rec}/audio"
            assert item["download_url"] == f"/api/v1/recordings/{rec}/audio?download=true"
        else:
            assert item["recording_ids"] == []
            assert item["audio_url"] is None and item["download_url"] is None
        assert set(item["labels"]) == seeded.labels
        assert "from_name" in item and item["from_number"] == seeded.from_number
        assert item["to_number"] == seeded.to_number
        assert item["duration_ms"] > 0 and item["answered_at"] and item["ended_at"]
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        assert tenant is not None
        tenant.stream_only = True
        session.commit()
    page = world.client.get(url, params={"recorded": "true"}, headers=world.auth("a_admin")).json()
    assert page["items"] and all(
        c["audio_url"] and c["download_url"] is None for c in page["items"]
    )


def test_cursor_is_bound_to_its_filters_and_tamper_proof(report: Report) -> None:
    world = report.world
    url = f"/api/v1/tenants/{world.tenant_a}/calls"
    h = world.auth("a_admin")
    cursor = world.client.get(url, params={"limit": 2, "direction": "inbound"}, headers=h).json()[
        "next_cursor"
    ]
    assert cursor
    ok = world.client.get(
        url, params={"limit": 2, "direction": "inbound", "cursor": cursor}, headers=h
    )
    assert ok.status_code == 200
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    at, _row_id, check = raw.split("|")
    forged = base64.urlsafe_b64encode(f"{at}|{'f' * 32}|{check}".encode()).decode()
    for params in (
        {"direction": "outbound", "cursor": cursor},  # other filters
        {"direction": "inbound", "cursor": forged},
        {"direction": "inbound", "cursor": "%%%"},
        {"direction": "inbound", "cursor": base64.urlsafe_b64encode(b"x|y").decode()},
    ):
        r = world.client.get(url, params=params, headers=h)
        assert r.status_code == 422, params
        assert r.json()["error"]["id"] == "bad-cursor"
    # a calls cursor is no recordings cursor
    r = world.client.get(
        f"/api/v1/tenants/{world.tenant_a}/recordings",
        params={"direction": "inbound", "cursor": cursor},
        headers=h,
    )
    assert r.status_code == 422 and r.json()["error"]["id"] == "bad-cursor"


@pytest.mark.parametrize(
    "params,name",
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-10-02T00:00:00Z", "to": "2026-10-01T00:00:00Z"}, "from"),
        ({"direction": "sideways"}, "direction"),
        ({"user_id": "abc"}, "user_id"),
        ({"user_id": "0"}, "user_id"),
        ({"number": "12ab"}, "number"),
        ({"number": "+31 20 (123) 4x"}, "number"),
        ({"number": ""}, "number"),
        ({"label": "   "}, "label"),
        ({"label": "x" * 101}, "label"),
        ({"recorded": "maybe"}, "recorded"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"cursor": "x" * 201}, "cursor"),
    ],
)
def test_malformed_parameters_are_422_naming_the_parameter(
    report: Report, params: dict[str, str], name: str
) -> None:
    world = report.world
    for path in ("calls", "recordings"):
        r = world.client.get(
            f"/api/v1/tenants/{world.tenant_a}/{path}", params=params, headers=world.auth("a_admin")
        )
        assert r.status_code == 422, (path, params, r.text)
        error = r.json()["error"]
        assert error["id"] == "invalid-input"
        assert name in error["message"], error


def test_recordings_list_takes_the_same_filters(report: Report) -> None:
    world = report.world
    url = f"/api/v1/tenants/{world.tenant_a}/recordings"

    def walk(who: str, **params: Any) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            query = {"limit": 4, **params} | ({"cursor": cursor} if cursor else {})
            r = world.client.get(url, params=query, headers=world.auth(who))
            assert r.status_code == 200, r.text
            seen += [x["call_id"] for x in r.json()["items"]]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                return seen

    recorded = [c for c in report.calls if c.recorded]
    assert sorted(walk("a_admin", label="Sales")) == sorted(
        c.id for c in recorded if "sales" in {t.lower() for t in c.labels}
    )
    assert sorted(walk("a_admin", direction="outbound")) == sorted(
        c.id for c in recorded if c.direction == "outbound"
    )
    assert sorted(walk("a_admin", number=EXTERNAL[3])) == sorted(
        c.id for c in recorded if EXTERNAL[3] in (c.from_number, c.to_number)
    )
    team = {world.users["a_listener"], world.users["a_user"]}
    listener = walk("a_listener")
    assert sorted(listener) == sorted(c.id for c in recorded if c.user_ids & team)
    assert walk("a_listener", user_id=world.users["a_colleague"]) == []


# --- query plans (EXPLAIN QUERY PLAN is deterministic for a given schema) -------------


SQLITE_PLAN = pytest.mark.sqlite_only("EXPLAIN QUERY PLAN: the plans of SQLite's planner")


def _plan(report: Report, users: list[int] | None, after: bool = False, **kw: Any) -> list[str]:
    with report.world.sessions() as session:
        tenant = session.get(Tenant, report.world.tenant_a)
        assert tenant is not None
        filters = ReportFilters.parse(tenant, **kw)
        cursor = (BASE, "f" * 32) if after else None
        plan = plan_call_page(session, tenant.id, users, filters, cursor, 51)
        connection = session.connection()
        sql = str(plan.query.compile(connection, compile_kwargs={"literal_binds": True}))
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
        return [str(r[3]) for r in rows]


def _assert_no_calls_scan(plan: list[str]) -> None:
    assert not any(line.startswith("SCAN calls") for line in plan), plan


WALK_PLANS: list[tuple[str, dict[str, Any], bool, str]] = [
    ("first page", {}, False, "USING COVERING INDEX ix_calls_tenant_started (tenant_id=?)"),
    (
        "deep page",
        {},
        True,
        "USING COVERING INDEX ix_calls_tenant_started (tenant_id=? AND (started_at,id)<(?,?))",
    ),
    (
        "direction + period",
        {
            "direction": "inbound",
            "since": datetime(2026, 1, 1, tzinfo=UTC),
            "until": datetime(2026, 12, 1, tzinfo=UTC),
        },
        False,
        "USING COVERING INDEX ix_calls_tenant_direction_started "
        "(tenant_id=? AND direction=? AND started_at>? AND started_at<?)",
    ),
    ("number", {"number": EXTERNAL[0]}, False, "USING INDEX ix_calls_tenant_started"),
    ("label", {"label": "sales"}, True, "USING COVERING INDEX ix_calls_tenant_started"),
    ("recorded", {"recorded": False}, False, "USING COVERING INDEX ix_calls_tenant_started"),
]


@SQLITE_PLAN
@pytest.mark.parametrize("name,kw,after,needle", WALK_PLANS, ids=[p[0] for p in WALK_PLANS])
def test_walk_plans_use_the_time_indexes(
    report: Report,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    kw: dict[str, Any],
    after: bool,
    needle: str,
) -> None:
    for key in calls_api.DRIVE_LIMITS:
        monkeypatch.setitem(calls_api.DRIVE_LIMITS, key, -1)
    plan = _plan(report, None, after, **kw)
    assert f"SEARCH calls {needle}" in plan[0], plan
    _assert_no_calls_scan(plan)
    assert not any("TEMP B-TREE FOR ORDER BY" in line for line in plan), plan
    if "label" in kw:
        # one probe of the call's labels, no recordings (the label knows its call)
        assert "SEARCH recording_labels USING INDEX ix_recording_labels_call_id (call_id=?)" in (
            plan
        ), plan
        assert not any("recordings" in line for line in plan), plan
    if "recorded" in kw:
        assert "SEARCH recordings USING COVERING INDEX ix_recordings_call_id (call_id=?)" in plan


@SQLITE_PLAN
@pytest.mark.parametrize(
    "team,probe",
    [
        (
            False,
            "COVERING INDEX ix_call_parties_tenant_user (tenant_id=? AND user_id=? AND call_id=?)",
        ),
        # one look-up of the call's parties (PostgreSQL's index also covers the tenant)
        (True, "INDEX ix_call_parties_call_id (call_id=?)"),
    ],
    ids=["one user", "team"],
)
def test_walk_plan_for_restricted_callers_probes_parties_per_call(
    report: Report, monkeypatch: pytest.MonkeyPatch, team: bool, probe: str
) -> None:
    monkeypatch.setitem(calls_api.DRIVE_LIMITS, "users", -1)
    users = report.world.users
    ids = [users["a_listener"], users["a_user"]] if team else [users["a_user"]]
    plan = _plan(report, ids, after=True)
    assert plan[0].startswith("SEARCH calls USING COVERING INDEX ix_calls_tenant_started"), plan
    assert f"SEARCH call_parties USING {probe}" in plan, plan
    assert not any("TEMP B-TREE" in line for line in plan), plan


@SQLITE_PLAN
@pytest.mark.parametrize(
    "kw,users,driver_index",
    [
        ({}, "listener", "ix_call_parties_tenant_user (tenant_id=? AND user_id=?)"),
        (
            {"label": "sales"},
            None,
            "ix_recording_labels_tenant_lower_text (tenant_id=? AND <expr>=?)",
        ),
        (
            {"number": EXTERNAL[0]},
            None,
            "ix_calls_tenant_from_number (tenant_id=? AND from_number=?)",
        ),
    ],
)
def test_small_sets_drive_the_query_from_their_own_index(
    report: Report, kw: dict[str, Any], users: str | None, driver_index: str
) -> None:
    ids = [report.world.users["a_listener"]] if users else None
    plan = _plan(report, ids, after=True, **kw)
    assert plan[0] == "SEARCH calls USING INDEX sqlite_autoindex_calls_1 (id=?)", plan
    assert any(driver_index in line for line in plan), plan
    if "number" in kw:
        assert any(
            "ix_calls_tenant_to_number (tenant_id=? AND to_number=?)" in line for line in plan
        )
    assert not any(line.startswith("SCAN") for line in plan), plan
