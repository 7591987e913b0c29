"""Expired means unreachable at once (issue 8 section 2): every route that hands out
audio answers 410 ``audio-expired`` once ``expires_at`` passed, unless a legal hold
keeps the recording; the pages say when the audio expired."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from callvault.db.models import Recording
from tests.api.conftest import World, portal_session


def _expire(world: World, recording_id: str, at: datetime | None = None) -> None:
    with world.sessions() as session:
        session.execute(
            update(Recording)
            .where(Recording.id == recording_id)
            .values(expires_at=at or datetime(2020, 1, 1, tzinfo=UTC))
        )
        session.commit()


def _expired(response: object) -> bool:
    status = getattr(response, "status_code", None)
    return status == 410 and response.json()["error"]["id"] == "audio-expired"  # type: ignore[attr-defined]


def test_audio_of_2020_is_410_on_the_200_and_206_paths(world: World) -> None:
    url = f"/api/v1/recordings/{world.recording_a}/audio"
    h = world.auth("a_user")
    assert world.client.get(url, headers=h).status_code == 200
    assert world.client.get(url, headers={**h, "Range": "bytes=0-9"}).status_code == 206
    _expire(world, world.recording_a)
    whole = world.client.get(url, headers=h)
    assert _expired(whole), whole.text
    assert "2020-01-01" in whole.json()["error"]["message"]
    assert _expired(world.client.get(url, headers={**h, "Range": "bytes=0-9"}))
    assert _expired(world.client.get(url + "?download=true", headers=h))
    # the call is still listed
    listed = world.client.get(f"/api/v1/recordings/{world.recording_a}", headers=h)
    assert listed.status_code == 200
    # another recording is untouched
    other = f"/api/v1/recordings/{world.recording_a2}/audio"
    assert world.client.get(other, headers=world.auth("a_admin")).status_code == 200


def test_deleted_audio_is_410_too(world: World) -> None:
    with world.sessions() as session:
        session.execute(
            update(Recording)
            .where(Recording.id == world.recording_a)
            .values(audio_deleted_at=datetime(2026, 11, 5, tzinfo=UTC), audio_deleted_reason="x")
        )
        session.commit()
    url = f"/api/v1/recordings/{world.recording_a}/audio"
    assert _expired(world.client.get(url, headers=world.auth("a_user")))


def test_play_link_player_page_and_share_link_of_expired_audio(world: World) -> None:
    browser = portal_session(world, "a_user")
    shared = browser.post(
        f"/api/v1/recordings/{world.recording_a}/shares", json={"expires_in_hours": 24}
    )
    assert shared.status_code == 201, shared.text
    token = shared.json()["token"]
    assert "rec-audio" in browser.get(f"/recordings/{world.recording_a}").text
    _expire(world, world.recording_a)

    assert _expired(browser.post(f"/api/v1/recordings/{world.recording_a}/play"))
    page = browser.get(f"/recordings/{world.recording_a}")
    assert page.status_code == 200
    assert 'id="audio-expired"' in page.text and "2020-01-01" in page.text
    assert 'id="rec-audio"' not in page.text and 'id="rec-download"' not in page.text
    assert _expired(
        browser.post(f"/api/v1/recordings/{world.recording_a}/shares", json={"expires_in_hours": 1})
    )

    public = world.client  # no login
    assert _expired(public.get(f"/api/v1/shared/{token}"))
    assert _expired(public.get(f"/api/v1/shared/{token}/audio", headers={"Range": "bytes=0-9"}))
    share_page = public.get(f"/s/{token}")
    assert share_page.status_code == 200
    assert 'id="audio-expired"' in share_page.text and 'id="shared-audio"' not in share_page.text


def test_a_held_recording_stays_reachable_past_expiry(world: World) -> None:
    _expire(world, world.recording_a)
    url = f"/api/v1/recordings/{world.recording_a}/audio"
    h = world.auth("a_user")
    assert world.client.get(url, headers=h).status_code == 410
    holds = f"/api/v1/tenants/{world.tenant_a}/legal-holds"
    placed = world.client.post(
        holds,
        json={"scope": "user", "user_id": world.users["a_user"], "reason": "court order 12"},
        headers=world.auth("a_admin"),
    )
    assert placed.status_code == 201, placed.text
    assert world.client.get(url, headers={**h, "Range": "bytes=0-9"}).status_code == 206
    browser = portal_session(world, "a_user")
    page = browser.get(f"/recordings/{world.recording_a}")
    assert 'id="legal-hold"' in page.text and "court order 12" in page.text
    lifted = world.client.post(
        f"{holds}/{placed.json()['id']}/lift",
        json={"reason": "case closed"},
        headers=world.auth("operator"),
    )
    assert lifted.status_code == 200 and lifted.json()["active"] is False
    assert world.client.get(url, headers=h).status_code == 410
