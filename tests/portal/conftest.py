"""Two tenants with portal logins for every role, calls and recordings, a TestClient.

Logins go through ``POST /api/v1/session`` exactly as the login page's script
does; the client talks https so that the Secure session cookie is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from callvault.admin import (
    accept_legal_notice,
    bootstrap_operator,
    create_tenant,
    create_user,
    enable_feature,
)
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.db.models import Operator, User
from callvault.portal.app import create_app
from callvault.portal.context import PortalContext
from callvault.portal.passwords import hash_password
from callvault.storage.blobs import LocalBlobStore
from tests.api.conftest import seed_recording

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
        enable_feature(session, a, reference="DECL-TEST")
        accept_legal_notice(session, a, users["a_admin"])
        rec_a = seed_recording(session, blobs, a.id, users["a_user"].id, bytes([1]) * 2048, 1)
        rec_a2 = seed_recording(session, blobs, a.id, users["a_colleague"].id, bytes([2]) * 2048, 2)
        rec_b = seed_recording(session, blobs, b.id, users["b_user"].id, bytes([3]) * 2048, 3)
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
