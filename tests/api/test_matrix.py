"""Every endpoint x role x own / foreign tenant: the exact status of each.

The routes come from the app itself, so a new endpoint without an entry here
fails ``test_every_route_has_a_matrix_entry``. Each call gets fresh objects to
act on (a team to delete, a label to remove, ...) from the entry's
``prepare``, so the order of calls does not matter.

Roles: the operator, tenant A's admin, listener (no team) and user (the
owner of ``recording_a``), and nobody. "Foreign" means the same request
aimed at tenant B's objects. Statuses read "operator admin listener user
anonymous".
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from callvault.admin import accept_legal_notice, create_tenant
from callvault.db.models import (
    AnnouncementPrompt,
    ApiToken,
    CallRoute,
    DeletionReceipt,
    Export,
    ExportFile,
    Job,
    LegalHold,
    Operator,
    Plan,
    PushSubscription,
    Recording,
    RecordingLabel,
    RecordingSourceRow,
    RecordingSourceTenant,
    ShareLink,
    Team,
    TeamMember,
    Tenant,
    User,
    UserContact,
    WebSession,
)
from callvault.db.models import Call as CallRow
from callvault.playback.answers import recording_action_token
from callvault.portal.auth import SESSION_COOKIE, hash_token, issue_api_token
from callvault.tenants.legal import NOTICE_VERSION
from callvault.tenants.termination import request_termination
from tests.announcements.audio import tone, wav_file
from tests.api.conftest import PASSWORD, World, give_login
from tests.playback.helpers import recording as playback_recording
from tests.push.push_service import browser_subscription

ROLES = ("operator", "a_admin", "a_listener", "a_user", None)
ROLE_NAMES = ("operator", "admin", "listener", "user", "anonymous")


@dataclass
class Call:
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None  # a raw body (e.g. text/csv) instead of JSON


Prepare = Callable[[World, str | None, bool], Call]


def _tenant(world: World, foreign: bool) -> int:
    return world.tenant_b if foreign else world.tenant_a


def _user(world: World, foreign: bool) -> int:
    return world.users["b_user" if foreign else "a_user"]


def _recording(world: World, foreign: bool) -> str:
    return world.recording_b if foreign else world.recording_a


def _base(world: World, foreign: bool) -> dict[str, Any]:
    return {
        "tenant_id": _tenant(world, foreign),
        "user_id": _user(world, foreign),
        "recording_id": _recording(world, foreign),
    }


def _accept(world: World, foreign: bool) -> None:
    with world.sessions() as session:
        tenant = session.get(Tenant, _tenant(world, foreign))
        admin = session.get(User, world.users["b_admin" if foreign else "a_admin"])
        assert tenant is not None and admin is not None
        accept_legal_notice(session, tenant, admin)
        session.commit()


def _add(world: World, row: Any) -> int:
    with world.sessions() as session:
        session.add(row)
        session.commit()
        return int(row.id)


def _fresh_user(world: World, foreign: bool, recorded: bool = False) -> int:
    return _add(
        world,
        User(tenant_id=_tenant(world, foreign), name=secrets.token_hex(4), recorded=recorded),
    )


def _team(world: World, foreign: bool, member: int | None = None) -> int:
    tenant = _tenant(world, foreign)
    team_id = _add(world, Team(tenant_id=tenant, name=secrets.token_hex(4)))
    if member is not None:
        _add(world, TeamMember(tenant_id=tenant, team_id=team_id, user_id=member))
    return team_id


def _share(world: World, foreign: bool) -> tuple[int, str]:
    token = secrets.token_urlsafe(32)
    share_id = _add(
        world,
        ShareLink(
            tenant_id=_tenant(world, foreign),
            recording_id=_recording(world, foreign),
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        ),
    )
    return share_id, token


def plain(body: Any = None) -> Prepare:
    def prepare(world: World, who: str | None, foreign: bool) -> Call:
        return Call(_base(world, foreign), body)

    return prepare


def unique(make_body: Callable[[str], Any]) -> Prepare:
    def prepare(world: World, who: str | None, foreign: bool) -> Call:
        return Call(_base(world, foreign), make_body(secrets.token_hex(4)))

    return prepare


def accepted(body: Any) -> Prepare:
    def prepare(world: World, who: str | None, foreign: bool) -> Call:
        _accept(world, foreign)
        return Call(_base(world, foreign), body)

    return prepare


def fresh_user(body: Any) -> Prepare:
    def prepare(world: World, who: str | None, foreign: bool) -> Call:
        return Call(_base(world, foreign) | {"user_id": _fresh_user(world, foreign)}, body)

    return prepare


def feature(body: Any) -> Prepare:
    def prepare(world: World, who: str | None, foreign: bool) -> Call:
        return Call(_base(world, foreign) | {"feature": "coaching"}, body)

    return prepare


def users_csv(world: World, who: str | None, foreign: bool) -> Call:
    """A one-user CSV with a fresh extension."""
    extension = str(10000 + secrets.randbelow(90000))
    text = f"name,extension\nU{extension},{extension}\n"
    return Call(_base(world, foreign), content=text.encode(), headers={"Content-Type": "text/csv"})


def prompt_wav() -> bytes:
    return wav_file(tone(900, 1.0, 8000), 8000)


def prompt_upload(world: World, who: str | None, foreign: bool) -> Call:
    """A one-second tone as a WAV body, the legal notice accepted."""
    _accept(world, foreign)
    return Call(
        _base(world, foreign) | {"kind": "start"},
        content=prompt_wav(),
        headers={"Content-Type": "audio/wav"},
    )


def prompt_stored(world: World, who: str | None, foreign: bool) -> Call:
    """The tenant's own start prompt exists (made again after each delete)."""
    _accept(world, foreign)
    tenant = _tenant(world, foreign)
    with world.sessions() as session:
        row = session.scalar(
            select(AnnouncementPrompt).where(
                AnnouncementPrompt.tenant_id == tenant, AnnouncementPrompt.kind == "start"
            )
        )
        if row is None:
            key = f"announcements/{tenant}/start-{secrets.token_hex(8)}.wav"
            world.blobs.put(key, prompt_wav())
            session.add(
                AnnouncementPrompt(
                    tenant_id=tenant,
                    kind="start",
                    blob_key=key,
                    duration_ms=1000,
                    sha256="0" * 64,
                    uploaded_by="user:1",
                )
            )
            session.commit()
    return Call(_base(world, foreign) | {"kind": "start"})


