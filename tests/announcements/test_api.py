"""The announcements API and the settings options (SPEC 3), against the live app.

Uploads go as the body itself (``audio/wav``, ``audio/mpeg``); the stored
prompt is checked by content (the uploaded tone is found in the WAV the audio
route answers), and the SIP side's ``Directory`` sees the blob key at once.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from callvault.admin import accept_legal_notice
from callvault.announcements.library import shipped_wav
from callvault.db.models import AnnouncementPrompt, AuditEvent, Tenant, User
from callvault.tenants.directory import Directory
from tests.announcements.audio import mp3_file, peak_hz, read_wav, tone, wav_file
from tests.api.conftest import World, portal_session

WAV = wav_file(tone(1000, 2.0, 44100), 44100, channels=2)


def _accept(world: World, tenant: str = "a") -> None:
    with world.sessions() as session:
        tenant_id = world.tenant_a if tenant == "a" else world.tenant_b
        row = session.get(Tenant, tenant_id)
        admin = session.get(User, world.users[f"{tenant}_admin"])
        assert row is not None and admin is not None
        accept_legal_notice(session, row, admin)
        session.commit()


def _base(world: World, tenant: int | None = None) -> str:
    return f"/api/v1/tenants/{tenant or world.tenant_a}/announcements"


def _put(
    world: World,
    kind: str,
    data: bytes,
    *,
    who: str = "a_admin",
    content_type: str = "audio/wav",
    name: str = "welcome.wav",
    tenant: int | None = None,
) -> Any:
    return world.client.put(
        f"{_base(world, tenant)}/{kind}",
        params={"filename": name},
        content=data,
        headers=world.auth(who) | {"Content-Type": content_type},
    )


def _audits(world: World, action: str) -> list[AuditEvent]:
    with world.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _policy_prompts(world: World, tenant_id: int) -> dict[str, str]:
    with world.sessions() as session:
        return dict(Directory.load(session).policy(tenant_id).prompts)


def test_the_shipped_prompts_are_listed_in_the_tenants_language(world: World) -> None:
    r = world.client.get(_base(world), headers=world.auth("a_admin"))
    assert r.status_code == 200, r.text
    assert [(p["kind"], p["custom"], p["language"]) for p in r.json()] == [
        ("start", False, "nl"),
        ("stop", False, "nl"),
    ]
    assert all(1000 < p["duration_ms"] < 5000 for p in r.json())
    audio = world.client.get(r.json()[0]["audio_url"], headers=world.auth("a_admin"))
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert audio.content == shipped_wav("nl", "start")


def test_upload_listen_replace_and_delete(world: World) -> None:
    _accept(world)
    r = _put(world, "start", WAV)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["custom"] is True and out["language"] is None
    assert out["original_name"] == "welcome.wav" and abs(out["duration_ms"] - 2000) <= 10
    assert out["uploaded_by"] == f"user:{world.users['a_admin']}"
    assert out["uploaded_at"].endswith("+00:00")
    # listening back: the uploaded tone, now 8 kHz mono
    audio = world.client.get(out["audio_url"], headers=world.auth("a_admin"))
    rate, channels, _, samples = read_wav(audio.content)
    assert (rate, channels) == (8000, 1) and abs(peak_hz(samples, rate) - 1000) < 10
    listed = world.client.get(_base(world), headers=world.auth("a_admin")).json()
    assert [p["custom"] for p in listed] == [True, False]
    # the B2BUA's directory names the blob, which holds the converted prompt
    first_key = _policy_prompts(world, world.tenant_a)["start"]
    assert first_key.startswith(f"announcements/{world.tenant_a}/start-")
    assert world.blobs.read(first_key) == audio.content
    assert _policy_prompts(world, world.tenant_b) == {}
    (upload,) = _audits(world, "announcement.upload")
    assert upload.tenant_id == world.tenant_a and upload.target == "announcement:start"
    assert upload.details["sha256"] == out["sha256"] and upload.details["replaced"] is False

    # replacing it with an MP3: a new blob, the old one deleted
    mp3 = mp3_file(tone(600, 1.5, 44100), 44100)
    r = _put(world, "start", mp3, content_type="audio/mpeg", name="new.mp3")
    assert r.status_code == 200, r.text
    second_key = _policy_prompts(world, world.tenant_a)["start"]
    assert second_key != first_key
    _, _, _, samples = read_wav(world.blobs.read(second_key))
    assert abs(peak_hz(samples, 8000) - 600) < 10
    with pytest.raises(KeyError):
        world.blobs.read(first_key)
    assert _audits(world, "announcement.upload")[-1].details["replaced"] is True

    # back to the shipped one
    r = world.client.delete(f"{_base(world)}/start", headers=world.auth("a_admin"))
    assert r.status_code == 204, r.text
    assert _policy_prompts(world, world.tenant_a) == {}
    with pytest.raises(KeyError):
        world.blobs.read(second_key)
    audio = world.client.get(f"{_base(world)}/start/audio", headers=world.auth("a_admin"))
    assert audio.content == shipped_wav("nl", "start")
    (deleted,) = _audits(world, "announcement.delete")
    assert deleted.target == "announcement:start"
    again = world.client.delete(f"{_base(world)}/start", headers=world.auth("a_admin"))
    assert again.status_code == 404 and again.json()["error"]["id"] == "prompt-not-found"


def test_the_directory_is_reloaded_on_every_change(world: World) -> None:
    calls: list[str] = []
    world.app.state.context.on_directory_change = lambda: calls.append("reload")
    _accept(world)
    assert _put(world, "stop", WAV).status_code == 200
    assert world.client.delete(f"{_base(world)}/stop", headers=world.auth("a_admin")).status_code
    assert calls == ["reload", "reload"]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "error"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "audio/wav", 422, "prompt-format"),
        (wav_file(tone(800, 31.0, 8000), 8000), "audio/wav", 422, "prompt-too-long"),
        (wav_file(tone(800, 0.1, 8000), 8000), "audio/wav", 422, "prompt-too-short"),
        (wav_file(tone(800, 1.0, 8000, amplitude=0.0), 8000), "audio/wav", 422, "prompt-silent"),
        (WAV, "text/plain", 415, "unsupported-media-type"),
    ],
)
def test_refused_uploads_change_nothing(
    world: World, data: bytes, content_type: str, status: int, error: str
) -> None:
    _accept(world)
    r = _put(world, "start", data, content_type=content_type)
    assert r.status_code == status, r.text
    assert r.json()["error"]["id"] == error
    with world.sessions() as session:
        assert session.scalars(select(AnnouncementPrompt)).all() == []
    assert _audits(world, "announcement.upload") == []


def test_a_body_over_2_mib_is_413_whether_declared_or_streamed(world: World) -> None:
    _accept(world)
    big = b"RIFF" + b"\x00" * (2 * 1024 * 1024)
    r = _put(world, "start", big)
    assert r.status_code == 413 and r.json()["error"]["id"] == "prompt-too-large"

    def chunks() -> Any:  # no Content-Length: the limit holds while reading
        for _ in range(3):
            yield b"\x00" * (1024 * 1024)

    r = world.client.put(
        f"{_base(world)}/start",
        content=chunks(),
        headers=world.auth("a_admin") | {"Content-Type": "audio/wav"},
    )
    assert r.status_code == 413 and r.json()["error"]["id"] == "prompt-too-large"


def test_an_unknown_kind_is_422(world: World) -> None:
    _accept(world)
    assert _put(world, "middle", WAV).status_code == 422


def test_uploading_needs_the_legal_notice(world: World) -> None:
    r = _put(world, "start", WAV)
    assert r.status_code == 409 and r.json()["error"]["id"] == "legal-notice-required"


def test_only_the_tenants_own_admin_uploads(world: World) -> None:
    _accept(world)
    for who in ("operator", "a_listener", "a_user"):
        r = _put(world, "start", WAV, who=who)
        assert r.status_code == 403, (who, r.text)
    assert world.client.get(_base(world), headers=world.auth("operator")).status_code == 200
    for who in ("a_listener", "a_user"):
        assert world.client.get(_base(world), headers=world.auth(who)).status_code == 403
        audio = world.client.get(f"{_base(world)}/start/audio", headers=world.auth(who))
        assert audio.status_code == 403


def test_another_tenants_prompts_are_404(world: World) -> None:
    _accept(world, "b")
    assert _put(world, "start", WAV, who="b_admin", tenant=world.tenant_b).status_code == 200
    foreign = _base(world, world.tenant_b)
    admin = world.auth("a_admin")
    assert world.client.get(foreign, headers=admin).status_code == 404
    assert world.client.get(f"{foreign}/start/audio", headers=admin).status_code == 404
    assert _put(world, "start", WAV, tenant=world.tenant_b).status_code == 404
    assert world.client.delete(f"{foreign}/start", headers=admin).status_code == 404
    assert _policy_prompts(world, world.tenant_b).keys() == {"start"}


def test_the_options_round_trip_audited_and_reach_the_directory(world: World) -> None:
    _accept(world)
    url = f"/api/v1/tenants/{world.tenant_a}/recording-settings"
    before = world.client.get(url, headers=world.auth("a_admin")).json()
    assert (
        before["announce_start"],
        before["announce_stop"],
        before["announce_after_transfer"],
        before["hide_code_from_other"],
    ) == (True, True, False, False)
    wanted = {
        "announce_start": False,
        "announce_stop": False,
        "announce_after_transfer": True,
        "hide_code_from_other": True,
        "language": "de",
    }
    r = world.client.patch(url, json=wanted, headers=world.auth("a_admin"))
    assert r.status_code == 200, r.text
    assert {key: r.json()[key] for key in wanted} == wanted
    after = world.client.get(url, headers=world.auth("a_admin")).json()
    assert {key: after[key] for key in wanted} == wanted
    (row,) = _audits(world, "settings.recording")
    assert row.details["announce_after_transfer"] is True
    assert row.details["old"]["announce_start"] is True
    with world.sessions() as session:
        policy = Directory.load(session).policy(world.tenant_a)
    assert (
        policy.language,
        policy.announce_start,
        policy.announce_stop,
        policy.announce_after_transfer,
        policy.hide_code_from_other,
    ) == ("de", False, False, True, True)
    # the shipped prompts now play in German
    listed = world.client.get(_base(world), headers=world.auth("a_admin")).json()
    assert [p["language"] for p in listed] == ["de", "de"]
    bad = world.client.patch(url, json={"announce_start": "maybe"}, headers=world.auth("a_admin"))
    assert bad.status_code == 422


def test_the_settings_page_shows_options_prompts_and_the_upload_form(world: World) -> None:
    _accept(world)
    assert _put(world, "stop", WAV, name="bye.wav").status_code == 200
    page = portal_session(world, "a_admin").get("/settings/recording")
    assert page.status_code == 200
    html = page.text
    for field in ("announce_start", "announce_stop"):  # on by default
        assert f'data-option="{field}" checked>' in html
    for field in ("announce_after_transfer", "hide_code_from_other"):  # off by default
        assert f'data-option="{field}" >' in html
    assert f'src="/api/v1/tenants/{world.tenant_a}/announcements/start/audio"' in html
    assert 'data-upload="start"' in html and 'data-upload="stop"' in html
    assert 'data-reset="stop"' in html and 'data-reset="start"' not in html
    assert "bye.wav" in html
    assert '<script src="/static/announcements.js"></script>' in html
    assert "<script>" not in html.replace('<script id="cv-messages"', "")


def test_the_settings_page_speaks_the_manuals_german(world: World) -> None:
    _accept(world)
    with world.sessions() as session:
        admin = session.get(User, world.users["a_admin"])
        assert admin is not None
        admin.language = "de"
        session.commit()
    html = portal_session(world, "a_admin").get("/settings/recording").text
    assert "Den Anrufer bei der Weiterleitung erneut über die Aufzeichnung informieren" in html
    assert "dass die Aufzeichnung gestartet wurde" in html
