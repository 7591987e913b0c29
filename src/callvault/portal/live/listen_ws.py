"""Listening live in the browser: ``/api/v1/tenants/{t}/live/calls/{id}/listen`` (SPEC 7).

A WebSocket (RFC 6455) that carries a running call's audio as 16-bit PCM at
8 kHz in 20 ms frames (``callvault.live.listen``: one binary message per
frame, ``FRAME_HEADER`` then the samples), after one text message describing
the stream (``{"rate", "channels", "frame_ms", "setting"}``). PCM rather than
Opus: G.711 is already 8 kHz, so there is nothing to encode on the server
(no CPU per listener but a copy) and nothing to decode in the page but a
scale; 256 kbit/s for stereo is little for a supervisor's browser. WebSocket
rather than WebRTC: no ICE/DTLS stack on the server, the portal's cookie and
Origin checks apply as to every other route, and the page's AudioWorklet
jitter buffer covers the network's delays.

Who: the tenant's admins and listeners (the supervisors of the manual's
LiveCenter), for the calls Reports would show them (``portal/visibility.py``
through ``live/services.py``); the operator's listening enablement is
required (403 ``listening-not-enabled``); a foreign tenant or a call not
visible is 404. Authentication is the portal session cookie (a browser) or a
bearer token (API clients, tests). A browser always sends ``Origin``: it must
be this server's own (cross-site WebSocket hijacking), and a cookie without
an ``Origin`` is refused. Refusals are answered before the upgrade as the
JSON error with its status when the server can (the ASGI denial response),
else the socket is closed with code 4000 + status and the error id as reason.

Each listen joins the call on LiveCenter's board (``kind="listen"``: the call
is shown as listened to) and writes ``live.listen.start`` and
``live.listen.stop`` audit rows (who, the call, the channels; the stop row
with the duration and the frames a slow connection lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from callvault.db.models import Tenant
from callvault.errors import ApiError, ErrorId, Forbidden, NotFound, Unauthorized
from callvault.live.board import LiveBoard, Presence, UnknownCall
from callvault.live.listen import (
    FRAME_MS,
    RATE,
    Channels,
    ListenHub,
    Listening,
    channel_setting,
    frame_channels,
)
from callvault.portal.audit import audit
from callvault.portal.auth import SESSION_COOKIE, Principal, optional_principal
from callvault.portal.context import PortalContext
from callvault.portal.live.services import require_live, visible_call
from callvault.portal.roles import live_recorder_tenant
from callvault.portal.visibility import UserIds

router = APIRouter(prefix="/api/v1", tags=["livecenter"])

LISTEN_PATH = "/tenants/{tenant_id}/live/calls/{call_id}/listen"
MAX_CALL_ID = 64  # a call's id is a 32-digit hex uuid
CLOSE_CALL_ENDED = 1000


@dataclass(frozen=True)
class _Admission:
    principal: Principal
    users: UserIds
    channels: Channels


def _as_request(websocket: WebSocket) -> Request:
    # The portal's auth and audit helpers read only headers, cookies, client and
    # app.state, which a WebSocket carries as a request does (both HTTPConnection).
    return cast(Request, websocket)


def hub_of(websocket: WebSocket) -> ListenHub:
    """The app's one hub (made on the first listen, on the serving loop)."""
    state = websocket.app.state
    hub: ListenHub | None = getattr(state, "listen_hub", None)
    if hub is None:
        hub = state.listen_hub = ListenHub(asyncio.get_running_loop())
    return hub


def _origin_ok(websocket: WebSocket) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        # not a browser (browsers always send it): only a bearer token may go without
        return SESSION_COOKIE not in websocket.cookies or "authorization" in websocket.headers
    parts = urlsplit(origin)
    host = websocket.headers.get("host", "")
    secure = websocket.url.scheme == "wss"
    return parts.scheme == ("https" if secure else "http") and parts.netloc == host


