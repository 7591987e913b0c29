"""Listening over the WebSocket against a running callvault with a real SIPREC call.

Alice (the recorded user, left) sends 440 Hz, the customer (right) 1000 Hz; a
listener hears the side(s) the tenant's channel setting names, decided by
frequency. Refusals (login, role, enablement, visibility, foreign tenant,
origin), LiveCenter's presence and the audit rows with who and how long.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import numpy.typing as npt
from sqlalchemy import select

from callvault.admin import create_tenant, create_user, enable_feature
from callvault.db.models import AuditEvent, Team, TeamMember, Tenant, TenantEnablement
from callvault.demo.client import CallPlan, CallResult, Participant
from callvault.live.listen import FRAME_HEADER
from callvault.media.tones import sine
from callvault.portal.auth import issue_token
from tests.e2e.harness import Recorder, running_recorder

USER_HZ, OTHER_HZ = 440.0, 1000.0


@dataclass
class People:
    listener: str  # leads Alice's team
    outsider: str  # a listener leading nobody
    user: str  # Alice herself (role user)
    foreign_admin: str  # another tenant's admin
    ids: dict[str, int]


def prepare(rec: Recorder, *, listening: bool = True) -> People:
    tokens: dict[str, str] = {}
    ids: dict[str, int] = {}
    with rec.app.sessions() as session:
        tenant = session.get(Tenant, rec.tenant_id)
        assert tenant is not None
        if listening:
            enable_feature(session, tenant, "listening", reference="DECL-LIVE")
        listener = create_user(session, tenant, "Lena", extension="280", role="listener")
        outsider = create_user(session, tenant, "Otto", extension="281", role="listener")
        session.flush()
        team = Team(tenant_id=tenant.id, name="Support")
        session.add(team)
        session.flush()
        session.add_all(
            [
                TeamMember(tenant_id=tenant.id, team_id=team.id, user_id=listener.id, is_lead=True),
                TeamMember(tenant_id=tenant.id, team_id=team.id, user_id=rec.users["alice"]),
            ]
        )
        other = create_tenant(session, "Globex", ["globex.example"], ["+31301234500"])
        foreign = create_user(session, other, "Gina", extension="200", role="admin")
        alice = session.get(type(listener), rec.users["alice"])
        assert alice is not None
        session.flush()
        tokens["listener"] = issue_token(session, "t", user=listener)
        tokens["outsider"] = issue_token(session, "t", user=outsider)
        tokens["user"] = issue_token(session, "t", user=alice)
        tokens["foreign"] = issue_token(session, "t", user=foreign)
        ids = {"listener": listener.id, "foreign_tenant": other.id}
        session.commit()
    rec.app.reload_directory()
    return People(tokens["listener"], tokens["outsider"], tokens["user"], tokens["foreign"], ids)


def set_channels(rec: Recorder, channels: str) -> None:
    with rec.app.sessions() as session:
        tenant = session.get(Tenant, rec.tenant_id)
        assert tenant is not None
        tenant.channels = channels
        session.commit()


def plan(seconds: float) -> CallPlan:
    return CallPlan(
        caller=Participant("sip:alice@acme.example", "Alice", sine(USER_HZ, seconds)),
        callee=Participant("sip:+31612345678@pstn.example", "Customer", sine(OTHER_HZ, seconds)),
        duration_s=seconds,
    )


@asynccontextmanager
async def call_in_progress(rec: Recorder, seconds: float) -> AsyncIterator[str]:
    """A SIPREC call running for ``seconds``; yields its id as LiveCenter knows it."""
    placed: asyncio.Task[CallResult] = asyncio.create_task(rec.client.place(plan(seconds)))
    try:
        for _ in range(200):
            views = rec.app.live.views(rec.tenant_id)
            if views and views[0].answered_at is not None:
                break
            if placed.done():  # the client gave up or was refused: its answer says why
                raise AssertionError(f"the call ended before it showed: {placed.result()}")
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the call never showed in LiveCenter")
        yield views[0].id
    finally:
        result = await placed
        assert result.status == 200


def ws_url(rec: Recorder, call_id: str, tenant_id: int | None = None) -> str:
    tenant = rec.tenant_id if tenant_id is None else tenant_id
    return f"ws://127.0.0.1:{rec.app.http_port}/api/v1/tenants/{tenant}/live/calls/{call_id}/listen"


async def listen_for(
    rec: Recorder, call_id: str, token: str, seconds: float
) -> tuple[dict[str, object], list[bytes]]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(ws_url(rec, call_id), headers={"Authorization": f"Bearer {token}"}) as ws,
    ):
        first = await ws.receive(timeout=5)
        assert first.type == aiohttp.WSMsgType.TEXT
        description = json.loads(first.data)
        frames: list[bytes] = []
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while loop.time() < until:
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.BINARY, msg
            frames.append(msg.data)
        return description, frames


async def refusal(
    rec: Recorder, call_id: str, headers: dict[str, str], tenant_id: int | None = None
) -> tuple[int, str]:
    """The answer to an upgrade that is refused: status and error id."""
    key = base64.b64encode(os.urandom(16)).decode()
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": key,
    }
    async with httpx.AsyncClient(timeout=10) as client:
        path = ws_url(rec, call_id, tenant_id).replace("ws://", "http://")
        r = await client.get(path, headers=upgrade | headers)
    assert r.status_code != 101
    return r.status_code, r.json()["error"]["id"]


async def gone(rec: Recorder, call_id: str) -> None:
    for _ in range(100):
        if not rec.app.live.presences(call_id):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the listener is still shown")


def pcm(frames: list[bytes]) -> npt.NDArray[np.int16]:
    channels = FRAME_HEADER.unpack_from(frames[0])[1]
    data = b"".join(f[FRAME_HEADER.size :] for f in frames)
    return np.frombuffer(data, dtype="<i2").reshape(-1, channels).T.copy()


def level(signal: npt.NDArray[np.int16], hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(signal.astype(np.float64)))
    freqs = np.fft.rfftfreq(signal.size, 1 / 8000)
    band = (freqs > hz - 15) & (freqs < hz + 15)
    return float(spectrum[band].max() / (signal.size / 2))


async def test_each_channel_setting_is_heard_and_listening_is_shown_and_audited(
    tmp_path: Path,
) -> None:
    async with running_recorder(tmp_path) as rec:
        people = prepare(rec)
        async with call_in_progress(rec, 6.0) as call_id:
            heard: dict[str, npt.NDArray[np.int16]] = {}
            for setting in ("user", "other", "both"):
                set_channels(rec, setting)
                description, frames = await listen_for(rec, call_id, people.listener, 0.8)
                assert description == {
                    "rate": 8000,
                    "channels": 2 if setting == "both" else 1,
                    "frame_ms": 20,
                    "setting": setting,
                }
                heard[setting] = pcm(frames[10:])  # past the first moments' silence
            # the server notices the closed socket at once and the presence goes
            await gone(rec, call_id)
        user, other, both = heard["user"], heard["other"], heard["both"]
        assert user.shape[0] == 1 and other.shape[0] == 1 and both.shape[0] == 2
        assert level(user[0], USER_HZ) > 1000 > 20 > level(user[0], OTHER_HZ)
        assert level(other[0], OTHER_HZ) > 1000 > 20 > level(other[0], USER_HZ)
        assert level(both[0], USER_HZ) > 1000 and level(both[0], OTHER_HZ) < 20
        assert level(both[1], OTHER_HZ) > 1000 and level(both[1], USER_HZ) < 20
        with rec.app.sessions() as session:
            rows = session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action.like("live.listen.%"))
                .order_by(AuditEvent.id)
            ).all()
        assert [r.action for r in rows] == ["live.listen.start", "live.listen.stop"] * 3
        assert {r.actor for r in rows} == {f"user:{people.ids['listener']}"}
        assert {r.target for r in rows} == {call_id}
        assert {r.tenant_id for r in rows} == {rec.tenant_id}
        stops = [r.details for r in rows if r.action == "live.listen.stop"]
        assert [s["channels"] for s in stops] == ["user", "other", "both"]
        assert all(0.5 <= s["duration_s"] <= 5 for s in stops)


async def test_presence_while_listening_and_the_feed_detaches(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        people = prepare(rec)
        async with call_in_progress(rec, 3.0) as call_id:
            call = rec.app.live.find(rec.tenant_id, call_id)
            assert call is not None
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(
                    ws_url(rec, call_id), headers={"Authorization": f"Bearer {people.listener}"}
                ) as ws,
            ):
                await ws.receive(timeout=5)
                await ws.receive(timeout=5)  # a frame: the feed is attached
                [presence] = rec.app.live.presences(call_id)
                assert (presence.kind, presence.user_id) == ("listen", people.ids["listener"])
                assert all(s.receiver.listener is not None for s in call.streams.values())
            await gone(rec, call_id)
            assert all(s.receiver.listener is None for s in call.streams.values())


async def test_the_socket_closes_when_the_call_ends(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        people = prepare(rec)
        async with (
            call_in_progress(rec, 1.5) as call_id,
            aiohttp.ClientSession() as http,
            http.ws_connect(
                ws_url(rec, call_id), headers={"Authorization": f"Bearer {people.listener}"}
            ) as ws,
        ):
            kinds = set()
            while True:
                msg = await ws.receive(timeout=10)
                kinds.add(msg.type)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
            assert aiohttp.WSMsgType.BINARY in kinds
            assert ws.close_code == 1000


async def test_refusals(tmp_path: Path) -> None:
    async with running_recorder(tmp_path) as rec:
        people = prepare(rec)
        async with call_in_progress(rec, 4.0) as call_id:

            def bearer(token: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {token}"}

            assert await refusal(rec, call_id, {}) == (401, "auth-required")
            # Alice herself is a plain user: listening in is for supervisors
            assert await refusal(rec, call_id, bearer(people.user)) == (403, "role-required")
            # a listener who leads nobody in the call does not see it
            assert await refusal(rec, call_id, bearer(people.outsider)) == (
                404,
                "live-call-not-found",
            )
            assert await refusal(rec, "0" * 32, bearer(rec.token)) == (404, "live-call-not-found")
            # another tenant's admin: tenant A does not exist for them
            assert await refusal(rec, call_id, bearer(people.foreign_admin)) == (
                404,
                "tenant-not-found",
            )
            # ... nor is A's call in their own tenant
            assert await refusal(
                rec, call_id, bearer(people.foreign_admin), people.ids["foreign_tenant"]
            ) == (403, "listening-not-enabled")
            # a page of another site may not open it with the user's cookie or token
            evil = bearer(people.listener) | {"Origin": "http://evil.example"}
            assert await refusal(rec, call_id, evil) == (403, "forbidden")
            # the operator switches listening off: refused at once
            with rec.app.sessions() as session:
                row = session.scalar(
                    select(TenantEnablement).where(
                        TenantEnablement.tenant_id == rec.tenant_id,
                        TenantEnablement.feature == "listening",
                    )
                )
                assert row is not None
                row.enabled = False
                session.commit()
            assert await refusal(rec, call_id, bearer(people.listener)) == (
                403,
                "listening-not-enabled",
            )
        with rec.app.sessions() as session:
            assert not session.scalars(
                select(AuditEvent).where(AuditEvent.action.like("live.listen.%"))
            ).all()
