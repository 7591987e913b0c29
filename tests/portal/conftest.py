"""Two tenants with portal logins for every role, calls and recordings, a TestClient.

Logins go through ``POST /api/v1/session`` exactly as the login page's script
does; the client talks https so that the Secure session cookie is kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from callvault.admin import accept_legal_notice, bootstrap_operator, create_tenant, create_user
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Call, CallParty, Operator, Recording, Segment, User
from callvault.portal.app import create_app
from callvault.portal.context import PortalContext
from callvault.portal.passwords import hash_password
from callvault.storage.blobs import LocalBlobStore

PASSWORD = "a long enough test password"


@dataclass
class Portal:
    app_client: Callable[[], TestClient]
    sessions: sessionmaker[Session]
    tenant_a: int
    tenant_b: int
    users: dict[str, int]
    recording_a: str  # a_user's
    recording_a2: str  # a_colleague's
    recording_b: str  # tenant B

    def client(self, who: str | None = None, language: str | None = None) -> TestClient:
        client = self.app_client()
        if who is not None:
            if language is not None:
                self.set_language(who, language)
            r = client.post("/api/v1/session", json={"login": who, "password": PASSWORD})
            assert r.status_code == 200, r.text
            client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return client

    def set_language(self, who: str, language: str | None) -> None:
        with self.sessions() as session:
            user = session.get(User, self.users[who])
            assert user is not None
            user.language = language
            session.commit()


def _recording(
    session: Session, blobs: LocalBlobStore, tenant_id: int, user_id: int, n: int
) -> str:
    audio = bytes([n]) * 2048
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


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    blobs = LocalBlobStore(tmp_path / "blobs")
    hashed = hash_password(PASSWORD)
    with sessions() as session:
        bootstrap_operator(session)
        operator = session.query(Operator).one()
        operator.login, operator.password_hash = "operator", hashed
        a = create_tenant(session, "Alpha", ["alpha.example"], ["+31201110000"])
        b = create_tenant(session, "Beta", ["beta.example"], ["+31202220000"])
        users = {
            "a_admin": create_user(session, a, "Ada", extension="100", role="admin"),
            "a_user": create_user(session, a, "Anna", extension="101", recorded=True),
            "a_colleague": create_user(session, a, "Arie", extension="102", recorded=True),
            "a_listener": create_user(session, a, "Lisa", extension="103", role="listener"),
            "a_fresh": create_user(session, a, "Frits", extension="104"),
            "b_admin": create_user(session, b, "Bert", extension="100", role="admin"),
            "b_user": create_user(session, b, "Bob", extension="101", recorded=True),
        }
        for login, user in users.items():
            user.login, user.password_hash = login, hashed
        accept_legal_notice(session, a, users["a_admin"])
        rec_a = _recording(session, blobs, a.id, users["a_user"].id, 1)
        rec_a2 = _recording(session, blobs, a.id, users["a_colleague"].id, 2)
        rec_b = _recording(session, blobs, b.id, users["b_user"].id, 3)
        session.commit()
        ids = {k: v.id for k, v in users.items()}
        ta, tb = a.id, b.id
    app = create_app(PortalContext(sessions, blobs))
    clients: list[TestClient] = []

    def make() -> TestClient:
        client = TestClient(app, base_url="https://testserver", follow_redirects=False)
        clients.append(client)
        return client

    yield Portal(make, sessions, ta, tb, ids, rec_a, rec_a2, rec_b)
    for client in clients:
        client.close()
    engine.dispose()
