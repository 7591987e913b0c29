"""The Web Push API (issue 9): the server's VAPID key and a user's own devices.

Against the portal app of ``tests/api`` (two tenants, every role), with
subscriptions as a browser's ``PushSubscription.toJSON()`` makes them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from callvault.db.engine import make_sessionmaker
from callvault.db.models import AuditEvent, PushSubscription
from callvault.push.subscriptions import DEVICES_MAX
from callvault.push.vapid import b64url_decode, vapid_key
from tests.api.conftest import World
from tests.push.push_service import browser_subscription

DEVICES = "/api/v1/me/push-subscriptions"


def _body(
    endpoint: str = "https://fcm.googleapis.com/fcm/send/abc", **extra: Any
) -> dict[str, Any]:
    return browser_subscription(endpoint) | {"device_name": "Anna's phone"} | extra


def _audit(world: World, action: str) -> list[AuditEvent]:
    with world.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_the_vapid_key_is_one_p256_point_for_everyone_and_every_process(world: World) -> None:
    keys = set()
    for who in ("operator", "a_admin", "a_user", "b_user"):
        r = world.client.get("/api/v1/push/vapid-public-key", headers=world.auth(who))
        assert r.status_code == 200, r.text
        keys.add(r.json()["key"])
    [key] = keys
    point = b64url_decode(key)
    assert len(point) == 65 and point[0] == 4
    # another process on the same database (its own connections) finds the same pair
    other = make_sessionmaker(world.sessions.kw["bind"])
    assert vapid_key(other, datetime.now(UTC)).public_key_b64 == key
    assert world.client.get("/api/v1/push/vapid-public-key").status_code == 401


def test_a_device_is_added_updated_listed_and_removed_audited(world: World) -> None:
    body = _body()
    r = world.client.post(DEVICES, json=body, headers=world.auth("a_user") | {"User-Agent": "UA/1"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) == {"id", "device_name", "created_at", "last_sent_at"}
    assert created["device_name"] == "Anna's phone" and created["created_at"].endswith("+00:00")
    # the same browser again (new name, renewed keys): the row is updated, 200
    again = browser_subscription(body["endpoint"]) | {"device_name": "  Anna's\tphone 2 "}
    r = world.client.post(DEVICES, json=again, headers=world.auth("a_user"))
    assert r.status_code == 200 and r.json()["id"] == created["id"]
    assert r.json()["device_name"] == "Anna's phone 2"
    with world.sessions() as session:
        row = session.get(PushSubscription, created["id"])
        assert row is not None and row.p256dh == again["keys"]["p256dh"]
        assert row.tenant_id == world.tenant_a and row.user_id == world.users["a_user"]
    listed = world.client.get(DEVICES, headers=world.auth("a_user")).json()
    assert [d["id"] for d in listed] == [created["id"]]
    assert world.client.get(DEVICES, headers=world.auth("a_colleague")).json() == []
    r = world.client.delete(f"{DEVICES}/{created['id']}", headers=world.auth("a_user"))
    assert r.status_code == 204
    assert world.client.get(DEVICES, headers=world.auth("a_user")).json() == []
    subscribed, updated = _audit(world, "push.subscribe"), _audit(world, "push.update")
    [removed] = _audit(world, "push.unsubscribe")
    assert len(subscribed) == 1 and len(updated) == 1
    for event in (*subscribed, *updated, removed):
        assert event.actor == f"user:{world.users['a_user']}" and event.tenant_id == world.tenant_a
        assert event.target == f"push:{created['id']}"
        # the endpoint is a capability URL: never in the audit log
        assert body["endpoint"] not in str(event.details)


def test_another_users_device_is_404_and_stays(world: World) -> None:
    r = world.client.post(DEVICES, json=_body(), headers=world.auth("a_user"))
    device = r.json()["id"]
    for who in ("a_colleague", "a_admin", "b_user", "b_admin"):
        r = world.client.delete(f"{DEVICES}/{device}", headers=world.auth(who))
        assert r.status_code == 404 and r.json()["error"]["id"] == "push-subscription-not-found"
    assert (
        world.client.delete(f"{DEVICES}/{device}", headers=world.auth("operator")).status_code
        == 403
    )
    assert len(world.client.get(DEVICES, headers=world.auth("a_user")).json()) == 1


def test_a_browser_that_changed_hands_moves_to_the_new_user(world: World) -> None:
    body = _body()
    world.client.post(DEVICES, json=body, headers=world.auth("a_user"))
    r = world.client.post(DEVICES, json=_body(body["endpoint"]), headers=world.auth("b_user"))
    assert r.status_code == 201
    assert world.client.get(DEVICES, headers=world.auth("a_user")).json() == []
    with world.sessions() as session:
        [row] = session.scalars(select(PushSubscription)).all()
        assert (row.tenant_id, row.user_id) == (world.tenant_b, world.users["b_user"])


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://push.example.net/x",  # not https
        "http://127.0.0.1:8443/push/x",  # loopback: only with the test setting
        "https://127.0.0.1/push/x",
        "https://10.1.2.3/push/x",  # into the operator's own network
        "https://[::1]/push/x",
        "https://169.254.169.254/latest/meta-data",  # a cloud's metadata service
        "https://localhost/push/x",
        "https://user:pw@push.example.net/x",
        "ftp://push.example.net/x",
        "https:///x",
        "https://push.example.net/" + "x" * 1000,
    ],
)
def test_an_endpoint_into_a_private_network_or_not_https_is_refused(
    world: World, endpoint: str
) -> None:
    r = world.client.post(DEVICES, json=_body(endpoint), headers=world.auth("a_user"))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["id"] in ("push-endpoint-invalid", "invalid-input")
    assert world.client.get(DEVICES, headers=world.auth("a_user")).json() == []


def test_loopback_endpoints_only_with_the_test_setting(world: World) -> None:
    world.app.state.context.push_allow_http_loopback = True
    r = world.client.post(
        DEVICES, json=_body("http://127.0.0.1:8443/push/x"), headers=world.auth("a_user")
    )
    assert r.status_code == 201, r.text
    r = world.client.post(
        DEVICES, json=_body("http://10.0.0.1/push/x"), headers=world.auth("a_user")
    )
    assert r.status_code == 422


@pytest.mark.parametrize(
    "change",
    [
        {"keys": {"p256dh": "AAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}},  # not a point
        {"keys": {"p256dh": "B" + "A" * 86, "auth": "AAAAAAAAAAAAAAAAAAAAAA"}},  # off the curve
        {"keys": {"p256dh": None, "auth": "x"}},
        {"auth_only": True},
        {"device_name": ""},
        {"device_name": "   "},
        {"device_name": "x" * 101},
        {"extra": 1},
    ],
)
def test_bad_keys_and_names_are_refused(world: World, change: dict[str, Any]) -> None:
    body = _body()
    if change.pop("auth_only", False):
        body["keys"]["auth"] = "AAAA"  # 3 bytes, not 16
    body |= change
    r = world.client.post(DEVICES, json=body, headers=world.auth("a_user"))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["id"] in ("push-keys-invalid", "invalid-input")


def test_at_most_twenty_devices(world: World) -> None:
    for n in range(DEVICES_MAX):
        r = world.client.post(
            DEVICES, json=_body(f"https://push.example.net/{n}"), headers=world.auth("a_user")
        )
        assert r.status_code == 201
    r = world.client.post(
        DEVICES, json=_body("https://push.example.net/more"), headers=world.auth("a_user")
    )
    assert r.status_code == 409 and r.json()["error"]["id"] == "push-devices-limit"
    # an existing device may still renew its keys
    r = world.client.post(
        DEVICES, json=_body("https://push.example.net/0"), headers=world.auth("a_user")
    )
    assert r.status_code == 200
    # another user is not limited by Anna's devices
    r = world.client.post(
        DEVICES, json=_body("https://push.example.net/colleague"), headers=world.auth("a_colleague")
    )
    assert r.status_code == 201
