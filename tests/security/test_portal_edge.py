"""The HTTP edge: headers, open redirects, /metrics and /docs, multipart (items 4, 6, 7).

Found: ``/login?next=/%09/evil.example/x`` sent the user off-site after login;
no CSP or framing rule; ``/metrics``, ``/docs`` and ``/redoc`` open to
anyone; a multipart POST carrying a session cookie was a 500. Runs on the API
suite's world against the live app.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from callvault.portal.app import create_app
from callvault.portal.context import PortalContext
from callvault.portal.pages.account import safe_next
from tests.api import conftest as api
from tests.api.conftest import PASSWORD, World, give_login

world = api.world

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "callvault" / "portal" / "templates"


def _session(world: World, who: str) -> TestClient:
    client = TestClient(world.app, base_url="https://testserver", follow_redirects=False)
    r = client.post("/api/v1/session", json={"login": give_login(world, who), "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


NASTY = [
    "//evil.example/x",
    "/\\evil.example/x",
    "\\\\evil.example/x",
    "/\t/evil.example/x",
    "/%09/evil.example/x",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/%0d%0a/evil.example",
    "/%2f%2fevil.example",
    "/%2F/evil.example",
    "%2f%2fevil.example",
    "/%5cevil.example",
    "/%255c%255cevil.example",
    "/%25252f%25252fevil.example",
    "https://evil.example/",
    "http:evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    " /evil",
    "/ /evil.example",
    "/\u00a0/evil.example",
    "/\x00/evil.example",
    "/\x7f/evil.example",
    "evil.example",
    "",
    "/" + "a" * 3000,
]
GOOD = ["/", "/reports/calls", "/reports/calls?from=2026-11-01&to=2026-11-02", "/recordings/ab12"]


@pytest.mark.parametrize("value", NASTY)
def test_next_refuses_anything_but_a_local_path(value: str) -> None:
    assert safe_next(value) == "/"


@pytest.mark.parametrize("value", GOOD)
def test_next_keeps_local_paths(value: str) -> None:
    assert safe_next(value) == value


def test_the_login_page_never_sends_the_user_off_site(world: World) -> None:
    client = TestClient(world.app, base_url="https://testserver", follow_redirects=False)
    r = client.get("/login?next=/%09/evil.example/x")
    # the login form's script goes to data-next after logging in
    assert r.status_code == 200 and re.findall(r'data-next="([^"]*)"', r.text) == ["/"]
    logged_in = _session(world, "a_user")
    r = logged_in.get("/login?next=/%09/evil.example/x")
    assert r.status_code == 303 and r.headers["location"] == "/"
    r = logged_in.post(
        "/language",
        data={"language": "en", "csrf_token": logged_in.headers["X-CSRF-Token"], "next": "//x.y"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_security_headers_on_pages_api_static_and_errors(world: World) -> None:
    browser = _session(world, "a_user")
    for path in ("/login", "/reports/calls", "/api/v1/me", "/static/portal.js", "/nowhere"):
        r = browser.get(path)
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self';" in csp, path
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "same-origin", path
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["strict-transport-security"].startswith("max-age="), path
    # HSTS only when the request came over HTTPS
    assert "strict-transport-security" not in world.client.get("/login").headers


def test_templates_carry_no_inline_script_or_style() -> None:
    """So the CSP needs no 'unsafe-inline': scripts are files, data is JSON."""
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, (template.name, tag)
        assert not re.search(r"\son[a-z]+\s*=", text), template.name
        assert not re.search(r"\sstyle\s*=", text) and "<style" not in text, template.name


def test_metrics_need_the_operator_or_the_metrics_token(world: World) -> None:
    assert world.client.get("/metrics").status_code == 401
    assert world.client.get("/metrics", headers=world.auth("a_admin")).status_code == 403
    assert world.client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    r = world.client.get("/metrics", headers=world.auth("operator"))
    assert r.status_code == 200 and "callvault_active_calls" in r.text
    token = "m" * 32
    app = create_app(PortalContext(world.sessions, world.blobs), metrics_token=token)
    with TestClient(app) as scraper:
        assert scraper.get("/metrics").status_code == 401
        assert (
            scraper.get("/metrics", headers={"Authorization": "Bearer " + "n" * 32}).status_code
            == 401
        )
        r = scraper.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and "callvault_active_calls" in r.text


def test_docs_need_a_login(world: World) -> None:
    nobody = TestClient(world.app, base_url="https://testserver", follow_redirects=False)
    for path in ("/docs", "/redoc"):
        r = nobody.get(path)
        assert r.status_code == 303 and r.headers["location"] == f"/login?next=%2F{path[1:]}"
    assert nobody.get("/docs/oauth2-redirect").status_code == 404
    assert nobody.get("/openapi.json").status_code == 200  # public on purpose (docs/security.md)
    browser = _session(world, "a_user")
    for path in ("/docs", "/redoc"):
        r = browser.get(path)
        assert r.status_code == 200 and "/openapi.json" in r.text
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert world.client.get("/docs", headers=world.auth("a_user")).status_code == 200


def test_a_multipart_post_is_415_not_500(world: World) -> None:
    browser = _session(world, "a_admin")
    url = f"/api/v1/tenants/{world.tenant_a}/teams"
    files = {"file": ("x.txt", b"hello", "text/plain")}
    for data in ({"csrf_token": browser.headers["X-CSRF-Token"]}, {"name": "x"}):
        r = browser.post(url, files=files, data=data)
        assert r.status_code == 415 and r.json()["error"]["id"] == "unsupported-media-type"
    r = browser.post("/logout", files=files)
    assert r.status_code == 415
    no_cookie = world.client.post(url, files=files, headers=world.auth("a_admin"))
    assert no_cookie.status_code == 415
    # the JSON API and the url-encoded forms go on working
    assert browser.post(url, json={"name": "Sales"}).status_code == 201