def listing_new_user(world: World, who: str | None, foreign: bool) -> Call:
    _accept(world, foreign)
    return Call(_base(world, foreign), {"user_id": _fresh_user(world, foreign)})


def listed_user(body: Any = None) -> Prepare:
    def prepare(world: World, who: str | None, foreign: bool) -> Call:
        _accept(world, foreign)
        return Call(_base(world, foreign) | {"user_id": _fresh_user(world, foreign, True)}, body)

    return prepare


def contact(world: World, who: str | None, foreign: bool) -> Call:
    contact_id = _add(
        world,
        UserContact(
            tenant_id=_tenant(world, foreign),
            user_id=_user(world, foreign),
            list="blacklist",
            value="+3120" + str(secrets.randbelow(10**7)).zfill(7),
        ),
    )
    return Call(_base(world, foreign) | {"contact_id": contact_id})


def team(world: World, who: str | None, foreign: bool) -> Call:
    return Call(_base(world, foreign) | {"team_id": _team(world, foreign)})


def team_to_join(world: World, who: str | None, foreign: bool) -> Call:
    return Call(_base(world, foreign) | {"team_id": _team(world, foreign)}, {"is_lead": False})


def team_with_member(world: World, who: str | None, foreign: bool) -> Call:
    team_id = _team(world, foreign, member=_user(world, foreign))
    return Call(_base(world, foreign) | {"team_id": team_id})


def label(world: World, who: str | None, foreign: bool) -> Call:
    with world.sessions() as session:
        recording = session.get_one(Recording, _recording(world, foreign))
        call = session.get_one(CallRow, recording.call_id)
        session.expunge_all()
    label_id = _add(world, RecordingLabel.of(recording, call, secrets.token_hex(4)))
    return Call(_base(world, foreign) | {"label_id": label_id})


def share(world: World, who: str | None, foreign: bool) -> Call:
    return Call(_base(world, foreign) | {"share_id": _share(world, foreign)[0]})


def shared(headers: dict[str, str] | None = None) -> Prepare:
    def prepare(world: World, who: str | None, foreign: bool) -> Call:
        return Call({"token": _share(world, foreign)[1]}, headers=headers or {})

    return prepare


def log_in(world: World, who: str | None, foreign: bool) -> Call:
    """Each role logs in as itself; nobody tries an unknown login."""
    if who is None:
        return Call(body={"login": "nobody-" + secrets.token_hex(3), "password": PASSWORD})
    return Call(body={"login": give_login(world, who), "password": PASSWORD})


def _unrevoke_tokens(world: World) -> None:
    """A password change revokes the account's API tokens: give them back for the next call."""
    with world.sessions() as session:
        session.execute(update(ApiToken).values(revoked=False, revoked_at=None))
        session.commit()


def password_change(world: World, who: str | None, foreign: bool) -> Call:
    if who is not None:
        give_login(world, who)
        _unrevoke_tokens(world)
    return Call(body={"old": PASSWORD, "new": "another long password"})


def new_credentials(world: World, who: str | None, foreign: bool) -> Call:
    _unrevoke_tokens(world)
    return Call(_base(world, foreign), {"login": f"l{secrets.token_hex(4)}", "password": PASSWORD})


def api_token(world: World, who: str | None, foreign: bool) -> Call:
    """A fresh API token of recording_a's user (B's user when foreign)."""
    with world.sessions() as session:
        user = session.get(User, _user(world, foreign))
        _token, row = issue_api_token(session, "matrix", user=user)
        session.commit()
        return Call({"token_id": row.id})


def recording_source(body: Any = None) -> Prepare:
    """A fresh recording source per call (the operator's; tenants own none)."""

    def prepare(world: World, who: str | None, foreign: bool) -> Call:
        row = RecordingSourceRow(
            name=secrets.token_hex(4), networks=["192.0.2.0/24"], fingerprints=[], created_by="t"
        )
        return Call({"source_id": _add(world, row)}, body)

    return prepare


def _pbx_source(world: World, foreign: bool) -> int:
    """A fresh PBX source that may record for the (own or foreign) tenant."""
    row = RecordingSourceRow(
        name=secrets.token_hex(4), networks=["192.0.2.0/24"], created_by="t", kind="pbx"
    )
    row.tenants = [RecordingSourceTenant(tenant_id=_tenant(world, foreign))]
    return _add(world, row)


def call_route(world: World, who: str | None, foreign: bool) -> Call:
    """A fresh route of a fresh PBX source (to remove), for the tenant."""
    source_id = _pbx_source(world, foreign)
    route = CallRoute(
        tenant_id=_tenant(world, foreign),
        source_id=source_id,
        prefix="+31",
        target="sip:192.0.2.10:5060;transport=udp",
        created_by="t",
    )
    return Call({"route_id": _add(world, route)})


def new_call_route(world: World, who: str | None, foreign: bool) -> Call:
    """A route's body for a fresh PBX source of the tenant."""
    body = {
        "tenant_id": _tenant(world, foreign),
        "source_id": _pbx_source(world, foreign),
        "prefix": "+3120",
        "target": "sip:pbx.example:5061;transport=tls",
    }
    return Call(body=body)


