"""Text holding NUL (U+0000) is refused at the door, the same on SQLite and PostgreSQL.

PostgreSQL's text columns cannot hold NUL: before portal/nul_text.py such a
login was a server error there (the fuzzer found it), while SQLite stored it.
"""

from __future__ import annotations

import pytest

from callvault.portal.nul_text import has_nul
from tests.api.conftest import World


def _refused(response: object) -> None:
    status = getattr(response, "status_code", None)
    body = response.json()  # type: ignore[attr-defined]
    assert status == 422, body
    assert body["error"]["id"] == "invalid-input" and "NUL" in body["error"]["message"]


def test_a_login_with_nul_is_invalid_input(world: World) -> None:
    _refused(world.client.post("/api/v1/session", json={"login": "\x00", "password": "x" * 12}))


def test_nul_deep_in_a_json_body_is_refused(world: World) -> None:
    url = f"/api/v1/tenants/{world.tenant_a}/users"
    body = {"name": "Nina", "numbers": ["+31201110055"], "aors": ["sip:n\x00@alpha.example"]}
    _refused(world.client.post(url, json=body, headers=world.auth("a_admin")))


def test_nul_in_a_query_or_a_path_is_refused(world: World) -> None:
    calls = f"/api/v1/tenants/{world.tenant_a}/calls"
    _refused(world.client.get(calls, params={"number": "\x00"}, headers=world.auth("a_admin")))
    _refused(world.client.get("/api/v1/recordings/%00", headers=world.auth("a_admin")))


def test_nul_in_a_form_body_is_refused(world: World) -> None:
    _refused(world.client.post("/language", data={"language": "nl\x00"}))


def test_an_escaped_backslash_before_u0000_is_no_nul(world: World) -> None:
    h = world.auth("a_admin")
    url = f"/api/v1/tenants/{world.tenant_a}/teams"
    r = world.client.post(url, json={"name": "desk \\u0000"}, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "desk \\u0000"


@pytest.mark.parametrize(
    "value,found",
    [("a", False), ({"k": ["x", {"y": "\x00"}]}, True), ({"\x00": 1}, True), (7, False)],
)
def test_has_nul_looks_at_every_string(value: object, found: bool) -> None:
    assert has_nul(value) is found
