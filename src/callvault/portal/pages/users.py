"""Users: the tenant admin's list of users and each user's profile (issue 15 parts 2 and 3).

The list shows each user's extension, numbers, devices (AORs), role, teams
and recording choice, and imports / exports the users CSV; the operator gets the same list and CSV
for any tenant under ``/operator/tenants/{id}/users`` (without profiles: the
recording choice is the tenant admin's). The profile holds
the *Call recording* dropdown of the Simmpl and ZPEAK manuals ("voor
bestaande gebruikers kunt u de opname-functie ook in het gebruikersprofiel
instellen"): choosing a mode puts the user on the recording list in that mode
(*never* keeps them on it in mode never), "not on the recording list" takes
them off. Its Save calls the same recording-list API as the plus button, the
cross and the mode menu of Settings › Recording (``static/users.js``), so both
pages show one state. Reads go through the JSON API's own route functions.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from callvault.db.models import Tenant, User
from callvault.errors import ErrorId, NotFound
from callvault.portal.api.recording_settings import get_legal_notice
from callvault.portal.api.teams import list_teams
from callvault.portal.api.tenants import list_users, user_out
from callvault.portal.api.users_csv_format import COLUMNS, MODES, SEPARATOR
from callvault.portal.auth import DbId, Principal, SessionDep
from callvault.portal.pages.render import PageRoute, render
from callvault.portal.pages.viewer import Viewer, ViewerDep, signed_in
from callvault.portal.playback.pages import contact_lists

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _tenant(session: SessionDep, principal: Principal) -> Tenant:
    tenant = session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", error_id=ErrorId.TENANT_NOT_FOUND)
    return tenant


def _team_names(tenant: Tenant, session: SessionDep) -> dict[int, list[str]]:
    names: dict[int, list[str]] = {}
    for team in list_teams(tenant, session):
        for member in team.members:
            names.setdefault(member.user_id, []).append(team.name)
    return names


def _users_page(
    request: Request, viewer: Viewer, session: SessionDep, principal: Principal, tenant: Tenant
) -> HTMLResponse:
    users = sorted(list_users(tenant, principal, session), key=lambda u: (u.name.casefold(), u.id))
    return render(
        request,
        viewer,
        "users.html",
        page="operator" if principal.is_operator else "users",
        tenant=tenant,
        users=users,
        teams=_team_names(tenant, session),
        columns=",".join(COLUMNS),
        separator=SEPARATOR,
        modes=MODES,
    )


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, viewer: ViewerDep, session: SessionDep) -> HTMLResponse:
    principal = signed_in(viewer, "admin")
    return _users_page(request, viewer, session, principal, _tenant(session, principal))


@router.get("/operator/tenants/{tenant_id}/users", response_class=HTMLResponse)
def operator_users_page(
    tenant_id: DbId, request: Request, viewer: ViewerDep, session: SessionDep
) -> HTMLResponse:
    """The same list and CSV import / export for the operator, for any tenant."""
    principal = signed_in(viewer, "operator")
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", error_id=ErrorId.TENANT_NOT_FOUND)
    return _users_page(request, viewer, session, principal, tenant)


@router.get("/users/{user_id}", response_class=HTMLResponse)
def user_page(
    user_id: DbId, request: Request, viewer: ViewerDep, session: SessionDep
) -> HTMLResponse:
    principal = signed_in(viewer, "admin")
    tenant = _tenant(session, principal)
    user = session.scalar(select(User).where(User.tenant_id == tenant.id, User.id == user_id))
    if user is None:  # another tenant's user looks like nobody's
        raise NotFound("no such user", error_id=ErrorId.USER_NOT_FOUND)
    return render(
        request,
        viewer,
        "user.html",
        page="users",
        tenant=tenant,
        user=user_out(user),
        teams=_team_names(tenant, session).get(user.id, []),
        modes=MODES,
        notice_accepted=get_legal_notice(tenant, principal, session).accepted,
        owner=user,  # the user's blacklist and whitelist (_contact_lists.html)
        contacts=contact_lists(session, tenant.id, user.id),
    )