def plan_row(body: Any = None) -> Prepare:
    """A fresh plan of nobody's (to change or delete)."""

    def prepare(world: World, who: str | None, foreign: bool) -> Call:
        name = f"p{secrets.token_hex(4)}"
        _add(
            world,
            Plan(name=name, retention_min_days=7, retention_max_days=30, retention_default_days=7),
        )
        return Call({"name": name}, body)

    return prepare


def legal_hold(world: World, who: str | None, foreign: bool) -> Call:
    row = LegalHold(
        tenant_id=_tenant(world, foreign), scope="tenant", reason="inquiry", placed_by="test"
    )
    return Call(_base(world, foreign) | {"hold_id": _add(world, row)}, {"reason": "closed"})


def job_row(world: World, who: str | None, foreign: bool) -> Call:
    row = Job(kind="exports.build", tenant_id=_tenant(world, foreign), payload={})
    return Call(_base(world, foreign) | {"job_id": _add(world, row)})


def _past_month() -> str:
    """A month that is over in every time zone (an export of a future month is refused)."""
    return f"{datetime.now(UTC).year - 1}-06"


def bulk_download_on(body: Any) -> Prepare:
    """The tenant's bulk download switched on (Settings › Recording), as the admin would."""

    def prepare(world: World, who: str | None, foreign: bool) -> Call:
        with world.sessions() as session:
            tenant = session.get(Tenant, _tenant(world, foreign))
            assert tenant is not None
            tenant.bulk_download = True
            session.commit()
        return Call(_base(world, foreign), body)

    return prepare


def ready_export(world: World, foreign: bool) -> str:
    """A ready export of one ZIP part (an empty archive), valid for a week."""
    tenant = _tenant(world, foreign)
    data = b"PK\x05\x06" + bytes(18)
    key = f"exports/matrix-{secrets.token_hex(8)}.zip"
    world.blobs.put(key, data)
    at = datetime.now(UTC)
    with world.sessions() as session:
        export = Export(
            tenant_id=tenant,
            month=_past_month(),
            requested_by_actor="test",
            state="ready",
            recordings=1,
            bytes_total=len(data),
            created_at=at,
            ready_at=at,
            expires_at=at + timedelta(days=7),
        )
        export.files = [
            ExportFile(
                tenant_id=tenant,
                ordinal=1,
                blob_key=key,
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                recordings=1,
            )
        ]
        session.add(export)
        session.commit()
        return export.id


def export_part(world: World, who: str | None, foreign: bool) -> Call:
    return Call(_base(world, foreign) | {"export_id": ready_export(world, foreign), "ordinal": 1})


def deletion_receipt(world: World, foreign: bool) -> int:
    """A purge's receipt with its one-line file list (its SHA-256 on the row)."""
    tenant = _tenant(world, foreign)
    lines = b'{"recording_id": "gone", "sha256": "00"}\n'
    key = f"receipts/matrix-{secrets.token_hex(8)}.jsonl"
    world.blobs.put(key, lines)
    at = datetime.now(UTC)
    row = DeletionReceipt(
        kind="purge",
        tenant_id=tenant,
        tenant_name="Beta" if foreign else "Alpha",
        actor="system:purge",
        started_at=at,
        finished_at=at,
        counts={"recordings": 1},
        blob_key=key,
        sha256=hashlib.sha256(lines).hexdigest(),
    )
    return _add(world, row)


def receipt(world: World, who: str | None, foreign: bool) -> Call:
    return Call(_base(world, foreign) | {"receipt_id": deletion_receipt(world, foreign)})


def termination_token(world: World, who: str | None, foreign: bool) -> Call:
    """A valid confirmation token and the exact name: of the path's tenant for everyone
    but the operator (who must be refused with it), of a throwaway tenant for the
    operator (whose confirm destroys it, and the other calls need tenant A and B)."""
    with world.sessions() as session:
        if who == "operator":
            name = f"Gone {secrets.token_hex(4)}"
            tenant = create_tenant(session, name, [f"{secrets.token_hex(4)}.example"], [])
            session.commit()
        else:
            found = session.get(Tenant, _tenant(world, foreign))
            assert found is not None
            tenant = found
        token, _expires, _summary = request_termination(
            session, tenant, actor="operator", at=datetime.now(UTC)
        )
        return Call({"tenant_id": tenant.id}, {"token": token, "name": tenant.name})


def _unsaved_playback(world: World, foreign: bool) -> str:
    """A fresh unsaved Playback recording of ``a_user`` (of ``b_user`` when foreign)."""
    with world.sessions() as session:
        rid = playback_recording(
            session, world.blobs, _tenant(world, foreign), _user(world, foreign), datetime.now(UTC)
        )
        session.commit()
    return rid


def playback_question(world: World, who: str | None, foreign: bool) -> Call:
    return Call(_base(world, foreign) | {"recording_id": _unsaved_playback(world, foreign)})


def playback_token(world: World, who: str | None, foreign: bool) -> Call:
    """A notification's token: whoever sends it (the token is the authority)."""
    rid = _unsaved_playback(world, foreign)
    with world.sessions() as session:
        row = session.get(Recording, rid)
        assert row is not None
        token = recording_action_token(session, row)
        session.commit()
    return Call(_base(world, foreign), {"token": token, "answer": "keep"})


def my_contact(world: World, who: str | None, foreign: bool) -> Call:
    """A contact of the caller's own lists (foreign: of tenant B's user)."""
    owner = _user(world, foreign) if foreign or who in (None, "operator") else world.users[who]
    contact_id = _add(
        world,
        UserContact(
            tenant_id=_tenant(world, foreign),
            user_id=owner,
            list="blacklist",
            value="+3120" + str(secrets.randbelow(10**7)).zfill(7),
        ),
    )
    return Call(_base(world, foreign) | {"contact_id": contact_id})


