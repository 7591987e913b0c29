"""An in-process callvault server on loopback ports, seeded with one tenant."""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from callvault.admin import (
    accept_legal_notice,
    bootstrap_operator,
    create_tenant,
    create_user,
    enable_feature,
)
from callvault.app import Application
from callvault.db.engine import make_engine, make_sessionmaker, migrate
from callvault.demo.client import SiprecClient
from callvault.portal.auth import issue_token
from callvault.recording.mp3 import decode_mp3
from callvault.settings import load_settings
from callvault.sip.endpoint import IncomingRequest, SipEndpoint
from callvault.sources.store import register_loopback_source


@dataclass
class Recorder:
    app: Application
    client: SiprecClient
    endpoint: SipEndpoint
    http: httpx.AsyncClient
    token: str
    tenant_id: int
    users: dict[str, int]
    finished: asyncio.Queue[tuple[str, str | None]]

    @property
    def sip(self) -> tuple[str, int]:
        return ("127.0.0.1", self.app.sip_port)

    async def wait_finished(
        self, count: int = 1, timeout: float = 30
    ) -> list[tuple[str, str | None]]:
        done = []
        for _ in range(count):
            done.append(await asyncio.wait_for(self.finished.get(), timeout))
        return done

    async def recording(self, recording_id: str) -> dict:  # type: ignore[type-arg]
        r = await self.http.get(f"/api/v1/recordings/{recording_id}")
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    async def audio(self, recording_id: str) -> tuple[np.ndarray, int, bytes]:
        r = await self.http.get(f"/api/v1/recordings/{recording_id}/audio")
        r.raise_for_status()
        pcm, rate = decode_mp3(r.content)
        return pcm, rate, r.content


def _refuse(request: IncomingRequest) -> None:
    request.respond(405)


def seed(
    url: str, *, mode: str = "always", accept_notice: bool = True
) -> tuple[str, int, dict[str, int]]:
    migrate(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        _operator, token = bootstrap_operator(session)
        assert token is not None
        tenant = create_tenant(
            session, "Acme", ["acme.example"], ["+31201234500"], blocks=["+312012345*"]
        )
        users = {
            "alice": create_user(
                session,
                tenant,
                "Alice",
                extension="201",
                numbers=["+31201234501"],
                aors=["alice@acme.example"],
                recorded=True,
            ),
            "bob": create_user(
                session, tenant, "Bob", extension="202", aors=["bob@acme.example"], recorded=True
            ),
            "carol": create_user(
                session, tenant, "Carol", extension="203", aors=["carol@acme.example"]
            ),
        }
        for user in (users["alice"], users["bob"]):
            user.recording_mode = mode
        admin = create_user(session, tenant, "Admin", extension="299", role="admin")
        enable_feature(session, tenant, reference="DECL-TEST")
        if accept_notice:
            accept_legal_notice(session, tenant, admin)
        # the tests' SRCs (our client, sipp) send from loopback: a registered source
        register_loopback_source(session, [tenant.id])
        admin_token = issue_token(session, "tests", user=admin)
        session.commit()
        ids = {name: user.id for name, user in users.items()}
        tenant_id = tenant.id
    engine.dispose()
    del token
    return admin_token, tenant_id, ids


@asynccontextmanager
async def running_recorder(
    data_dir: Path,
    *,
    mode: str = "always",
    accept_notice: bool = True,
    tls_client_context: ssl.SSLContext | None = None,
    **overrides: Any,  # settings fields, checked by load_settings
) -> AsyncIterator[Recorder]:
    base = random.randrange(20000, 50000, 1000)
    settings = load_settings(
        data_dir=data_dir,
        sip_port=0,
        http_port=0,
        rtp_port_min=base,
        rtp_port_max=base + 998,
        **overrides,
    )
    token, tenant_id, users = await asyncio.to_thread(
        seed, settings.db_url, mode=mode, accept_notice=accept_notice
    )
    app = Application(settings)
    await app.start()
    endpoint = SipEndpoint(_refuse, tls_client_context=tls_client_context)
    await endpoint.listen("127.0.0.1", 0, 0)
    client = SiprecClient(endpoint, ("127.0.0.1", app.sip_port))
    if app.endpoint.tls_port:
        client.tls_server = ("127.0.0.1", app.endpoint.tls_port)
    http = httpx.AsyncClient(  # a loaded 2-core CI machine can take seconds for one request
        base_url=f"http://127.0.0.1:{app.http_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    try:
        yield Recorder(
            app, client, endpoint, http, token, tenant_id, users, app.finisher.subscribe()
        )
    finally:
        await http.aclose()
        await endpoint.close()
        await app.stop()
