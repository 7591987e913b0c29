"""The portal's pages per role and language, rendered by a TestClient."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from callvault.db.models import Tenant
from callvault.portal import i18n
from tests.portal.conftest import Portal

PROTECTED = ["/reports/calls", "/settings/recording", "/audit", "/operator/tenants"]


@pytest.mark.parametrize("path", PROTECTED)
def test_anonymous_is_sent_to_login(portal: Portal, path: str) -> None:
    r = portal.client().get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")


def test_anonymous_recording_page_goes_to_login(portal: Portal) -> None:
    r = portal.client().get(f"/recordings/{portal.recording_a}")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


@pytest.mark.parametrize(
    ("accept", "word"),
    [("nl-NL,nl;q=0.9", "Wachtwoord"), ("de-DE", "Passwort"), ("en", "Password")],
)
def test_login_page_in_each_language(portal: Portal, accept: str, word: str) -> None:
    r = portal.client().get("/login", headers={"Accept-Language": accept})
    assert r.status_code == 200
    assert word in r.text
    assert 'id="login-form"' in r.text


def test_home_sends_each_role_to_its_start_page(portal: Portal) -> None:
    assert portal.client().get("/").headers["location"] == "/login"
    # a user's start is the app's home screen (the recordings, SPEC 6); others' Reports
    assert portal.client("a_user").get("/").headers["location"] == "/home"
    assert portal.client("a_listener").get("/").headers["location"] == "/reports/calls"
    assert portal.client("a_admin").get("/").headers["location"] == "/reports/calls"
    assert portal.client("operator").get("/").headers["location"] == "/operator/tenants"


# role -> path -> expected status
ACCESS = {
    "a_admin": {
        "/reports/calls": 200,
        "/settings/recording": 200,
        "/audit": 200,
        "/operator/tenants": 403,
    },
    "a_listener": {
        "/reports/calls": 200,
        "/settings/recording": 403,
        "/audit": 403,
        "/operator/tenants": 403,
    },
    "a_user": {
        "/reports/calls": 200,
        "/settings/recording": 403,
        "/audit": 403,
        "/operator/tenants": 403,
    },
    "operator": {
        "/reports/calls": 403,
        "/settings/recording": 403,
        "/audit": 403,
        "/operator/tenants": 200,
    },
}


@pytest.mark.parametrize("who", sorted(ACCESS))
def test_pages_per_role(portal: Portal, who: str) -> None:
    client = portal.client(who)
    for path, status in ACCESS[who].items():
        r = client.get(path)
        assert r.status_code == status, (who, path, r.status_code)
        assert r.headers["content-type"].startswith("text/html")
        if status == 403:
            assert 'data-error="403"' in r.text


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("nl", ["Snelcode", "Op verzoek, gestart door gebruiker", "die worden opgenomen"]),
        ("de", ["Kurzwahl", "Auf Wunsch, vom Benutzer gestartet", "Aufgezeichnete Benutzer"]),
        ("en", ["Short code", "On demand, started by user", "Recorded users"]),
    ],
)
def test_settings_page_in_the_users_language(
    portal: Portal, language: str, words: list[str]
) -> None:
    r = portal.client("a_admin", language=language).get("/settings/recording")
    assert r.status_code == 200
    assert f'<html lang="{language}">' in r.text
    for word in words:
        assert word in r.text
    # Anna and Arie are listed with a mode dropdown and a cross; Frits has a plus
    assert f'data-remove="{portal.users["a_user"]}"' in r.text
    assert f'data-add="{portal.users["a_fresh"]}"' in r.text
    assert 'type="range"' in r.text and 'min="7"' in r.text and 'max="180"' in r.text


def test_language_falls_back_to_the_tenants(portal: Portal) -> None:
    with portal.sessions() as session:
        tenant = session.get(Tenant, portal.tenant_a)
        assert tenant is not None
        tenant.language = "de"
        session.commit()
    r = portal.client("a_user", language=None).get("/reports/calls")
    assert "Berichte › Gespräche" in r.text


def test_language_switch_is_kept_per_user(portal: Portal) -> None:
    client = portal.client("a_user", language="nl")
    csrf = client.headers["X-CSRF-Token"]
    r = client.post("/language", data={"language": "en", "csrf_token": "wrong", "next": "/"})
    assert r.status_code == 403
    r = client.post(
        "/language", data={"language": "en", "csrf_token": csrf, "next": "/reports/calls"}
    )
    assert r.status_code == 303 and r.headers["location"] == "/reports/calls"
    assert "Reports › Calls" in portal.client("a_user").get("/reports/calls").text


def test_notice_comes_before_everything(portal: Portal) -> None:
    r = portal.client("b_admin", language="en").get("/settings/recording")
    assert r.status_code == 200
    assert 'id="accept-form"' in r.text and "Purpose of recording" in r.text
    assert 'id="recorded-users"' not in r.text and 'id="short_code"' not in r.text


def test_reports_show_what_the_api_shows(portal: Portal) -> None:
    admin = portal.client("a_admin").get("/reports/calls").text
    assert portal.recording_a in admin and portal.recording_a2 in admin
    assert portal.recording_b not in admin
    assert 'class="icon play"' in admin and 'class="icon download"' in admin
    user = portal.client("a_user").get("/reports/calls").text
    assert portal.recording_a in user and portal.recording_a2 not in user


def test_report_filters_and_their_errors(portal: Portal) -> None:
    client = portal.client("a_admin", language="en")
    r = client.get("/reports/calls", params={"direction": "outbound"})
    assert r.status_code == 200 and "No calls found." in r.text
    r = client.get("/reports/calls", params={"from": "2026-11-01", "to": "2026-11-01"})
    assert portal.recording_a in r.text  # the last day of a period counts whole
    r = client.get("/reports/calls", params={"number": "not a number"})
    assert r.status_code == 200 and 'id="filter-error"' in r.text


def test_stream_only_tenant_has_no_download_buttons(portal: Portal) -> None:
    with portal.sessions() as session:
        tenant = session.get(Tenant, portal.tenant_a)
        assert tenant is not None
        tenant.stream_only = True
        session.commit()
    client = portal.client("a_admin")
    report = client.get("/reports/calls").text
    assert 'class="icon play"' in report and 'class="icon download"' not in report
    page = client.get(f"/recordings/{portal.recording_a}").text
    assert 'id="rec-download"' not in page


def test_recording_page_and_foreign_recordings(portal: Portal) -> None:
    user = portal.client("a_user", language="de")
    r = user.get(f"/recordings/{portal.recording_a}")
    assert r.status_code == 200
    assert 'id="waveform"' in r.text and "Wellenform" in r.text
    assert f"/api/v1/recordings/{portal.recording_a}/audio" in r.text
    for foreign in (portal.recording_a2, portal.recording_b, "0" * 32, "nonsense"):
        r = user.get(f"/recordings/{foreign}")
        assert r.status_code == 404 and "Nicht gefunden" in r.text
    assert portal.client("a_admin").get(f"/recordings/{portal.recording_a2}").status_code == 200


def test_audit_page_lists_the_tenants_events(portal: Portal) -> None:
    client = portal.client("a_admin", language="en")
    client.get(f"/api/v1/recordings/{portal.recording_a}/audio")
    r = client.get("/audit")
    assert r.status_code == 200 and "Audit log" in r.text
    assert "recording.download" in r.text and "login.success" in r.text


def test_operator_pages(portal: Portal) -> None:
    client = portal.client("operator")
    r = client.get("/operator/tenants")
    assert "Alpha" in r.text and "Beta" in r.text and 'id="tenant-form"' in r.text
    r = client.get(f"/operator/tenants/{portal.tenant_a}")
    assert r.status_code == 200 and "Anna" in r.text and 'id="usage"' in r.text
    assert client.get("/operator/tenants/9999").status_code == 404


def test_share_page_is_public(portal: Portal) -> None:
    r = portal.client().get("/s/abcdefghijklmnop", headers={"Accept-Language": "en"})
    assert r.status_code == 200 and "Shared recording" in r.text
    assert portal.client().get("/s/x").status_code == 404


def test_logout_ends_the_session(portal: Portal) -> None:
    client = portal.client("a_user")
    r = client.post("/logout", data={"csrf_token": client.headers["X-CSRF-Token"]})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert client.get("/reports/calls").status_code == 303


def test_static_files_are_served(portal: Portal) -> None:
    client = portal.client()
    for name in ("portal.js", "waveform.js", "portal.css"):
        assert client.get(f"/static/{name}").status_code == 200


def test_every_word_exists_in_every_language_and_templates_use_known_words() -> None:
    for key in i18n.known_keys():
        for language in i18n.LANGUAGES:
            assert i18n.translate(language, key).strip(), (key, language)
    templates = Path(i18n.__file__).parent / "templates"
    used: set[str] = set()
    for template in templates.glob("*.html"):
        used.update(re.findall(r"""t\(["']([a-z0-9_.]+)["']\)""", template.read_text()))
    assert used and used <= i18n.known_keys(), used - i18n.known_keys()
