"""The operator's recording sources over REST: CRUD, audit, validation, operator only.

Runs on the API suite's two-tenant world (tests/api/conftest.py). Every
change must be audited and must call the portal's ``on_directory_change``
(the running server reloads its ``SourceRegistry`` there); a refused change
must do neither.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from callvault.db.models import AuditEvent, RecordingSourceRow
from tests.api import conftest as api
from tests.api.conftest import World

world = api.world  # the API suite's fixture, used here as well

URL = "/api/v1/sources"
FP = "a1b2c3d4e5f60718" * 4
FP_COLONS = ":".join(FP[i : i + 2] for i in range(0, 64, 2)).upper()


@pytest.fixture
def reloads(world: World) -> list[int]:
    calls: list[int] = []
    world.app.state.context.on_directory_change = lambda: calls.append(1)
    return calls


def _body(world: World, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "sbc-1",
        "networks": ["192.0.2.0/24", "2001:DB8::/32"],
        "fingerprints": [FP_COLONS],
        "tenant_ids": [world.tenant_a, world.tenant_b],
    }
    body.update(changes)
    return body


def _audit(world: World) -> list[AuditEvent]:
    with world.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action.startswith("source."))
                .order_by(AuditEvent.id)
            )
        )


def _create(world: World, **changes: Any) -> dict[str, Any]:
    r = world.client.post(URL, json=_body(world, **changes), headers=world.auth("operator"))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_operator_registers_lists_changes_and_removes_a_source(
    world: World, reloads: list[int]
) -> None:
    op = world.auth("operator")
    created = _create(world)
    assert created["networks"] == ["192.0.2.0/24", "2001:db8::/32"]
    assert created["fingerprints"] == [FP]  # colon form in, plain lower-case hex out
    assert created["tenant_ids"] == sorted([world.tenant_a, world.tenant_b])
    assert (created["require_tls"], created["require_srtp"]) == (False, False)
    limits = [created[k] for k in ("max_calls", "max_streams", "max_media_lines")]
    assert limits == [200, 400, 4] and created["max_session_expires_s"] == 3600
    assert created["created_by"].startswith("operator:")
    assert reloads == [1]

    url = f"{URL}/{created['id']}"
    assert world.client.get(URL, headers=op).json() == [created]
    assert world.client.get(url, headers=op).json() == created

    r = world.client.patch(
        url,
        json={"tenant_ids": [world.tenant_b], "max_calls": 10, "require_tls": True},
        headers=op,
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["tenant_ids"] == [world.tenant_b] and changed["max_calls"] == 10
    assert changed["require_tls"] and changed["networks"] == created["networks"]
    assert reloads == [1, 1]
    # the same values again change nothing: no audit row, no reload
    r = world.client.patch(url, json={"max_calls": 10}, headers=op)
    assert r.status_code == 200 and reloads == [1, 1]

    assert world.client.delete(url, headers=op).status_code == 204
    assert reloads == [1, 1, 1]
    r = world.client.get(url, headers=op)
    assert r.status_code == 404 and r.json()["error"]["id"] == "source-not-found"
    assert world.client.get(URL, headers=op).json() == []

    create, change, remove = _audit(world)
    assert [e.action for e in (create, change, remove)] == [
        "source.create",
        "source.change",
        "source.delete",
    ]
    for event in (create, change, remove):
        assert event.tenant_id is None  # operator level: no tenant's log shows the SBCs
        assert event.actor == created["created_by"] and event.target == f"source:{created['id']}"
        assert event.remote_addr == "testclient"
    assert create.details["fingerprints"] == [FP] and create.details["name"] == "sbc-1"
    assert change.details["max_calls"] == 10 and change.details["old"]["max_calls"] == 200
    assert change.details["old"]["tenant_ids"] == created["tenant_ids"]
    assert set(change.details) == {"max_calls", "require_tls", "tenant_ids", "old"}
    assert remove.details["name"] == "sbc-1"


def test_a_certificate_alone_is_enough_and_lists_default_to_empty(world: World) -> None:
    r = world.client.post(
        URL, json={"name": "pbx", "fingerprints": [FP]}, headers=world.auth("operator")
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["networks"] == [] and body["tenant_ids"] == [] and body["fingerprints"] == [FP]


@pytest.mark.parametrize(
    "changes,status,error_id,needle",
    [
        ({"networks": [], "fingerprints": []}, 422, "source-identity-required", "at least one"),
        ({"networks": ["192.0.2.1/24"]}, 422, "source-network-invalid", "is 192.0.2.0/24"),
        ({"networks": ["sbc.example"]}, 422, "source-network-invalid", "not an address"),
        ({"networks": ["0.0.0.0/0"]}, 422, "source-network-invalid", "every address"),
        ({"fingerprints": ["abc"]}, 422, "source-fingerprint-invalid", "64 hex digits"),
        ({"tenant_ids": [999]}, 422, "source-tenant-unknown", "999"),
        ({"tenant_ids": [0]}, 422, "source-tenant-unknown", "0"),
        ({"tenant_ids": [2**40]}, 422, "source-tenant-unknown", str(2**40)),
        ({"max_media_lines": 0}, 422, "invalid-input", "max_media_lines"),
        ({"max_session_expires_s": 60}, 422, "invalid-input", "max_session_expires_s"),
        ({"max_calls": 10**9}, 422, "invalid-input", "max_calls"),
        ({"name": ""}, 422, "invalid-input", "name"),
        ({"networks": ["10.0.0.0/8"] * 101}, 422, "invalid-input", "networks"),
        ({"colour": "red"}, 422, "invalid-input", "colour"),
    ],
)
def test_invalid_sources_are_refused_precisely(
    world: World,
    reloads: list[int],
    changes: dict[str, Any],
    status: int,
    error_id: str,
    needle: str,
) -> None:
    r = world.client.post(URL, json=_body(world, **changes), headers=world.auth("operator"))
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["id"] == error_id and needle in error["message"], error
    assert reloads == [] and _audit(world) == []
    with world.sessions() as session:
        assert session.scalars(select(RecordingSourceRow)).first() is None


def test_changes_are_validated_like_creation(world: World, reloads: list[int]) -> None:
    op = world.auth("operator")
    first = _create(world)
    _create(world, name="sbc-2", networks=["198.51.100.0/24"], fingerprints=[])
    reloads.clear()
    url = f"{URL}/{first['id']}"
    r = world.client.post(URL, json=_body(world), headers=op)
    assert r.status_code == 409 and r.json()["error"]["id"] == "source-exists"
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"networks": [], "fingerprints": []}, 422, "source-identity-required"),
        ({"networks": ["10.0.0.1/8"]}, 422, "source-network-invalid"),
        ({"tenant_ids": [world.tenant_a, 4242]}, 422, "source-tenant-unknown"),
        ({"name": "sbc-2"}, 409, "source-exists"),
        ({}, 422, "no-change"),
        ({"max_streams": 0}, 422, "invalid-input"),
    ]
    for body, status, error_id in cases:
        r = world.client.patch(url, json=body, headers=op)
        assert (r.status_code, r.json()["error"]["id"]) == (status, error_id), (body, r.text)
    assert world.client.get(url, headers=op).json() == first
    # dropping the networks is fine while the certificate still identifies it
    r = world.client.patch(url, json={"networks": []}, headers=op)
    assert r.status_code == 200 and r.json()["networks"] == [] and r.json()["fingerprints"] == [FP]
    assert reloads == [1]
    for method in ("get", "delete"):
        r = world.client.request(method.upper(), f"{URL}/4242", headers=op)
        assert r.status_code == 404 and r.json()["error"]["id"] == "source-not-found"
    r = world.client.patch(f"{URL}/4242", json={"max_calls": 5}, headers=op)
    assert r.status_code == 404
    assert world.client.get(f"{URL}/0", headers=op).status_code == 422


@pytest.mark.parametrize("who", ["a_admin", "a_user", "a_listener", "b_admin"])
def test_only_the_operator_sees_or_changes_sources(
    world: World, reloads: list[int], who: str
) -> None:
    created = _create(world)  # it records for both tenants: still not theirs to see
    reloads.clear()
    url = f"{URL}/{created['id']}"
    headers = world.auth(who)
    attempts = [
        world.client.get(URL, headers=headers),
        world.client.get(url, headers=headers),
        world.client.get(f"{URL}/4242", headers=headers),  # no way to probe which ids exist
        world.client.post(URL, json=_body(world, name="mine"), headers=headers),
        world.client.patch(url, json={"max_calls": 1}, headers=headers),
        world.client.delete(url, headers=headers),
    ]
    for r in attempts:
        assert r.status_code == 403 and r.json()["error"]["id"] == "role-required", r.text
    assert world.client.get(URL).status_code == 401
    assert world.client.get(url, headers=world.auth("operator")).json() == created
    assert reloads == [] and [e.action for e in _audit(world)] == ["source.create"]
    # nor does the tenant's own audit log show the operator's SBCs
    if who.endswith("admin"):
        tenant = world.tenant_a if who.startswith("a_") else world.tenant_b
        log = world.client.get(f"/api/v1/tenants/{tenant}/audit", headers=headers).json()
        assert not [item for item in log["items"] if item["action"].startswith("source.")]


def test_refusal_counters_are_exported(world: World) -> None:
    metrics = world.app.state.context.metrics
    metrics.sip_requests_refused_unknown_source += 3
    metrics.sip_requests_refused_limit += 2
    text = world.client.get("/metrics", headers=world.auth("operator")).text
    assert "callvault_sip_requests_refused_unknown_source_total 3" in text
    assert "callvault_sip_requests_refused_limit_total 2" in text
    assert "# TYPE callvault_sip_requests_refused_limit_total counter" in text
