"""Playback's question answered through the API (issue 9, SPEC section 6): keep, discard,
twice, too late, under a legal hold, by someone else; the notification's token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from callvault.db.models import AuditEvent, DeletionReceipt, LegalHold, Recording, Tenant, User
from callvault.playback.answers import (
    action_key,
    action_token,
    recording_action_token,
    verify_action_token,
)
from callvault.retention.rule import retention_expiry
from tests.api.conftest import Clock, World, portal_session
from tests.playback.helpers import recording


def _unsaved(world: World, clock: Clock, who: str = "a_user", ago: timedelta | None = None) -> str:
    tenant = world.tenant_b if who.startswith("b_") else world.tenant_a
    with world.sessions() as session:
        rid = recording(
            session,
            world.blobs,
            tenant,
            world.users[who],
            clock.now - (ago or timedelta(hours=1)),
        )
        session.commit()
    return rid


def _row(world: World, rid: str) -> Recording:
    with world.sessions() as session:
        row = session.get(Recording, rid)
        assert row is not None
        session.expunge(row)
        return row


def _audits(world: World, action: str) -> list[AuditEvent]:
    with world.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _token(world: World, rid: str) -> str:
    with world.sessions() as session:
        row = session.get(Recording, rid)
        assert row is not None
        token = recording_action_token(session, row)
        session.commit()
        return token


def test_keep_saves_for_the_plans_period_once(world: World, clock: Clock) -> None:
    rid = _unsaved(world, clock)
    r = world.client.post(f"/api/v1/recordings/{rid}/keep", headers=world.auth("a_user"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["answer"], body["saved"], body["audio_deleted"]) == ("keep", True, False)
    row = _row(world, rid)
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        assert tenant is not None
        expected = retention_expiry(
            row.started_at, tenant.retention_days, tenant.retention_changed_at, tenant.timezone
        )
    assert row.saved and row.answer == "keep" and row.answered_at is not None
    assert row.expires_at is not None
    assert row.expires_at.replace(tzinfo=UTC) == expected  # not the 3 days any more
    assert datetime.fromisoformat(body["expires_at"]) == expected
    assert body["expires_at"].endswith("+00:00")
    [event] = _audits(world, "playback.keep")
    assert event.target == f"recording:{rid}" and event.actor == f"user:{world.users['a_user']}"

    # twice: a clear message, whichever button
    for action in ("keep", "discard"):
        r = world.client.post(f"/api/v1/recordings/{rid}/{action}", headers=world.auth("a_user"))
        assert (r.status_code, r.json()["error"]["id"]) == (409, "playback-answered")
        assert "kept already on" in r.json()["error"]["message"]
    assert len(_audits(world, "playback.keep")) == 1
    assert world.blobs.read(row.blob_key)  # kept means kept


def test_discard_deletes_the_audio_at_once_with_a_receipt(world: World, clock: Clock) -> None:
    rid = _unsaved(world, clock)
    key = _row(world, rid).blob_key
    r = world.client.post(f"/api/v1/recordings/{rid}/discard", headers=world.auth("a_user"))
    assert r.status_code == 200, r.text
    assert (r.json()["answer"], r.json()["audio_deleted"], r.json()["expires_at"]) == (
        "discard",
        True,
        None,
    )
    assert not (world.blobs.root / key).exists()
    row = _row(world, rid)
    assert (row.answer, row.audio_deleted_reason) == ("discard", "discarded")
    with world.sessions() as session:
        [receipt] = session.scalars(select(DeletionReceipt)).all()
        assert receipt.kind == "discard" and receipt.finished_at is not None
        assert receipt.tenant_id == world.tenant_a and receipt.counts["reason"] == "discarded"
    assert len(_audits(world, "playback.discard")) == 1
    r = world.client.get(f"/api/v1/recordings/{rid}/audio", headers=world.auth("a_user"))
    assert (r.status_code, r.json()["error"]["id"]) == (410, "audio-expired")
    r = world.client.post(f"/api/v1/recordings/{rid}/keep", headers=world.auth("a_user"))
    assert (r.status_code, r.json()["error"]["id"]) == (409, "playback-answered")
    assert "discarded already on" in r.json()["error"]["message"]


def test_a_legal_hold_refuses_discard_but_not_keep(world: World, clock: Clock) -> None:
    rid = _unsaved(world, clock)
    with world.sessions() as session:
        session.add(
            LegalHold(
                tenant_id=world.tenant_a,
                scope="recording",
                recording_id=rid,
                reason="court order",
                placed_by="operator",
                placed_at=clock.now,
            )
        )
        session.commit()
    r = world.client.post(f"/api/v1/recordings/{rid}/discard", headers=world.auth("a_user"))
    assert (r.status_code, r.json()["error"]["id"]) == (409, "legal-hold-active")
    row = _row(world, rid)
    assert row.answer is None and row.audio_deleted_at is None
    assert world.blobs.read(row.blob_key)
    assert not _audits(world, "playback.discard")
    r = world.client.post(f"/api/v1/recordings/{rid}/keep", headers=world.auth("a_user"))
    assert r.status_code == 200


def test_after_expiry_the_answer_is_410(world: World, clock: Clock) -> None:
    rid = _unsaved(world, clock)
    clock.advance(days=3)
    for action in ("keep", "discard"):
        r = world.client.post(f"/api/v1/recordings/{rid}/{action}", headers=world.auth("a_user"))
        assert (r.status_code, r.json()["error"]["id"]) == (410, "audio-expired")
    assert _row(world, rid).answer is None


def test_a_recording_nobody_asked_about(world: World, clock: Clock) -> None:
    for rid in (world.recording_a, _saved_playback(world, clock)):
        r = world.client.post(f"/api/v1/recordings/{rid}/keep", headers=world.auth("a_user"))
        assert (r.status_code, r.json()["error"]["id"]) == (409, "playback-not-asked")


def _saved_playback(world: World, clock: Clock) -> str:
    with world.sessions() as session:
        rid = recording(
            session, world.blobs, world.tenant_a, world.users["a_user"], clock.now, saved=True
        )
        session.commit()
    return rid


def test_only_the_recordings_own_user_answers(world: World, clock: Clock) -> None:
    rid = _unsaved(world, clock)
    foreign = _unsaved(world, clock, "b_user")
    for who, status in (
        ("a_admin", 403),  # sees it, may not answer for the user
        ("operator", 403),
        ("a_listener", 404),  # does not see it
        ("a_colleague", 404),
        ("b_admin", 404),
        ("b_user", 404),
    ):
        for action in ("keep", "discard"):
            r = world.client.post(f"/api/v1/recordings/{rid}/{action}", headers=world.auth(who))
            assert r.status_code == status, (who, action, r.text)
    r = world.client.post(f"/api/v1/recordings/{foreign}/keep", headers=world.auth("a_user"))
    assert (r.status_code, r.json()["error"]["id"]) == (404, "recording-not-found")
    assert world.client.post(f"/api/v1/recordings/{rid}/keep").status_code == 401
    assert _row(world, rid).answer is None and _row(world, foreign).answer is None


def test_a_portal_session_needs_its_csrf_token(world: World, clock: Clock) -> None:
    rid = _unsaved(world, clock)
    browser = portal_session(world, "a_user")
    csrf = browser.headers.pop("X-CSRF-Token")
    r = browser.post(f"/api/v1/recordings/{rid}/keep")
    assert (r.status_code, r.json()["error"]["id"]) == (403, "csrf-failed")
    r = browser.post(f"/api/v1/recordings/{rid}/keep", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200


def test_the_notifications_token_answers_without_a_session(world: World, clock: Clock) -> None:
    kept, discarded = _unsaved(world, clock), _unsaved(world, clock)
    r = world.client.post(
        "/api/v1/playback/answer", json={"token": _token(world, kept), "answer": "keep"}
    )
    assert r.status_code == 200, r.text
    assert _row(world, kept).saved
    [event] = _audits(world, "playback.keep")
    assert event.actor == f"user:{world.users['a_user']}" and event.details["via"] == "token"
    # a cookie session without its CSRF token: the token is the authority, not the cookie
    browser = portal_session(world, "a_user")
    del browser.headers["X-CSRF-Token"]
    r = browser.post(
        "/api/v1/playback/answer", json={"token": _token(world, discarded), "answer": "discard"}
    )
    assert r.status_code == 200 and r.json()["audio_deleted"] is True
    # again: the answer stands
    r = world.client.post(
        "/api/v1/playback/answer", json={"token": _token(world, kept), "answer": "discard"}
    )
    assert (r.status_code, r.json()["error"]["id"]) == (409, "playback-answered")


def test_a_token_answers_its_own_recording_only(world: World, clock: Clock) -> None:
    a, b = _unsaved(world, clock), _unsaved(world, clock)
    token_a = _token(world, a)
    # the recording id swapped for another's: the MAC no longer matches
    forged = token_a.replace(a, b)
    r = world.client.post("/api/v1/playback/answer", json={"token": forged, "answer": "discard"})
    assert (r.status_code, r.json()["error"]["id"]) == (403, "action-token-invalid")
    # the same for another user id, a longer expiry, another server's key, garbage
    _v, rid, user, expires, mac = token_a.split(".")
    other_user = world.users["a_colleague"]
    with world.sessions() as session:
        key = action_key(session)
    for bad in (
        f"v1.{rid}.{other_user}.{expires}.{mac}",
        f"v1.{rid}.{user}.{int(expires) + 86400}.{mac}",
        action_token(b"x" * 32, a, int(user), datetime.fromtimestamp(int(expires), UTC)),
        "v1.nonsense",
        "",
    ):
        r = world.client.post("/api/v1/playback/answer", json={"token": bad, "answer": "keep"})
        assert r.status_code in (403, 422), (bad, r.text)
        if r.status_code == 403:
            assert r.json()["error"]["id"] == "action-token-invalid"
    r = world.client.post("/api/v1/playback/answer", json={"token": "v" * 201, "answer": "keep"})
    assert r.status_code == 422  # refused unread
    assert _row(world, a).answer is None and _row(world, b).answer is None
    # a genuine token of another user's recording made for a_user names nobody's recording
    foreign = _unsaved(world, clock, "b_user")
    cross = action_token(key, foreign, world.users["a_user"], clock.now + timedelta(days=1))
    r = world.client.post("/api/v1/playback/answer", json={"token": cross, "answer": "discard"})
    assert (r.status_code, r.json()["error"]["id"]) == (404, "recording-not-found")
    assert _row(world, foreign).answer is None
    # and the token of A still answers A
    r = world.client.post("/api/v1/playback/answer", json={"token": token_a, "answer": "keep"})
    assert r.status_code == 200 and r.json()["recording_id"] == a


def test_an_expired_token_is_410_and_a_deactivated_user_401(world: World, clock: Clock) -> None:
    rid = _unsaved(world, clock)
    token = _token(world, rid)
    with world.sessions() as session:
        claim = verify_action_token(action_key(session), token, clock.now)
    assert claim.recording_id == rid and claim.user_id == world.users["a_user"]
    expires_at = _row(world, rid).expires_at
    assert expires_at is not None  # whole seconds: the token never outlives the question
    assert claim.expires_at == expires_at.replace(tzinfo=UTC, microsecond=0)
    clock.advance(days=3)
    r = world.client.post("/api/v1/playback/answer", json={"token": token, "answer": "keep"})
    assert (r.status_code, r.json()["error"]["id"]) == (410, "action-token-expired")
    assert "expired" in r.json()["error"]["message"]

    clock.advance(days=-3)
    with world.sessions() as session:
        user = session.get(User, world.users["a_user"])
        assert user is not None
        user.active = False
        session.commit()
    r = world.client.post("/api/v1/playback/answer", json={"token": token, "answer": "keep"})
    assert (r.status_code, r.json()["error"]["id"]) == (401, "auth-invalid")
    assert _row(world, rid).answer is None


def test_stream_only_playback_users_stream_and_never_download(world: World, clock: Clock) -> None:
    """SPEC 6 settings: the tenant's stream-only decides for playback users as for anyone."""
    rid = _unsaved(world, clock)
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        user = session.get(User, world.users["a_user"])
        assert tenant is not None and user is not None
        tenant.stream_only, user.recording_mode = True, "playback"
        session.commit()
    for query in ("", "?download=true"):
        r = world.client.get(f"/api/v1/recordings/{rid}/audio{query}", headers=world.auth("a_user"))
        assert (r.status_code, r.json()["error"]["id"]) == (403, "stream-only")
    browser = portal_session(world, "a_user")
    r = browser.post(f"/api/v1/recordings/{rid}/play")
    assert r.status_code == 200
    url = r.json()["url"]
    assert browser.get(url).status_code == 403  # no Range: a download, refused
    assert browser.get(f"{url}&download=true", headers={"Range": "bytes=0-"}).status_code == 403
    r = browser.get(url, headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and len(r.content) == 100  # the player streams
