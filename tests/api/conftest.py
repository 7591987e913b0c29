from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callvault.admin import bootstrap_operator, create_tenant, create_user, enable_feature
from callvault.db.engine import make_engine, make_sessionmaker
from callvault.db.models import Call, CallParty, Operator, Recording, Segment, User
from callvault.portal.app import create_app
from callvault.portal.auth import issue_token
from callvault.portal.context import PortalContext
from callvault.portal.passwords import hash_password
from callvault.storage.blobs import LocalBlobStore
from tests.databases import database_url, parametrize_databases, register_marker


@dataclass
class World:
    client: TestClient
    sessions: sessionmaker[Session]
    blobs: LocalBlobStore
    tokens: dict[str, str]  # role name -> token
    tenant_a: int
    tenant_b: int
    users: dict[str, int]
    recording_a: str  # recording of tenant A, user "a_user"
    recording_a2: str  # recording of tenant A, user "a_colleague"
    recording_b: str
    audio: bytes

    @property
    def app(self) -> FastAPI:
        return cast(FastAPI, self.client.app)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def seed_recording(
    session: Session, blobs: LocalBlobStore, tenant_id: int, user_id: int, audio: bytes, n: int
) -> str:
    call = Call(
        tenant_id=tenant_id,
        sip_call_id=f"call-{n}",
        direction="inbound",
        from_name=f"Caller {n}",
        from_number="+31201234567",
        to_number="+31207654321",
        started_at=datetime(2026, 11, 1, 10, n, tzinfo=UTC),
        answered_at=datetime(2026, 11, 1, 10, n, 1, tzinfo=UTC),
        ended_at=datetime(2026, 11, 1, 10, n, 31, tzinfo=UTC),
        duration_ms=30000,
    )
    call.parties = [
        CallParty(tenant_id=tenant_id, participant_id="p1", aor="x@y", user_id=user_id, side="user")
    ]
    session.add(call)
    session.flush()
    key = f"{tenant_id}/{call.id}.mp3"
    blobs.put(key, audio)
    recording = Recording(
        id=call.id,
        tenant_id=tenant_id,
        call_id=call.id,
        user_id=user_id,
        blob_key=key,
        sha256=hashlib.sha256(audio).hexdigest(),
        size_bytes=len(audio),
        duration_ms=30000,
        channels=2,
        sample_rate=8000,
        codecs="PCMU",
        started_at=call.started_at,
    )
    recording.segments = [
        Segment(
            ordinal=0, call_start_ms=1000, call_end_ms=31000, file_start_ms=0, file_end_ms=30000
        )
    ]
    session.add(recording)
    session.flush()
    return recording.id


def pytest_configure(config: pytest.Config) -> None:
    register_marker(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_databases(metafunc)  # every test here with a world: [sqlite] and [postgresql]


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """Two tenants, their users, tokens and recordings, on a fresh database.

    SQLite unless the suite parametrises it (tests/databases.py): the suites
    borrowing this fixture from here stay on SQLite.
    """
    with database_url(request, tmp_path) as url:
        yield from _world(url, tmp_path)


def _world(url: str, tmp_path: Path) -> Iterator[World]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    blobs = LocalBlobStore(tmp_path / "blobs")
    audio = bytes(range(256)) * 40
    with sessions() as session:
        _op, op_token = bootstrap_operator(session)
        assert op_token
        a = create_tenant(session, "Alpha", ["alpha.example"], ["+31201110000"])
        b = create_tenant(session, "Beta", ["beta.example"], ["+31202220000"])
        for tenant in (a, b):  # the operator's switch, as after a signed declaration
            enable_feature(session, tenant, reference="DECL-TEST")
        users = {
            "a_admin": create_user(session, a, "Ada", extension="100", role="admin"),
            "a_user": create_user(session, a, "Anna", extension="101", recorded=True),
            "a_colleague": create_user(session, a, "Arie", extension="102", recorded=True),
            "a_listener": create_user(session, a, "Lisa", extension="103", role="listener"),
            "b_admin": create_user(session, b, "Bert", extension="100", role="admin"),
            "b_user": create_user(session, b, "Bob", extension="101", recorded=True),
        }
        tokens = {"operator": op_token}
        for name, user in users.items():
            tokens[name] = issue_token(session, name, user=user)
        rec_a = seed_recording(session, blobs, a.id, users["a_user"].id, audio, 1)
        rec_a2 = seed_recording(session, blobs, a.id, users["a_colleague"].id, audio, 2)
        rec_b = seed_recording(session, blobs, b.id, users["b_user"].id, audio, 3)
        session.commit()
        ids = {k: v.id for k, v in users.items()}
        ta, tb = a.id, b.id
    app = create_app(PortalContext(sessions, blobs))
    with TestClient(app) as client:
        yield World(client, sessions, blobs, tokens, ta, tb, ids, rec_a, rec_a2, rec_b, audio)
    engine.dispose()


class Clock:
    """The portal's clock in tests: ``app.state.clock``; moved by hand, never by sleeping."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(world: World) -> Clock:
    moving = Clock(datetime.now(UTC))
    world.app.state.clock = moving
    return moving


@pytest.fixture
def browser(world: World) -> TestClient:
    """A second client on https, so that the Secure session cookie is kept and sent."""
    return TestClient(world.app, base_url="https://testserver")


PASSWORD = "correct horse battery"


def give_login(world: World, who: str, password: str = PASSWORD) -> str:
    """Sets a portal login (named ``who``) and password for a world account; returns the login."""
    login = who.replace("_", "-")
    with world.sessions() as session:
        account: Operator | User | None
        if who == "operator":
            account = session.scalars(select(Operator)).one()
        else:
            account = session.get(User, world.users[who])
        assert account is not None
        account.login, account.password_hash = login, hash_password(password)
        session.commit()
    return login


def portal_session(world: World, who: str) -> TestClient:
    """A browser-like client logged in as ``who``: cookie session, CSRF header set."""
    client = TestClient(world.app, base_url="https://testserver")
    login = give_login(world, who)
    r = client.post("/api/v1/session", json={"login": login, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client