def push_device(world: World, who: str | None, foreign: bool) -> Call:
    """A browser's push subscription, new each time."""
    endpoint = f"https://push.example.net/{secrets.token_hex(8)}"
    return Call(body=browser_subscription(endpoint) | {"device_name": "phone"})


def my_push_device(world: World, who: str | None, foreign: bool) -> Call:
    """A push device of the caller (foreign: of tenant B's user)."""
    owner = _user(world, foreign) if foreign or who in (None, "operator") else world.users[who]
    info = browser_subscription(f"https://push.example.net/{secrets.token_hex(8)}")
    device_id = _add(
        world,
        PushSubscription(
            tenant_id=_tenant(world, foreign),
            user_id=owner,
            endpoint=info["endpoint"],
            p256dh=info["keys"]["p256dh"],
            auth=info["keys"]["auth"],
            device_name="phone",
        ),
    )
    return Call(_base(world, foreign) | {"subscription_id": device_id})


def listening_on(body: Any = None, call_id: str | None = None) -> Prepare:
    """LiveCenter's routes with the operator's listening enablement for both tenants
    (a world starts with recording only); ``call_id``: a call in progress (none runs)."""

    def prepare(world: World, who: str | None, foreign: bool) -> Call:
        from callvault.admin import enable_feature

        with world.sessions() as session:
            for tenant_id in (world.tenant_a, world.tenant_b):
                tenant = session.get(Tenant, tenant_id)
                assert tenant is not None
                enable_feature(session, tenant, "listening", reference="DECL-TEST")
            session.commit()
        params = _base(world, foreign) | ({"call_id": call_id} if call_id else {})
        return Call(params, body)

    return prepare


@dataclass
class Entry:
    own: str
    prepare: Prepare = field(default_factory=plain)
    # None: derived (operator and anonymous as own, tenant roles 404); "same": as own
    foreign: str | None = None


