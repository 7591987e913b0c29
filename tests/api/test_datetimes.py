"""Every time the API answers is UTC with an explicit ``+00:00`` (issue 8 section 5).

Pydantic alone writes an aware time with ``Z`` and a naive one (SQLite hands
stored times back without a zone) with no offset at all, so a client had to
guess. Two checks: the OpenAPI schema (every ``date-time`` of a response
carries the offset's pattern, so no new response model forgets ``UtcDateTime``),
and the live app (a world with one of everything, every date-time string of
the GET lists and the creating POSTs ends with ``+00:00``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from callvault.admin import accept_legal_notice
from callvault.db.models import Plan, Recording, RecordingSourceRow, Tenant, User
from callvault.portal.timefmt import UTC_OFFSET_PATTERN
from tests.api import conftest as api
from tests.api.conftest import World, portal_session
from tests.api.test_matrix import deletion_receipt, job_row, legal_hold, ready_export

world = api.world

DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


def test_every_date_time_of_a_response_schema_carries_the_utc_offset(world: World) -> None:
    schema = world.app.openapi()
    date_times = [
        (path, node)
        for path, node in _walk(schema["components"]["schemas"], "")
        if isinstance(node, dict) and node.get("format") == "date-time"
    ]
    assert len(date_times) >= 30  # tenants, calls, recordings, shares, tokens, jobs, ...
    # request bodies are told apart by FastAPI ("-Input"); no response may lack the offset
    missing = [
        path
        for path, node in date_times
        if node.get("pattern") != UTC_OFFSET_PATTERN and "-Input/" not in path
    ]
    assert not missing, missing


def _one_of_everything(world: World) -> None:
    """Rows with every kind of stored time, as SQLite hands them back: without a zone."""
    with world.sessions() as session:
        tenant = session.get(Tenant, world.tenant_a)
        admin = session.get(User, world.users["a_admin"])
        recording = session.get(Recording, world.recording_a)
        assert tenant is not None and admin is not None and recording is not None
        accept_legal_notice(session, tenant, admin)
        recording.expires_at = datetime.now(UTC) + timedelta(days=30)
        session.add(
            Plan(name="dt", retention_min_days=7, retention_max_days=30, retention_default_days=7)
        )
        session.add(
            RecordingSourceRow(
                name="sbc-dt", networks=["192.0.2.0/24"], fingerprints=[], created_by="t"
            )
        )
        session.commit()
    ready_export(world, foreign=False)
    deletion_receipt(world, foreign=False)
    legal_hold(world, "a_admin", foreign=False)
    job_row(world, "a_admin", foreign=False)


def test_every_time_the_api_answers_ends_with_plus_zero(world: World) -> None:
    _one_of_everything(world)
    a, rec = world.tenant_a, world.recording_a
    admin, operator = world.auth("a_admin"), world.auth("operator")
    created = [  # answers of creating calls: times made in the request, not read back
        world.client.post(
            f"/api/v1/recordings/{rec}/shares", json={"expires_in_hours": 2}, headers=admin
        ),
        world.client.post(
            "/api/v1/tokens", json={"name": "dt", "expires_in_days": 3}, headers=admin
        ),
        # the play link is the portal player's: a cookie session
        portal_session(world, "a_admin").post(f"/api/v1/recordings/{rec}/play"),
        world.client.post(f"/api/v1/recordings/{rec}/labels", json={"text": "dt"}, headers=admin),
        world.client.post(f"/api/v1/recordings/{rec}/comments", json={"text": "dt"}, headers=admin),
        world.client.post(
            f"/api/v1/tenants/{a}/legal-holds",
            json={"scope": "tenant", "reason": "inquiry"},
            headers=admin,
        ),
    ]
    for r in created:
        assert r.status_code in (200, 201), (r.request.url, r.text)
    share_token = created[0].json()["token"]

    gets = {
        "/api/v1/tenants": operator,
        f"/api/v1/tenants/{a}": operator,
        f"/api/v1/tenants/{a}/users": admin,
        f"/api/v1/tenants/{a}/calls": admin,
        f"/api/v1/tenants/{a}/recordings": admin,
        f"/api/v1/recordings/{rec}": admin,
        f"/api/v1/recordings/{rec}/shares": admin,
        f"/api/v1/recordings/{rec}/labels": admin,
        f"/api/v1/recordings/{rec}/comments": admin,
        f"/api/v1/shared/{share_token}": {},
        "/api/v1/tokens": admin,
        f"/api/v1/tenants/{a}/tokens": admin,
        "/api/v1/operator/tokens": operator,
        f"/api/v1/tenants/{a}/audit": admin,
        "/api/v1/audit": operator,
        f"/api/v1/tenants/{a}/jobs": admin,
        "/api/v1/jobs": operator,
        f"/api/v1/tenants/{a}/exports": admin,
        f"/api/v1/tenants/{a}/deletion-receipts": admin,
        "/api/v1/operator/deletion-receipts": operator,
        f"/api/v1/tenants/{a}/legal-holds": admin,
        "/api/v1/plans": operator,
        "/api/v1/operator/usage": operator,
        f"/api/v1/tenants/{a}/usage": operator,
        "/api/v1/sources": operator,
        f"/api/v1/tenants/{a}/enablement": operator,
        f"/api/v1/tenants/{a}/recording-settings": admin,
        f"/api/v1/tenants/{a}/legal-notice": admin,
    }
    seen: dict[str, str] = {}
    wrong: list[str] = []
    for url, headers in gets.items():
        r = world.client.get(url, headers=headers)
        assert r.status_code == 200, (url, r.text)
        for path, value in _walk(r.json(), url):
            if isinstance(value, str) and DATE_TIME.match(value):
                seen[path.rsplit("/", 1)[-1]] = value
                if not value.endswith("+00:00"):
                    wrong.append(f"{path} = {value}")
    for r in created:
        for path, value in _walk(r.json(), str(r.request.url)):
            if isinstance(value, str) and DATE_TIME.match(value):
                seen[path.rsplit("/", 1)[-1]] = value
                if not value.endswith("+00:00"):
                    wrong.append(f"{path} = {value}")
    assert not wrong, "\n".join(wrong)
    # the walk found the times it is about (else it proves nothing)
    expected = {
        "created_at", "started_at", "answered_at", "ended_at", "expires_at", "at",
        "run_after", "ready_at", "finished_at", "placed_at", "period_start", "period_end",
        "enabled_at", "accepted_at",
    }  # fmt: skip
    assert expected <= set(seen), expected - set(seen)
