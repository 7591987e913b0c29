"""LiveCenter's coach button (SPEC section 7, silent coaching; b2bua/coaching.py).

``POST /api/v1/tenants/{t}/live/calls/{id}/coach``: callvault calls the
caller's own phone (their extension, routed like a call from the coached
call's PBX) and, when it is answered, joins it to the call in silence; the
keys of the manual's table then switch the mode. Answered 202 at once: the
phone rings after the answer.

Who may: an admin or listener of the tenant with the coaching permission, in
a tenant where the operator enabled coaching; a listener only on their teams'
calls. A call the caller cannot see (another tenant's, another team's, ended)
is 404 as everywhere in LiveCenter; the coaching refusals answer their own
``ErrorId`` (``coaching-*``). Requests and refusals are audited.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from callvault.b2bua.coaching import CoachingRefused, CoachStarted
from callvault.errors import ApiError, ErrorId
from callvault.live.board import LiveBoard
from callvault.portal.audit import audit
from callvault.portal.auth import CurrentPrincipal, SessionDep
from callvault.portal.live.services import visible_call
from callvault.portal.roles import LiveRecorderTenant
from callvault.portal.visibility import visible_user_ids

router = APIRouter(prefix="/api/v1", tags=["livecenter"])

CallId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]


class CoachOut(BaseModel):
    call_id: str
    agent_user_id: int
    extension: str  # the supervisor's phone, which callvault is calling
    state: Literal["calling"] = "calling"


@router.post(
    "/tenants/{tenant_id}/live/calls/{call_id}/coach", status_code=202, response_model=CoachOut
)
async def coach_call(
    call_id: CallId,
    tenant: LiveRecorderTenant,  # admins and listeners: an operator has no phone in the tenant
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> CoachOut:
    users = await run_in_threadpool(visible_user_ids, session, principal, tenant.id)
    board: LiveBoard = request.app.state.context.live
    call, _view = visible_call(board, tenant.id, call_id, users)  # 404 for any other
    assert principal.user_id is not None
    coach = request.app.state.context.coach

    def audited(action: str, **details: object) -> None:
        audit(session, request, principal, action, tenant.id, target=call.uuid, **details)
        session.commit()

    try:
        if coach is None:  # no B2BUA in this process
            raise CoachingRefused(
                ErrorId.COACHING_NOT_BRIDGED, "the call is not one callvault bridges"
            )
        started: CoachStarted = coach(tenant.id, call.uuid, principal.user_id)
    except CoachingRefused as refused:
        await run_in_threadpool(
            audited, "coach.refused", error=refused.error.value, why=refused.why, via="livecenter"
        )
        raise ApiError(refused.why, error_id=refused.error) from None
    await run_in_threadpool(
        audited, "coach.requested", agent_user_id=started.agent_user_id, extension=started.extension
    )
    return CoachOut(
        call_id=started.call_id, agent_user_id=started.agent_user_id, extension=started.extension
    )