MATRIX: dict[tuple[str, str], Entry] = {
    # tenants and users
    ("POST", "/api/v1/tenants"): Entry(
        "201 403 403 403 401", unique(lambda n: {"name": f"T{n}"}), "same"
    ),
    ("GET", "/api/v1/tenants"): Entry("200 200 200 200 401", foreign="same"),
    ("GET", "/api/v1/tenants/{tenant_id}"): Entry("200 200 200 200 401"),
    ("PATCH", "/api/v1/tenants/{tenant_id}"): Entry(
        "200 403 403 403 401", plain({"plan": "30-120"})
    ),
    # plans and legal holds (retention)
    ("GET", "/api/v1/plans"): Entry("200 403 403 403 401", foreign="same"),
    ("POST", "/api/v1/plans"): Entry(
        "201 403 403 403 401",
        unique(lambda n: {"name": f"p{n}", "retention_min_days": 7, "retention_max_days": 30}),
        "same",
    ),
    ("GET", "/api/v1/plans/{name}"): Entry("200 403 403 403 401", plan_row(), "same"),
    ("PATCH", "/api/v1/plans/{name}"): Entry(
        "200 403 403 403 401", plan_row({"retention_max_days": 40}), "same"
    ),
    ("DELETE", "/api/v1/plans/{name}"): Entry("204 403 403 403 401", plan_row(), "same"),
    ("GET", "/api/v1/tenants/{tenant_id}/legal-holds"): Entry("200 200 403 403 401"),
    ("POST", "/api/v1/tenants/{tenant_id}/legal-holds"): Entry(
        "201 201 403 403 401",
        plain({"scope": "tenant", "reason": "litigation hold"}),
    ),
    ("POST", "/api/v1/tenants/{tenant_id}/legal-holds/{hold_id}/lift"): Entry(
        "200 200 403 403 401", legal_hold
    ),
    ("GET", "/api/v1/tenants/{tenant_id}/usage"): Entry("200 200 403 403 401"),
    ("GET", "/api/v1/operator/usage"): Entry("200 403 403 403 401", foreign="same"),
    ("GET", "/api/v1/operator/usage.csv"): Entry("200 403 403 403 401", foreign="same"),
    ("POST", "/api/v1/tenants/{tenant_id}/users"): Entry(
        "201 201 403 403 401", unique(lambda n: {"name": n})
    ),
    ("GET", "/api/v1/tenants/{tenant_id}/users"): Entry("200 200 403 403 401"),
    ("GET", "/api/v1/tenants/{tenant_id}/users.csv"): Entry("200 200 403 403 401"),
    ("POST", "/api/v1/tenants/{tenant_id}/users.csv"): Entry("200 200 403 403 401", users_csv),
    ("PATCH", "/api/v1/tenants/{tenant_id}/users/{user_id}"): Entry(
        "200 200 403 403 401", fresh_user({"role": "listener", "active": False})
    ),
    ("GET", "/api/v1/tenants/{tenant_id}/enablement"): Entry("200 200 403 403 401"),
    ("PUT", "/api/v1/tenants/{tenant_id}/enablement/{feature}"): Entry(
        "200 403 403 403 401", feature({"enabled": True, "reference": "DECL-1"})
    ),
    ("POST", "/api/v1/tenants/{tenant_id}/users/{user_id}/tokens"): Entry("201 201 403 403 401"),
    ("PUT", "/api/v1/tenants/{tenant_id}/users/{user_id}/credentials"): Entry(
        "204 204 403 403 401", new_credentials
    ),
    # reports
    ("GET", "/api/v1/tenants/{tenant_id}/calls"): Entry("200 200 200 200 401"),
    # LiveCenter (SPEC 7): with the operator's listening enablement every member sees
    # (what visibility lets them); record now is for admins and listeners, and a call
    # not in progress is 404. The event stream is checked without the enablement (403):
    # a live stream never ends; tests/live open it against a running server.
    ("GET", "/api/v1/tenants/{tenant_id}/live/calls"): Entry(
        "200 200 200 200 401", listening_on(), "200 404 404 404 401"
    ),
    ("GET", "/api/v1/tenants/{tenant_id}/live/calls/events"): Entry(
        "403 403 403 403 401", foreign="403 404 404 404 401"
    ),
    ("POST", "/api/v1/tenants/{tenant_id}/live/calls/{call_id}/record"): Entry(
        "403 404 404 403 401", listening_on({"on": True}, "0badc0de"), "403 404 404 404 401"
    ),
    # LiveCenter's coach button (silent coaching): admins and listeners; no call runs: 404
    ("POST", "/api/v1/tenants/{tenant_id}/live/calls/{call_id}/coach"): Entry(
        "403 404 404 403 401", listening_on(None, "0badc0de"), "403 404 404 404 401"
    ),
    ("GET", "/api/v1/tenants/{tenant_id}/recordings"): Entry("200 200 200 200 401"),
    ("GET", "/api/v1/recordings/{recording_id}"): Entry("200 200 404 200 401"),
    ("GET", "/api/v1/recordings/{recording_id}/audio"): Entry("200 200 404 200 401"),
    # play links are for the portal's cookie sessions; bearer tokens get 403 player-only
    ("POST", "/api/v1/recordings/{recording_id}/play"): Entry("403 403 404 403 401"),
    # Playback's question (issue 9): the recording's own user answers; an admin who sees it 403
    ("POST", "/api/v1/recordings/{recording_id}/keep"): Entry(
        "403 403 404 200 401", playback_question
    ),
    ("POST", "/api/v1/recordings/{recording_id}/discard"): Entry(
        "403 403 404 200 401", playback_question
    ),
    # the notification's button: the token answers, with or without a login
    ("POST", "/api/v1/playback/answer"): Entry("200 200 200 200 200", playback_token, "same"),
    ("GET", "/api/v1/me/inbox"): Entry("403 200 200 200 401", foreign="same"),
    ("GET", "/api/v1/me/recordings"): Entry("403 200 200 200 401", foreign="same"),
    ("GET", "/api/v1/me/contacts"): Entry("403 200 200 200 401", foreign="same"),
    ("POST", "/api/v1/me/contacts"): Entry(
        "403 201 201 201 401",
        unique(lambda n: {"list": "whitelist", "value": f"+3140{int(n, 16) % 10**7:07d}"}),
        "same",
    ),
    ("DELETE", "/api/v1/me/contacts/{contact_id}"): Entry("403 204 204 204 401", my_contact),
    # Web Push: the server's key for anyone logged in; devices are a tenant user's own
    ("GET", "/api/v1/push/vapid-public-key"): Entry("200 200 200 200 401", foreign="same"),
    ("GET", "/api/v1/me/push-subscriptions"): Entry("403 200 200 200 401", foreign="same"),
    ("POST", "/api/v1/me/push-subscriptions"): Entry("403 201 201 201 401", push_device, "same"),
    ("DELETE", "/api/v1/me/push-subscriptions/{subscription_id}"): Entry(
        "403 204 204 204 401", my_push_device
    ),
    ("GET", "/api/v1/tokens"): Entry("200 200 200 200 401", foreign="same"),
    ("POST", "/api/v1/tokens"): Entry("201 201 403 403 401", plain({"name": "ci"}), "same"),
    ("GET", "/api/v1/tenants/{tenant_id}/tokens"): Entry("200 200 403 403 401"),
    ("GET", "/api/v1/operator/tokens"): Entry("200 403 403 403 401", foreign="same"),
    ("DELETE", "/api/v1/tokens/{token_id}"): Entry("204 204 404 204 401", api_token),
    # settings
    ("GET", "/api/v1/tenants/{tenant_id}/legal-notice"): Entry("200 200 403 403 401"),
    # accepted only in the admin's own portal session, never with a bearer token
    ("POST", "/api/v1/tenants/{tenant_id}/legal-notice/accept"): Entry(
        "403 403 403 403 401",
        plain({"version": NOTICE_VERSION, "purpose": "quality monitoring of calls"}),
    ),
    ("GET", "/api/v1/tenants/{tenant_id}/recording-settings"): Entry("200 200 403 403 401"),
    ("PATCH", "/api/v1/tenants/{tenant_id}/recording-settings"): Entry(
        "200 200 403 403 401", accepted({"short_code": "*5"})
    ),
    # announcements (B2BUA): uploads and deletes are the tenant's own admin's
    ("GET", "/api/v1/tenants/{tenant_id}/announcements"): Entry("200 200 403 403 401"),
    ("PUT", "/api/v1/tenants/{tenant_id}/announcements/{kind}"): Entry(
        "403 200 403 403 401", prompt_upload
    ),
    ("DELETE", "/api/v1/tenants/{tenant_id}/announcements/{kind}"): Entry(
        "403 204 403 403 401", prompt_stored
    ),
    ("GET", "/api/v1/tenants/{tenant_id}/announcements/{kind}/audio"): Entry(
        "200 200 403 403 401", prompt_stored
    ),
    ("GET", "/api/v1/tenants/{tenant_id}/recording-list"): Entry("200 200 403 403 401"),
    ("POST", "/api/v1/tenants/{tenant_id}/recording-list"): Entry(
        "201 201 403 403 401", listing_new_user
    ),
    ("PUT", "/api/v1/tenants/{tenant_id}/recording-list/{user_id}"): Entry(
        "200 200 403 403 401", listed_user({"mode": "always"})
    ),
    ("DELETE", "/api/v1/tenants/{tenant_id}/recording-list/{user_id}"): Entry(
        "204 204 403 403 401", listed_user()
    ),
    ("GET", "/api/v1/tenants/{tenant_id}/users/{user_id}/contacts"): Entry("200 200 403 200 401"),
    ("POST", "/api/v1/tenants/{tenant_id}/users/{user_id}/contacts"): Entry(
        "201 201 403 201 401",
        unique(lambda n: {"list": "whitelist", "value": f"+3130{int(n, 16) % 10**7:07d}"}),
    ),
    ("DELETE", "/api/v1/tenants/{tenant_id}/users/{user_id}/contacts/{contact_id}"): Entry(
        "204 204 403 204 401", contact
    ),
    # account
    ("POST", "/api/v1/session"): Entry("200 200 200 200 401", log_in, "same"),
    ("GET", "/api/v1/session"): Entry("200 200 200 200 401", foreign="same"),
    ("DELETE", "/api/v1/session"): Entry("204 204 204 204 401", foreign="same"),
    ("POST", "/api/v1/session/password"): Entry("204 204 204 204 401", password_change, "same"),
    ("GET", "/api/v1/me"): Entry("200 200 200 200 401", foreign="same"),
    ("PATCH", "/api/v1/me"): Entry("403 200 200 200 401", plain({"language": "en"}), "same"),
    # teams
    ("GET", "/api/v1/tenants/{tenant_id}/teams"): Entry("200 200 403 403 401"),
    ("POST", "/api/v1/tenants/{tenant_id}/teams"): Entry(
        "201 201 403 403 401", unique(lambda n: {"name": n})
    ),
    ("DELETE", "/api/v1/tenants/{tenant_id}/teams/{team_id}"): Entry("204 204 403 403 401", team),
    ("PUT", "/api/v1/tenants/{tenant_id}/teams/{team_id}/members/{user_id}"): Entry(
        "200 200 403 403 401", team_to_join
    ),
    ("DELETE", "/api/v1/tenants/{tenant_id}/teams/{team_id}/members/{user_id}"): Entry(
        "204 204 403 403 401", team_with_member
    ),
    # annotations: whoever sees the recording; the operator reads but does not write
    ("GET", "/api/v1/recordings/{recording_id}/labels"): Entry("200 200 404 200 401"),
    ("POST", "/api/v1/recordings/{recording_id}/labels"): Entry(
        "403 201 404 201 401", unique(lambda n: {"text": n}), "403 404 404 404 401"
    ),
    ("DELETE", "/api/v1/recordings/{recording_id}/labels/{label_id}"): Entry(
        "403 204 404 204 401", label, "403 404 404 404 401"
    ),
    ("GET", "/api/v1/recordings/{recording_id}/comments"): Entry("200 200 404 200 401"),
    ("POST", "/api/v1/recordings/{recording_id}/comments"): Entry(
        "403 201 404 201 401", plain({"text": "call back"}), "403 404 404 404 401"
    ),
    # share links
    ("POST", "/api/v1/recordings/{recording_id}/shares"): Entry(
        "403 201 404 201 401", plain({"expires_in_hours": 2}), "403 404 404 404 401"
    ),
    ("GET", "/api/v1/recordings/{recording_id}/shares"): Entry("200 200 404 200 401"),
    ("DELETE", "/api/v1/recordings/{recording_id}/shares/{share_id}"): Entry(
        "403 204 404 204 401", share, "403 404 404 404 401"
    ),
    ("GET", "/api/v1/shared/{token}"): Entry("200 200 200 200 200", shared(), "same"),
    ("GET", "/api/v1/shared/{token}/audio"): Entry(
        "206 206 206 206 206", shared({"Range": "bytes=0-"}), "same"
    ),
    # audit
    ("GET", "/api/v1/tenants/{tenant_id}/audit"): Entry("200 200 403 403 401"),
    ("GET", "/api/v1/audit"): Entry("200 403 403 403 401", foreign="same"),
    # background jobs' progress
    ("GET", "/api/v1/tenants/{tenant_id}/jobs"): Entry("200 200 403 403 401"),
    ("GET", "/api/v1/tenants/{tenant_id}/jobs/{job_id}"): Entry("200 200 403 403 401", job_row),
    ("GET", "/api/v1/jobs"): Entry("200 403 403 403 401", foreign="same"),
    ("GET", "/api/v1/jobs/{job_id}"): Entry("200 403 403 403 401", job_row, "same"),
    # bulk download (exports): the tenant's own admins only, not even the operator
    ("POST", "/api/v1/tenants/{tenant_id}/exports"): Entry(
        "403 202 403 403 401", bulk_download_on({"month": _past_month()})
    ),
    ("GET", "/api/v1/tenants/{tenant_id}/exports"): Entry(
        "403 200 403 403 401", foreign="403 404 404 404 401"
    ),
    ("GET", "/api/v1/tenants/{tenant_id}/exports/{export_id}"): Entry(
        "403 200 403 403 401", export_part, "403 404 404 404 401"
    ),
    ("GET", "/api/v1/tenants/{tenant_id}/exports/{export_id}/files/{ordinal}"): Entry(
        "403 200 403 403 401", export_part, "403 404 404 404 401"
    ),
    # deletion receipts: the tenant's admin and the operator; every receipt the operator's
    ("GET", "/api/v1/tenants/{tenant_id}/deletion-receipts"): Entry("200 200 403 403 401"),
    ("GET", "/api/v1/tenants/{tenant_id}/deletion-receipts/{receipt_id}"): Entry(
        "200 200 403 403 401", receipt
    ),
    ("GET", "/api/v1/tenants/{tenant_id}/deletion-receipts/{receipt_id}/download"): Entry(
        "200 200 403 403 401", receipt
    ),
    ("GET", "/api/v1/operator/deletion-receipts"): Entry("200 403 403 403 401", foreign="same"),
    ("GET", "/api/v1/operator/deletion-receipts/{receipt_id}"): Entry(
        "200 403 403 403 401", receipt, "same"
    ),
    ("GET", "/api/v1/operator/deletion-receipts/{receipt_id}/download"): Entry(
        "200 403 403 403 401", receipt, "same"
    ),
    ("POST", "/api/v1/operator/purge"): Entry("202 403 403 403 401", foreign="same"),
    # termination: the operator's alone; a tenant's admin with a valid token and the
    # exact name of its own tenant is still 403
    ("POST", "/api/v1/operator/tenants/{tenant_id}/termination"): Entry(
        "201 403 403 403 401", foreign="same"
    ),
    ("POST", "/api/v1/operator/tenants/{tenant_id}/termination/confirm"): Entry(
        "200 403 403 403 401", termination_token, "same"
    ),
    # recording sources: the operator's alone, whichever tenants they record for
    ("GET", "/api/v1/sources"): Entry("200 403 403 403 401", foreign="same"),
    ("POST", "/api/v1/sources"): Entry(
        "201 403 403 403 401", unique(lambda n: {"name": n, "networks": ["10.0.0.0/8"]}), "same"
    ),
    ("GET", "/api/v1/sources/{source_id}"): Entry(
        "200 403 403 403 401", recording_source(), "same"
    ),
    ("PATCH", "/api/v1/sources/{source_id}"): Entry(
        "200 403 403 403 401", recording_source({"max_calls": 10}), "same"
    ),
    ("DELETE", "/api/v1/sources/{source_id}"): Entry(
        "204 403 403 403 401", recording_source(), "same"
    ),
    # the B2BUA's call routes: the operator's alone, like the sources they name
    ("GET", "/api/v1/routes"): Entry("200 403 403 403 401", foreign="same"),
    ("POST", "/api/v1/routes"): Entry("201 403 403 403 401", new_call_route, "same"),
    ("DELETE", "/api/v1/routes/{route_id}"): Entry("204 403 403 403 401", call_route, "same"),
    # infrastructure
    ("GET", "/openapi.json"): Entry("200 200 200 200 200", foreign="same"),
    ("GET", "/docs"): Entry("200 200 200 200 200", foreign="same"),
    ("GET", "/redoc"): Entry("200 200 200 200 200", foreign="same"),
    ("GET", "/metrics"): Entry("200 403 403 403 401", foreign="same"),
    ("GET", "/healthz"): Entry("200 200 200 200 200", foreign="same"),
    ("GET", "/livez"): Entry("200 200 200 200 200", foreign="same"),
    ("GET", "/readyz"): Entry("200 200 200 200 200", foreign="same"),
}

