"""LiveCenter's API (SPEC section 7): the calls in progress, live, and record now.

* ``GET /api/v1/tenants/{t}/live/calls``: the caller's visible calls now.
* ``GET /api/v1/tenants/{t}/live/calls/events``: Server-Sent Events; a
  ``snapshot`` event (the list), then ``call`` (one call's view) and
  ``removed`` (``{"id"}``: ended, or no longer visible) as they happen, a
  comment line as heartbeat every ``HEARTBEAT_S``; it ends when the client goes.
* ``POST /api/v1/tenants/{t}/live/calls/{id}/record`` ``{"on": bool}``: record
  now, or stop, audited (``live.record_now``) with who.

A foreign tenant, or a call the caller may not see, is 404; without the
operator's listening enablement 403 ``listening-not-enabled``
(``services.py``).

The handlers are ``async``: the board and the calls live on the event loop's
thread (SIP and RTP share it), so they are read and driven there; the database
part of each check runs in the thread pool.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from callvault.errors import Conflict, ErrorId
from callvault.live.board import LiveBoard, LiveCallView, Removed
from callvault.portal.audit import audit
from callvault.portal.auth import CurrentPrincipal, SessionDep
from callvault.portal.live.schemas import LiveCallOut, RecordNowIn, call_out
from callvault.portal.live.services import (
    recordable_users,
    require_live,
    visible,
    visible_call,
    visible_views,
)
from callvault.portal.roles import LiveRecorderTenant, LiveTenant
from callvault.portal.visibility import UserIds

router = APIRouter(prefix="/api/v1", tags=["livecenter"])

CallId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]
HEARTBEAT_S = 15.0


def board_of(request: Request) -> LiveBoard:
    board: LiveBoard = request.app.state.context.live
    return board


@router.get("/tenants/{tenant_id}/live/calls", response_model=list[LiveCallOut])
async def live_calls(
    tenant: LiveTenant, principal: CurrentPrincipal, session: SessionDep, request: Request
) -> list[LiveCallOut]:
    users = await run_in_threadpool(require_live, session, principal, tenant)
    return [call_out(view) for view in visible_views(board_of(request), tenant.id, users)]


def _event(kind: str, payload: object) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def _view_json(view: LiveCallView) -> object:
    return call_out(view).model_dump(mode="json")


async def _stream(
    request: Request, board: LiveBoard, tenant_id: int, users: UserIds
) -> AsyncIterator[bytes]:
    subscription = board.subscribe(tenant_id)
    try:
        shown = [view for view in subscription.snapshot() if visible(view, users)]
        sent = {view.id for view in shown}
        yield b"retry: 2000\n\n"
        yield _event("snapshot", [_view_json(view) for view in shown])
        while not await request.is_disconnected():
            change = await subscription.get(timeout=HEARTBEAT_S)
            if change is None:
                if subscription.closed:
                    return
                yield b": heartbeat\n\n"
            elif isinstance(change, Removed) or not visible(change, users):
                call_id = change.call_id if isinstance(change, Removed) else change.id
                if call_id in sent:
                    sent.discard(call_id)
                    yield _event("removed", {"id": call_id})
            else:
                sent.add(change.id)
                yield _event("call", _view_json(change))
    finally:
        subscription.close()


@router.get("/tenants/{tenant_id}/live/calls/events")
async def live_events(
    tenant: LiveTenant, principal: CurrentPrincipal, session: SessionDep, request: Request
) -> StreamingResponse:
    users = await run_in_threadpool(require_live, session, principal, tenant)
    return StreamingResponse(
        _stream(request, board_of(request), tenant.id, users),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post("/tenants/{tenant_id}/live/calls/{call_id}/record", response_model=LiveCallOut)
async def record_now(
    call_id: CallId,
    body: RecordNowIn,
    tenant: LiveRecorderTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> LiveCallOut:
    users = await run_in_threadpool(require_live, session, principal, tenant)
    board = board_of(request)
    call, view = visible_call(board, tenant.id, call_id, users)
    recorded = recordable_users(call, tenant.id)
    if not recorded:
        raise Conflict(
            "nobody of this organisation in the call may be recorded",
            error_id=ErrorId.LIVE_CALL_NOT_RECORDABLE,
        )
    if view.record_now != body.on:
        call.record_now(body.on, tenant_id=tenant.id, by=principal.user_id)

    def audited() -> None:
        audit(
            session,
            request,
            principal,
            "live.record_now" if body.on else "live.record_now_stop",
            tenant.id,
            target=f"call:{call.uuid}",
            users=sorted(recorded),
        )
        session.commit()

    await run_in_threadpool(audited)
    updated = board.view(tenant.id, call.uuid)
    return call_out(updated if updated is not None else view)
