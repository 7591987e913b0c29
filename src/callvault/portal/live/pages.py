"""The LiveCenter page (SPEC section 7): the tenant's calls in progress, live.

Server-rendered with the calls as they are now; ``static/livecenter.js`` then
follows ``/api/v1/tenants/{t}/live/calls/events`` (Server-Sent Events, no
polling), ticks the durations, and drives record now. Each row carries
``data-listen`` (``static/listen.js``) and, on a bridged call where the
operator enabled coaching, ``data-coach`` (``static/coach.js``): those scripts
are included once they exist. For a tenant's admins, listeners and users (the
same visibility as Reports); without the operator's enablement the page says so.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from callvault.db.models import Tenant
from callvault.errors import ApiError
from callvault.portal.auth import Principal, SessionDep
from callvault.portal.live.http import board_of
from callvault.portal.live.schemas import call_out
from callvault.portal.live.services import RECORD_ROLES, require_live, visible_views
from callvault.portal.pages import STATIC
from callvault.portal.pages.render import PageRoute, render
from callvault.portal.pages.viewer import ViewerDep, signed_in
from callvault.portal.visibility import UserIds
from callvault.tenants.enablement import is_enabled

router = APIRouter(route_class=PageRoute, include_in_schema=False)

EXTRA_SCRIPTS = ("listen.js", "coach.js")  # L2's listening, L3's coaching: when shipped


def _access(session: Session, principal: Principal) -> tuple[bool, bool, UserIds]:
    """(LiveCenter enabled, coaching enabled, the users whose calls are shown)."""
    assert principal.tenant_id is not None
    tenant = session.get(Tenant, principal.tenant_id)
    assert tenant is not None
    try:
        users = require_live(session, principal, tenant)
    except ApiError:
        return False, False, []
    return True, is_enabled(session, tenant.id, "coaching"), users


@router.get("/livecenter", response_class=HTMLResponse)
async def livecenter_page(request: Request, viewer: ViewerDep, session: SessionDep) -> HTMLResponse:
    principal = signed_in(viewer, "admin", "listener", "user")
    enabled, coaching, users = await run_in_threadpool(_access, session, principal)
    assert principal.tenant_id is not None
    views = visible_views(board_of(request), principal.tenant_id, users) if enabled else []
    return render(
        request,
        viewer,
        "livecenter.html",
        page="livecenter",
        enabled=enabled,
        coaching=coaching,
        can_record=principal.role in RECORD_ROLES,
        tenant_id=principal.tenant_id,
        calls=[call_out(view) for view in views],
        scripts=[name for name in EXTRA_SCRIPTS if (STATIC / name).exists()],
    )