# Server-rendered pages (owned by the pages' own tests); listed so that a new
# route of any kind must be named somewhere.
PAGES = {
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/logout"),
    ("POST", "/language"),
    ("GET", "/s/{token}"),
    ("POST", "/operator/tenants/{tenant_id}/enablement/{feature}"),
    # the installable app's manifest and service worker: public, like the static files
    ("GET", "/manifest.webmanifest"),
    ("GET", "/sw.js"),
    # the e-mailed question's link: a redirect to /recordings/{id}, which checks who asks
    ("GET", "/playback/{recording_id}"),
}

# The pages behind a role, each role logged in to the portal (cookie session and
# CSRF header, as a browser); nobody is sent to the login page (303). A page
# takes the tenant from the login, so "foreign" is another tenant's object.
PAGE_MATRIX: dict[tuple[str, str], Entry] = {
    ("GET", "/reports/calls"): Entry("403 200 200 200 303", foreign="same"),
    ("GET", "/livecenter"): Entry("403 200 200 200 303", foreign="same"),
    # Playback's app (issue 9): every tenant member's own recordings, lists and devices
    ("GET", "/home"): Entry("403 200 200 200 303", foreign="same"),
    ("GET", "/lists"): Entry("403 200 200 200 303", foreign="same"),
    ("GET", "/notifications"): Entry("403 200 200 200 303", foreign="same"),
    ("GET", "/recordings/{recording_id}"): Entry(
        "403 200 404 200 303", foreign="403 404 404 404 303"
    ),
    ("GET", "/settings/recording"): Entry("403 200 403 403 303", foreign="same"),
    ("GET", "/users"): Entry("403 200 403 403 303", foreign="same"),
    ("GET", "/users/{user_id}"): Entry("403 200 403 403 303", foreign="403 404 403 403 303"),
    ("GET", "/audit"): Entry("403 200 403 403 303", foreign="same"),
    ("GET", "/jobs"): Entry("200 200 403 403 303", foreign="same"),
    ("GET", "/operator/tenants"): Entry("200 403 403 403 303", foreign="same"),
    ("GET", "/operator/tenants/{tenant_id}"): Entry("200 403 403 403 303", foreign="same"),
    ("GET", "/operator/tenants/{tenant_id}/users"): Entry("200 403 403 403 303", foreign="same"),
    ("GET", "/operator/usage"): Entry("200 403 403 403 303", foreign="same"),
    # bulk download: the export's page is the link in its e-mail
    ("GET", "/exports"): Entry("403 200 403 403 303", foreign="same"),
    ("GET", "/exports/{export_id}"): Entry(
        "403 200 403 403 303", export_part, "403 404 403 403 303"
    ),
    # the operator's termination steps and every deletion receipt
    ("GET", "/operator/deletion-receipts"): Entry("200 403 403 403 303", foreign="same"),
    ("GET", "/operator/tenants/{tenant_id}/termination"): Entry(
        "200 403 403 403 303", foreign="same"
    ),
    ("POST", "/operator/tenants/{tenant_id}/termination"): Entry(
        "200 403 403 403 303", foreign="same"
    ),
    ("POST", "/operator/tenants/{tenant_id}/termination/confirm"): Entry(
        "200 403 403 403 303", termination_token, "same"
    ),
}


