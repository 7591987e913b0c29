"""Labels and comments: limits, normalisation, visibility, audit."""

from __future__ import annotations

from sqlalchemy import select

from callvault.db.models import AuditEvent
from tests.api.conftest import World


def test_labels(world: World) -> None:
    url = f"/api/v1/recordings/{world.recording_a}/labels"
    h = world.auth("a_user")
    r = world.client.post(url, json={"text": "  complaint \n  about\tdelivery "}, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["text"] == "complaint about delivery"
    dup = world.client.post(url, json={"text": "complaint about delivery"}, headers=h)
    assert dup.status_code == 409 and dup.json()["error"]["id"] == "label-exists"
    long = world.client.post(url, json={"text": "x" * 101}, headers=h)
    assert long.status_code == 422 and long.json()["error"]["id"] == "label-too-long"
    assert world.client.post(url, json={"text": "x" * 100}, headers=h).status_code == 201
    assert world.client.post(url, json={"text": "   "}, headers=h).status_code == 422
    for n in range(18):
        assert world.client.post(url, json={"text": f"l{n}"}, headers=h).status_code == 201
    full = world.client.post(url, json={"text": "one too many"}, headers=h)
    assert full.status_code == 422 and full.json()["error"]["id"] == "too-many-labels"
    labels = world.client.get(url, headers=world.auth("a_admin")).json()
    assert len(labels) == 20
    first = next(x for x in labels if x["text"] == "complaint about delivery")
    assert world.client.delete(f"{url}/{first['id']}", headers=h).status_code == 204
    assert world.client.delete(f"{url}/{first['id']}", headers=h).status_code == 404
    with world.sessions() as session:
        actions = list(
            session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("label.%")))
        )
    assert actions.count("label.add") == 20 and actions.count("label.remove") == 1


def test_labels_of_invisible_or_foreign_recordings_are_404(world: World) -> None:
    for who, rid in [("a_user", world.recording_a2), ("a_admin", world.recording_b)]:
        url = f"/api/v1/recordings/{rid}/labels"
        r = world.client.post(url, json={"text": "x"}, headers=world.auth(who))
        assert r.status_code == 404 and r.json()["error"]["id"] == "recording-not-found"
        assert world.client.get(url, headers=world.auth(who)).status_code == 404
    # a label id of another recording under this recording's path does not exist
    other = world.client.post(
        f"/api/v1/recordings/{world.recording_b}/labels",
        json={"text": "b"},
        headers=world.auth("b_user"),
    ).json()
    r = world.client.delete(
        f"/api/v1/recordings/{world.recording_a}/labels/{other['id']}",
        headers=world.auth("a_admin"),
    )
    assert r.status_code == 404


def test_comments(world: World) -> None:
    url = f"/api/v1/recordings/{world.recording_a}/comments"
    r = world.client.post(url, json={"text": " Call back on Monday "}, headers=world.auth("a_user"))
    assert r.status_code == 201, r.text
    assert r.json()["text"] == "Call back on Monday" and r.json()["author"] == "Anna"
    assert (
        world.client.post(url, json={"text": "y" * 4000}, headers=world.auth("a_admin")).status_code
        == 201
    )
    too_long = world.client.post(url, json={"text": "y" * 4001}, headers=world.auth("a_admin"))
    assert too_long.status_code == 422
    listed = world.client.get(url, headers=world.auth("a_user")).json()
    assert [c["author"] for c in listed] == ["Anna", "Ada"]
    op = world.client.post(url, json={"text": "hello"}, headers=world.auth("operator"))
    assert op.status_code == 403
    assert world.client.get(url, headers=world.auth("operator")).status_code == 200
    assert world.client.get(url, headers=world.auth("b_admin")).status_code == 404
    with world.sessions() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action == "comment.add")).all()
    assert len(rows) == 2 and all(r.target == f"recording:{world.recording_a}" for r in rows)
