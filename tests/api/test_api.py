"""The REST API: roles, tenant isolation, paging, audio with Range."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from callvault.db.models import AuditEvent
from tests.api.conftest import World


def test_no_token_and_bad_token_are_401(world: World) -> None:
    r = world.client.get("/api/v1/tenants")
    assert r.status_code == 401
    assert r.json()["error"]["id"] == "auth-required"
    r = world.client.get("/api/v1/tenants", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.json()["error"]["id"] == "auth-invalid"


def test_operator_creates_tenant_and_user(world: World) -> None:
    r = world.client.post(
        "/api/v1/tenants",
        json={
            "name": "Gamma",
            "domains": ["Gamma.Example"],
            "numbers": ["0031 20 333 0000"],
            "blocks": ["+31 6 1234 *"],
        },
        headers=world.auth("operator"),
    )
    assert r.status_code == 201, r.text
    tenant = r.json()
    assert tenant["domains"] == ["gamma.example"]
    assert tenant["numbers"] == ["+31203330000"]
    assert tenant["blocks"] == ["+3161234*"]
    r = world.client.post(
        f"/api/v1/tenants/{tenant['id']}/users",
        json={
            "name": "Gijs",
            "extension": "201",
            "numbers": ["+31 6 1234 5678"],
            "aors": ["sip:gijs@Gamma.Example"],
            "recorded": True,
        },
        headers=world.auth("operator"),
    )
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["aors"] == ["gijs@gamma.example"]
    assert user["numbers"] == ["+31612345678"]
    listed = world.client.get(
        f"/api/v1/tenants/{tenant['id']}/users", headers=world.auth("operator")
    )
    assert [u["name"] for u in listed.json()] == ["Gijs"]


def test_duplicate_domain_is_conflict(world: World) -> None:
    r = world.client.post(
        "/api/v1/tenants",
        json={"name": "Dup", "domains": ["alpha.example"]},
        headers=world.auth("operator"),
    )
    assert r.status_code == 409
    assert r.json()["error"]["id"] == "tenant-exists"


@pytest.mark.parametrize(
    "body,needle",
    [
        ({"name": ""}, "name"),
        ({"name": "X", "numbers": ["12ab"]}, "E.164"),
        ({"name": "X", "domains": ["bad domain"]}, "domain"),
        ({"name": "X", "unknown": 1}, "unknown"),
    ],
)
def test_invalid_tenant_bodies_get_precise_errors(
    world: World, body: dict[str, object], needle: str
) -> None:
    r = world.client.post("/api/v1/tenants", json=body, headers=world.auth("operator"))
    assert r.status_code == 422
    assert r.json()["error"]["id"] == "invalid-input"
    assert needle in r.json()["error"]["message"]


def test_only_operator_creates_tenants(world: World) -> None:
    for who in ("a_admin", "a_user"):
        r = world.client.post("/api/v1/tenants", json={"name": "Z"}, headers=world.auth(who))
        assert r.status_code == 403


def test_tenant_sees_only_itself(world: World) -> None:
    r = world.client.get("/api/v1/tenants", headers=world.auth("a_admin"))
    assert [t["name"] for t in r.json()] == ["Alpha"]
    assert (
        world.client.get(
            f"/api/v1/tenants/{world.tenant_b}", headers=world.auth("a_admin")
        ).status_code
        == 404
    )
    ops = world.client.get("/api/v1/tenants", headers=world.auth("operator")).json()
    assert {t["name"] for t in ops} == {"Alpha", "Beta"}


# Every tenant-scoped endpoint x role x own/foreign tenant.
ENDPOINTS = [
    ("GET", "/api/v1/tenants/{t}"),
    ("GET", "/api/v1/tenants/{t}/users"),
    ("GET", "/api/v1/tenants/{t}/calls"),
    ("GET", "/api/v1/tenants/{t}/recordings"),
    ("POST", "/api/v1/tenants/{t}/users"),
]
EXPECTED_OWN = {
    "a_admin": [200, 200, 200, 200, 201],
    "a_user": [200, 403, 200, 200, 403],
    "a_listener": [200, 403, 200, 200, 403],
}


@pytest.mark.parametrize("who", sorted(EXPECTED_OWN))
def test_endpoint_matrix(world: World, who: str) -> None:
    for (method, path), own in zip(ENDPOINTS, EXPECTED_OWN[who], strict=True):
        body = {"name": f"N{who}"} if method == "POST" else None
        r = world.client.request(
            method, path.format(t=world.tenant_a), json=body, headers=world.auth(who)
        )
        assert r.status_code == own, (who, path, r.text)
        r = world.client.request(
            method, path.format(t=world.tenant_b), json=body, headers=world.auth(who)
        )
        assert r.status_code == 404, (who, path, "foreign tenant must be 404")
        r = world.client.request(method, path.format(t=999999), json=body, headers=world.auth(who))
        assert r.status_code == 404


def test_recording_visibility(world: World) -> None:
    own, colleague, foreign = world.recording_a, world.recording_a2, world.recording_b
    cases = {
        "operator": (200, 200, 200),
        "a_admin": (200, 200, 404),
        "a_user": (200, 404, 404),
        "b_user": (404, 404, 200),
    }
    for who, expected in cases.items():
        got = tuple(
            world.client.get(f"/api/v1/recordings/{rid}", headers=world.auth(who)).status_code
            for rid in (own, colleague, foreign)
        )
        assert got == expected, who
        got_audio = tuple(
            world.client.get(f"/api/v1/recordings/{rid}/audio", headers=world.auth(who)).status_code
            for rid in (own, colleague, foreign)
        )
        assert got_audio == expected, who


def test_user_lists_only_own_calls_and_recordings(world: World) -> None:
    calls = world.client.get(
        f"/api/v1/tenants/{world.tenant_a}/calls", headers=world.auth("a_user")
    ).json()
    assert len(calls["items"]) == 1
    assert calls["items"][0]["recording_ids"] == [world.recording_a]
    admin = world.client.get(
        f"/api/v1/tenants/{world.tenant_a}/calls", headers=world.auth("a_admin")
    ).json()
    assert len(admin["items"]) == 2
    recs = world.client.get(
        f"/api/v1/tenants/{world.tenant_a}/recordings", headers=world.auth("a_user")
    ).json()
    assert [r["id"] for r in recs["items"]] == [world.recording_a]


def test_keyset_paging_walks_every_call_once(world: World) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = world.client.get(
            f"/api/v1/tenants/{world.tenant_a}/calls", params=params, headers=world.auth("a_admin")
        ).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 2
    bad = world.client.get(
        f"/api/v1/tenants/{world.tenant_a}/calls",
        params={"cursor": "%%%"},
        headers=world.auth("a_admin"),
    )
    assert bad.status_code == 422 and bad.json()["error"]["id"] == "bad-cursor"


def test_recording_metadata(world: World) -> None:
    r = world.client.get(
        f"/api/v1/recordings/{world.recording_a}", headers=world.auth("a_user")
    ).json()
    assert r["sha256"] == hashlib.sha256(world.audio).hexdigest()
    assert r["segments"] == [
        {"call_start_ms": 1000, "call_end_ms": 31000, "file_start_ms": 0, "file_end_ms": 30000}
    ]
    assert r["parties"][0]["side"] == "user"
    assert r["channels"] == 2 and r["codecs"] == ["PCMU"]


def test_audio_range_requests(world: World) -> None:
    url = f"/api/v1/recordings/{world.recording_a}/audio"
    h = world.auth("a_user")
    full = world.client.get(url, headers=h)
    assert full.status_code == 200 and full.content == world.audio
    assert full.headers["accept-ranges"] == "bytes"
    part = world.client.get(url, headers=h | {"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == world.audio[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(world.audio)}"
    tail = world.client.get(url, headers=h | {"Range": "bytes=-10"})
    assert tail.content == world.audio[-10:]
    openended = world.client.get(url, headers=h | {"Range": "bytes=10000-"})
    assert openended.content == world.audio[10000:]
    assert world.client.get(url, headers=h | {"Range": "bytes=999999-"}).status_code == 416
    assert world.client.get(url, headers=h | {"Range": "pages=1-2"}).status_code == 416
    play = world.client.get(url, headers=h | {"Range": "bytes=0-"})  # how a browser starts playing
    assert play.status_code == 206 and play.content == world.audio
    assert play.headers["cache-control"] == "no-store"
    dl = world.client.get(url, params={"download": "true"}, headers=h)
    assert dl.headers["content-disposition"].startswith("attachment;")
    with world.sessions() as session:
        fetches = session.scalars(
            select(AuditEvent).where(
                AuditEvent.tenant_id == world.tenant_a, AuditEvent.action.like("recording.%")
            )
        ).all()
    # outside the portal's player every fetch is audited, whatever its range
    assert [a.action for a in fetches] == ["recording.download"] * 6  # the two 416s read nothing
    assert fetches[1].details["range"] == "bytes=100-199"


def test_malformed_recording_ids_are_404(world: World) -> None:
    for rid in ("x", "../../etc/passwd", "0" * 32, "A" * 32):
        assert (
            world.client.get(
                f"/api/v1/recordings/{rid}", headers=world.auth("operator")
            ).status_code
            == 404
        )


def test_openapi_is_served(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    assert "/api/v1/recordings/{recording_id}/audio" in spec["paths"]