def app_routes(world: World) -> set[tuple[str, str]]:
    try:
        from fastapi.routing import iter_route_contexts

        routes: list[Any] = list(iter_route_contexts(world.app.routes))
    except ImportError:
        routes = list(world.app.routes)
    found = set()
    for route in routes:
        methods = getattr(route, "methods", None)
        if not methods:  # mounts (static files)
            continue
        for method in methods - {"HEAD"}:
            found.add((method, route.path))
    return found


def test_every_route_has_a_matrix_entry(world: World) -> None:
    routes = app_routes(world)
    missing = routes - MATRIX.keys() - PAGES - PAGE_MATRIX.keys()
    assert not missing, f"add these to MATRIX (or PAGES): {sorted(missing)}"
    stale = (MATRIX.keys() | PAGE_MATRIX.keys()) - routes
    assert not stale, f"no longer routes: {sorted(stale)}"
    # The walk above must see at least every API route the app declares;
    # an empty or partial walk would make the two checks above vacuous.
    api_routes = {
        (method, route.path)
        for route in world.app.routes
        if isinstance(route, APIRoute)
        for method in (route.methods or set()) - {"HEAD"}
    }
    assert api_routes, "the app declares no API routes"
    assert api_routes <= routes, f"routes the walk missed: {sorted(api_routes - routes)}"


