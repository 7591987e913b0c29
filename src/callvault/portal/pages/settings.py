"""Settings › Recording: the tenant admin's page (SPEC sections 3, 4, 5 and 8).

The legal notice comes first: until it is accepted, nothing else is shown.
Every change goes through the JSON API from the page's script, so the page
shows the API's own validation message. The slider's range is the plan's
(``retention/plans.py``); a quota plan shows the minutes used; the tenant's
active legal holds are listed, placed and lifted here (``portal/retention/holds.py``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from callvault.announcements.service import prompts_of
from callvault.db.models import Tenant, User
from callvault.errors import ErrorId, NotFound
from callvault.portal.api.recording_settings import get_legal_notice
from callvault.portal.auth import Now, SessionDep
from callvault.portal.pages.render import PageRoute, render
from callvault.portal.pages.viewer import ViewerDep, signed_in
from callvault.retention.holds import active_holds
from callvault.retention.plans import minutes_used, plan_of

router = APIRouter(route_class=PageRoute, include_in_schema=False)

MODES = ("never", "always", "always_pause", "on_demand_keep", "on_demand_user", "playback")
CHANNELS = ("both", "user", "other", "mix")
PAUSE_MODES = ("cut", "silence")
BULK_MIN_RETENTION_DAYS = 180


@router.get("/settings/recording", response_class=HTMLResponse)
def recording_settings_page(
    request: Request, viewer: ViewerDep, session: SessionDep, at: Now
) -> HTMLResponse:
    principal = signed_in(viewer, "admin")
    tenant = session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", error_id=ErrorId.TENANT_NOT_FOUND)
    notice = get_legal_notice(tenant, principal, session)
    users = list(
        session.scalars(select(User).where(User.tenant_id == tenant.id).order_by(User.name))
    )
    return render(
        request,
        viewer,
        "settings_recording.html",
        page="settings",
        tenant=tenant,
        notice=notice,
        notice_text=notice.text.get(viewer.language) or notice.text.get("en", ""),
        listed=[u for u in users if u.recorded],
        available=[u for u in users if not u.recorded],
        modes=MODES,
        channels=CHANNELS,
        pause_modes=PAUSE_MODES,
        bulk_min=BULK_MIN_RETENTION_DAYS,
        plan=(plan := plan_of(session, tenant)),
        retention_fixed=plan.retention_min_days == plan.retention_max_days,
        minutes_used=minutes_used(session, tenant.id, at) if plan.minute_quota else None,
        holds=active_holds(session, tenant.id),
        prompts=prompts_of(session, tenant),
    )