def _admit(websocket: WebSocket, tenant_id: int) -> _Admission:
    """The database part of the checks (in the thread pool)."""
    context: PortalContext = websocket.app.state.context
    with context.sessions() as session:
        principal = optional_principal(_as_request(websocket), session)
        if principal is None:
            raise Unauthorized("log in or send a bearer token", error_id=ErrorId.AUTH_REQUIRED)
        tenant = session.get(Tenant, tenant_id)
        if tenant is None or (not principal.is_operator and principal.tenant_id != tenant_id):
            raise NotFound("no such tenant", error_id=ErrorId.TENANT_NOT_FOUND)
        # listening in is supervision inside the tenant: admins and listeners, as record now
        live_recorder_tenant(tenant, principal)
        users = require_live(session, principal, tenant)
        return _Admission(principal, users, channel_setting(tenant.channels))


async def _deny(websocket: WebSocket, error: ApiError) -> None:
    body = {"error": {"id": error.error_id, "message": str(error)}}
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse(body, status_code=error.status))
        return
    await websocket.close(code=4000 + error.status, reason=str(error.error_id))


def _user_participant(websocket: WebSocket, tenant_id: int, call_id: str) -> str | None:
    """The tenant's own recorded user in the call (its "user" side), if any."""
    board: LiveBoard = websocket.app.state.context.live
    call = board.find(tenant_id, call_id)
    if call is None:
        return None
    return next(
        (slot.participant_id for slot, _ in call.slots if slot.tenant_id == tenant_id), None
    )


@router.websocket(LISTEN_PATH)
async def listen(websocket: WebSocket, tenant_id: int, call_id: str) -> None:
    context: PortalContext = websocket.app.state.context
    try:
        if not _origin_ok(websocket):
            raise Forbidden("this origin may not listen", error_id=ErrorId.FORBIDDEN)
        if not 1 <= tenant_id <= 2**31 - 1 or len(call_id) > MAX_CALL_ID:
            raise NotFound("no such call in progress", error_id=ErrorId.LIVE_CALL_NOT_FOUND)
        admission = await run_in_threadpool(_admit, websocket, tenant_id)
        call, _view = visible_call(context.live, tenant_id, call_id, admission.users)
    except ApiError as error:
        await _deny(websocket, error)
        return
    principal = admission.principal
    listening = Listening(admission.channels, _user_participant(websocket, tenant_id, call_id))
    await websocket.accept()
    try:
        presence: Presence | None = context.live.join(
            call_id,
            user_id=principal.user_id or 0,
            name=principal.name,
            kind="listen",
            tenant_id=tenant_id,
        )
    except UnknownCall:
        presence = None  # ended between the check and now: the feed closes at once
    hub = hub_of(websocket)
    subscriber = hub.subscribe(call, listening)
    started = time.monotonic()
    await run_in_threadpool(
        _audit, websocket, principal, "live.listen.start", tenant_id, call_id, listening
    )
    try:
        await websocket.send_text(
            json.dumps(
                {
                    "rate": RATE,
                    "channels": frame_channels(listening.channels),
                    "frame_ms": FRAME_MS,
                    "setting": listening.channels,
                }
            )
        )
        await _pump(websocket, subscriber.queue)
    finally:
        hub.unsubscribe(call, subscriber)
        if presence is not None:
            context.live.leave(presence)
        await run_in_threadpool(
            _audit,
            websocket,
            principal,
            "live.listen.stop",
            tenant_id,
            call_id,
            listening,
            duration_s=round(time.monotonic() - started, 1),
            frames_dropped=subscriber.dropped,
        )


async def _pump(websocket: WebSocket, queue: asyncio.Queue[bytes | None]) -> None:
    """Frames out until the call ends or the browser goes; what it sends is ignored."""

    async def frames_out() -> None:
        while (frame := await queue.get()) is not None:
            await websocket.send_bytes(frame)
        await websocket.close(code=CLOSE_CALL_ENDED, reason="call ended")

    async def until_gone() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    tasks = [asyncio.create_task(frames_out()), asyncio.create_task(until_gone())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task  # the socket went: nothing to tell


def _audit(
    websocket: WebSocket,
    principal: Principal,
    action: str,
    tenant_id: int,
    call_id: str,
    listening: Listening,
    **details: object,
) -> None:
    context: PortalContext = websocket.app.state.context
    with context.sessions() as session:
        audit(
            session,
            _as_request(websocket),
            principal,
            action,
            tenant_id,
            target=call_id,
            channels=listening.channels,
            **details,
        )
        session.commit()