# WebSocket routes have no HTTP method, so the walk above does not see them; each
# is listed with the tests that check its roles, tenants and enablement on a real
# socket (the handshake's refusals: 401, 403 role/enablement/origin, 404 foreign).
WEBSOCKETS = {
    "/api/v1/tenants/{tenant_id}/live/calls/{call_id}/listen": "tests/live/test_listen_ws.py",
}


def test_every_websocket_route_is_listed(world: World) -> None:
    try:
        from fastapi.routing import iter_route_contexts

        routes = [getattr(r, "route", r) for r in iter_route_contexts(world.app.routes)]
    except ImportError:
        routes = list(world.app.routes)
    found = {route.path for route in routes if isinstance(route, APIWebSocketRoute)}
    assert found == WEBSOCKETS.keys(), f"list these in WEBSOCKETS: {sorted(found)}"


def _expected(entry: Entry, foreign: bool) -> list[int]:
    own = [int(s) for s in entry.own.split()]
    if not foreign or entry.foreign == "same":
        return own
    if entry.foreign is not None:
        return [int(s) for s in entry.foreign.split()]
    return [own[0], 404, 404, 404, own[4]]


@pytest.mark.parametrize("method,path", sorted(MATRIX), ids=[f"{m} {p}" for m, p in sorted(MATRIX)])
def test_matrix(world: World, method: str, path: str) -> None:
    entry = MATRIX[(method, path)]
    got: dict[str, list[int]] = {}
    want: dict[str, list[int]] = {}
    for foreign in (False, True):
        scope = "foreign" if foreign else "own"
        want[scope] = _expected(entry, foreign)
        got[scope] = []
        for who in ROLES:
            call = entry.prepare(world, who, foreign)
            headers = dict(call.headers)
            if who is not None:
                headers |= world.auth(who)
            r = world.client.request(
                method,
                path.format(**call.params),
                json=call.body if call.content is None else None,
                content=call.content,
                headers=headers,
            )
            assert r.status_code < 500, r.text
            got[scope].append(r.status_code)
    assert got == want, dict(
        zip(ROLE_NAMES, zip(got["own"], got["foreign"], strict=True), strict=True)
    )


def _browser(world: World, who: str | None) -> TestClient:
    """A browser on https (the cookie is Secure) not following redirects; logged in as
    ``who`` with a portal session row as ``POST /api/v1/session`` makes it (cookie and
    CSRF header), without its password hashing: four logins a page cost seconds."""
    browser = TestClient(world.app, base_url="https://testserver", follow_redirects=False)
    if who is None:
        return browser
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    at = datetime.now(UTC)
    with world.sessions() as session:
        user = None if who == "operator" else session.get(User, world.users[who])
        operator_id = session.scalars(select(Operator.id)).one() if user is None else None
        session.add(
            WebSession(
                token_hash=hash_token(cookie),
                csrf_token=csrf,
                operator_id=operator_id,
                user_id=user.id if user else None,
                tenant_id=user.tenant_id if user else None,
                created_at=at,
                expires_at=at + timedelta(hours=1),
            )
        )
        session.commit()
    browser.cookies.set(SESSION_COOKIE, cookie)
    browser.headers["X-CSRF-Token"] = csrf
    return browser


@pytest.mark.parametrize(
    "method,path", sorted(PAGE_MATRIX), ids=[f"{m} {p}" for m, p in sorted(PAGE_MATRIX)]
)
def test_page_matrix(world: World, method: str, path: str) -> None:
    entry = PAGE_MATRIX[(method, path)]
    browsers = [_browser(world, who) for who in ROLES]
    got: dict[str, list[int]] = {}
    want: dict[str, list[int]] = {}
    for foreign in (False, True):
        scope = "foreign" if foreign else "own"
        want[scope] = _expected(entry, foreign)
        got[scope] = []
        for who, browser in zip(ROLES, browsers, strict=True):
            call = entry.prepare(world, who, foreign)
            r = browser.request(
                method,
                path.format(**call.params),
                content=urlencode(call.body or {}).encode() if method == "POST" else None,
                headers={"Content-Type": "application/x-www-form-urlencoded"}
                if method == "POST"
                else {},
            )
            assert r.status_code < 500, r.text
            if r.status_code == 303:
                assert r.headers["location"].startswith("/login?next="), r.headers["location"]
            got[scope].append(r.status_code)
    assert got == want, dict(
        zip(ROLE_NAMES, zip(got["own"], got["foreign"], strict=True), strict=True)
    )


def test_team_of_another_tenant_is_404_under_own_path(world: World) -> None:
    """Object ids in the path are scoped by the path's tenant too."""
    b_team = _team(world, foreign=True)
    r = world.client.delete(
        f"/api/v1/tenants/{world.tenant_a}/teams/{b_team}", headers=world.auth("a_admin")
    )
    assert r.status_code == 404
    with world.sessions() as session:
        assert session.scalar(select(Team.id).where(Team.id == b_team)) == b_team
