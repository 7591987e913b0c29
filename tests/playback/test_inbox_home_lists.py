"""The user's inbox, home screen and own lists through the API (issue 9, SPEC section 6)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from callvault.db.models import AuditEvent, Team, TeamMember, User
from tests.api.conftest import Clock, World
from tests.playback.helpers import recording


def _add(world: World, who: str, ago_h: float, **kwargs: object) -> str:
    tenant = world.tenant_b if who.startswith("b_") else world.tenant_a
    with world.sessions() as session:
        rid = recording(
            session,
            world.blobs,
            tenant,
            world.users[who],
            world.app.state.clock.now - timedelta(hours=ago_h),
            **kwargs,  # type: ignore[arg-type]
        )
        session.commit()
    return rid


def _lead(world: World, lead: str, *members: str) -> None:
    with world.sessions() as session:
        team = Team(tenant_id=world.tenant_a, name="Sales")
        session.add(team)
        session.flush()
        session.add(
            TeamMember(
                tenant_id=world.tenant_a, team_id=team.id, user_id=world.users[lead], is_lead=True
            )
        )
        for member in members:
            session.add(
                TeamMember(tenant_id=world.tenant_a, team_id=team.id, user_id=world.users[member])
            )
        session.commit()


def _mode(world: World, who: str, mode: str) -> None:
    with world.sessions() as session:
        user = session.get(User, world.users[who])
        assert user is not None
        user.recording_mode = mode
        session.commit()


def test_the_inbox_lists_open_questions_newest_first(world: World, clock: Clock) -> None:
    older = _add(world, "a_user", 5, other_name="Older", other_number="+31611111111")
    newer = _add(world, "a_user", 1, other_name="Newer", other_number="+31622222222")
    answered = _add(world, "a_user", 2)
    _add(world, "a_user", 80)  # its 3 days are over
    _add(world, "a_user", 3, saved=True)  # saved Playback: nothing to ask
    _add(world, "a_colleague", 1)  # someone else's question
    _add(world, "b_user", 1)
    r = world.client.post(f"/api/v1/recordings/{answered}/keep", headers=world.auth("a_user"))
    assert r.status_code == 200
    r = world.client.get("/api/v1/me/inbox", headers=world.auth("a_user"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 2
    assert [i["recording_id"] for i in body["items"]] == [newer, older]
    first = body["items"][0]
    assert first["other_party"] == {"name": "Newer", "number": "+31622222222"}
    assert first["duration_ms"] == 30_000
    assert first["started_at"].endswith("+00:00") and first["expires_at"].endswith("+00:00")
    # answering empties it; expiry does too
    world.client.post(f"/api/v1/recordings/{newer}/discard", headers=world.auth("a_user"))
    assert world.client.get("/api/v1/me/inbox", headers=world.auth("a_user")).json()["count"] == 1
    clock.advance(days=3)
    assert world.client.get("/api/v1/me/inbox", headers=world.auth("a_user")).json() == {
        "count": 0,
        "items": [],
    }
    assert world.client.get("/api/v1/me/inbox", headers=world.auth("operator")).status_code == 403
    assert world.client.get("/api/v1/me/inbox").status_code == 401


def test_home_marks_and_what_a_user_sees(world: World, clock: Clock) -> None:
    unsaved = _add(world, "a_user", 1)
    saved = _add(world, "a_user", 2, saved=True)
    standard = _add(world, "a_user", 3, mode=None, saved=True)
    _add(world, "a_user", 80)  # expired: left out
    _add(world, "a_colleague", 1, mode=None, saved=True)  # a colleague's, not a team
    r = world.client.get("/api/v1/me/recordings", headers=world.auth("a_user"))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    marks = {i["recording_id"]: i["mark"] for i in items}
    # world.recording_a (started in 2026-11, expiring by the slider) may be listed too
    assert {k: v for k, v in marks.items() if k != world.recording_a} == {
        unsaved: "unsaved",
        saved: "saved",
        standard: "standard",
    }
    first = items[0]
    assert first["recording_id"] == unsaved and first["own"] is True
    left = 3 * 86400 - 3600
    assert abs(first["time_left_s"] - left) <= 1
    assert all(i["time_left_s"] is None for i in items if i["mark"] != "unsaved")
    assert first["other_party"] == {"name": "Customer", "number": "+31612345678"}


def test_a_listener_sees_team_members_standard_recordings_only(world: World, clock: Clock) -> None:
    _lead(world, "a_listener", "a_user")
    own = _add(world, "a_listener", 1)
    member_standard = _add(world, "a_user", 2, mode=None, saved=True)
    _add(world, "a_user", 3)  # the member's own Playback question: personal
    _add(world, "a_user", 4, saved=True)  # the member's saved Playback: personal
    _add(world, "a_colleague", 1, mode=None, saved=True)  # not in the team
    items = world.client.get("/api/v1/me/recordings", headers=world.auth("a_listener")).json()[
        "items"
    ]
    got = {(i["recording_id"], i["mark"], i["own"]) for i in items}
    assert (own, "unsaved", True) in got and (member_standard, "standard", False) in got
    others = {rid for rid, _mark, mine in got if not mine}
    assert others <= {member_standard, world.recording_a}
    assert all(mark == "standard" for _rid, mark, mine in got if not mine)
    # a listener who is a playback user sees no teal recordings of others
    _mode(world, "a_listener", "playback")
    items = world.client.get("/api/v1/me/recordings", headers=world.auth("a_listener")).json()[
        "items"
    ]
    assert [i["recording_id"] for i in items] == [own]


def test_home_pages_by_cursor(world: World, clock: Clock) -> None:
    made = [_add(world, "a_colleague", h) for h in range(1, 8)]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        r = world.client.get(
            "/api/v1/me/recordings", params=params, headers=world.auth("a_colleague")
        )
        assert r.status_code == 200, r.text
        seen += [i["recording_id"] for i in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen[:7] == made  # newest first, each once
    assert len(seen) == len(set(seen))
    r = world.client.get(
        "/api/v1/me/recordings", params={"cursor": "bm9wZQ"}, headers=world.auth("a_colleague")
    )
    assert (r.status_code, r.json()["error"]["id"]) == (422, "bad-cursor")
    # another user's cursor is not this list's
    r = world.client.get(
        "/api/v1/me/recordings", params={"limit": 1}, headers=world.auth("a_colleague")
    )
    other = r.json()["next_cursor"]
    r = world.client.get(
        "/api/v1/me/recordings", params={"cursor": other}, headers=world.auth("a_user")
    )
    assert r.status_code == 422
    r = world.client.get(
        "/api/v1/me/recordings", params={"limit": 101}, headers=world.auth("a_user")
    )
    assert r.status_code == 422


def test_my_own_lists(world: World, clock: Clock) -> None:
    reloads: list[int] = []
    world.app.state.context.on_directory_change = lambda: reloads.append(1)
    me = world.auth("a_user")
    r = world.client.post(
        "/api/v1/me/contacts", json={"list": "blacklist", "value": "+31 6 1111 1111"}, headers=me
    )
    assert r.status_code == 201, r.text
    black = r.json()
    assert (black["list"], black["value"]) == ("blacklist", "+31611111111")
    r = world.client.post(
        "/api/v1/me/contacts", json={"list": "whitelist", "value": "Boss@Acme.example"}, headers=me
    )
    assert r.status_code == 201
    white = r.json()
    r = world.client.post(
        "/api/v1/me/contacts", json={"list": "whitelist", "value": "+31611111111"}, headers=me
    )
    assert (r.status_code, r.json()["error"]["id"]) == (409, "contact-exists")
    for bad in ("x", "not a number", "+31" + "1" * 300):
        r = world.client.post(
            "/api/v1/me/contacts", json={"list": "whitelist", "value": bad}, headers=me
        )
        assert r.status_code == 422, bad
    r = world.client.post(
        "/api/v1/me/contacts", json={"list": "greylist", "value": "+31611111112"}, headers=me
    )
    assert r.status_code == 422
    listed = world.client.get("/api/v1/me/contacts", headers=me).json()
    assert [c["id"] for c in listed] == [black["id"], white["id"]]
    # the admin sees the same lists through the tenant's API
    r = world.client.get(
        f"/api/v1/tenants/{world.tenant_a}/users/{world.users['a_user']}/contacts",
        headers=world.auth("a_admin"),
    )
    assert r.json() == listed
    # nobody else's: a colleague neither sees nor removes them
    assert world.client.get("/api/v1/me/contacts", headers=world.auth("a_colleague")).json() == []
    r = world.client.delete(f"/api/v1/me/contacts/{black['id']}", headers=world.auth("a_colleague"))
    assert (r.status_code, r.json()["error"]["id"]) == (404, "contact-not-found")
    r = world.client.delete(f"/api/v1/me/contacts/{black['id']}", headers=me)
    assert r.status_code == 204
    assert [c["id"] for c in world.client.get("/api/v1/me/contacts", headers=me).json()] == [
        white["id"]
    ]
    assert len(reloads) == 3  # two added, one removed: SIP matching sees each at once
    with world.sessions() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("contacts.%"))
        ).all()
    assert sorted(actions) == ["contacts.add", "contacts.add", "contacts.remove"]
