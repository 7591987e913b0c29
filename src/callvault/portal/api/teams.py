"""Teams (tenant admin): listeners lead teams and hear their members' recordings.

Only the structure lives here; who sees which recording is decided in
``portal.visibility`` from ``Team`` / ``TeamMember`` rows. A lead must have
the listener role (or be an admin, who sees everything anyway).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callvault.db.models import Team, TeamMember, Tenant, User
from callvault.errors import Conflict, ErrorId, InvalidInput, NotFound
from callvault.portal.api.schemas import Strict
from callvault.portal.audit import audit
from callvault.portal.auth import CurrentPrincipal, DbId, SessionDep
from callvault.portal.roles import AdminTenant

router = APIRouter(prefix="/api/v1/tenants/{tenant_id}/teams", tags=["teams"])

TeamId = DbId
UserId = DbId


class TeamIn(Strict):
    name: str = Field(min_length=1, max_length=200)


class MemberIn(Strict):
    is_lead: bool = False


class MemberOut(BaseModel):
    user_id: int
    name: str
    role: str
    is_lead: bool


class TeamOut(BaseModel):
    id: int
    name: str
    members: list[MemberOut]


def _team(session: Session, tenant: Tenant, team_id: int) -> Team:
    team = session.scalar(select(Team).where(Team.tenant_id == tenant.id, Team.id == team_id))
    if team is None:
        raise NotFound("no such team", error_id=ErrorId.TEAM_NOT_FOUND)
    return team


def _team_out(session: Session, team: Team) -> TeamOut:
    rows = session.execute(
        select(TeamMember, User)
        .join(User, User.id == TeamMember.user_id)
        .where(TeamMember.tenant_id == team.tenant_id, TeamMember.team_id == team.id)
        .order_by(User.name, User.id)
    )
    return TeamOut(
        id=team.id,
        name=team.name,
        members=[
            MemberOut(user_id=u.id, name=u.name, role=u.role, is_lead=m.is_lead) for m, u in rows
        ],
    )


@router.get("", response_model=list[TeamOut])
def list_teams(tenant: AdminTenant, session: SessionDep) -> list[TeamOut]:
    teams = session.scalars(select(Team).where(Team.tenant_id == tenant.id).order_by(Team.name))
    return [_team_out(session, t) for t in teams]


@router.post("", response_model=TeamOut, status_code=201)
def create_team(
    body: TeamIn,
    tenant: AdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> TeamOut:
    name = " ".join(body.name.split())
    if not name:
        raise InvalidInput("name: the team needs a name", error_id=ErrorId.INVALID_INPUT)
    team = Team(tenant_id=tenant.id, name=name)
    session.add(team)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict("a team with this name exists", error_id=ErrorId.TEAM_EXISTS) from exc
    audit(
        session, request, principal, "team.create", tenant.id, target=f"team:{team.id}", name=name
    )
    session.commit()
    return _team_out(session, team)


@router.delete("/{team_id}", status_code=204)
def delete_team(
    team_id: TeamId,
    tenant: AdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> Response:
    team = _team(session, tenant, team_id)
    session.execute(
        delete(TeamMember).where(TeamMember.tenant_id == tenant.id, TeamMember.team_id == team.id)
    )
    session.delete(team)
    audit(
        session,
        request,
        principal,
        "team.delete",
        tenant.id,
        target=f"team:{team.id}",
        name=team.name,
    )
    session.commit()
    return Response(status_code=204)


@router.put("/{team_id}/members/{user_id}", response_model=TeamOut)
def put_member(
    team_id: TeamId,
    user_id: UserId,
    body: MemberIn,
    tenant: AdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> TeamOut:
    """Adds the user to the team, or changes whether they lead it."""
    team = _team(session, tenant, team_id)
    user = session.scalar(select(User).where(User.tenant_id == tenant.id, User.id == user_id))
    if user is None:
        raise NotFound("no such user", error_id=ErrorId.USER_NOT_FOUND)
    if body.is_lead and user.role not in ("listener", "admin"):
        raise InvalidInput(
            "a team lead must have the listener role", error_id=ErrorId.LEAD_MUST_BE_LISTENER
        )
    member = session.scalar(
        select(TeamMember).where(TeamMember.team_id == team.id, TeamMember.user_id == user.id)
    )
    if member is None:
        member = TeamMember(tenant_id=tenant.id, team_id=team.id, user_id=user.id)
        session.add(member)
    old = member.is_lead if member.id is not None else None
    member.is_lead = body.is_lead
    audit(
        session,
        request,
        principal,
        "team.member",
        tenant.id,
        target=f"team:{team.id}",
        user_id=user.id,
        old_is_lead=old,
        is_lead=body.is_lead,
    )
    session.commit()
    return _team_out(session, team)


@router.delete("/{team_id}/members/{user_id}", status_code=204)
def remove_member(
    team_id: TeamId,
    user_id: UserId,
    tenant: AdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> Response:
    team = _team(session, tenant, team_id)
    member = session.scalar(
        select(TeamMember).where(
            TeamMember.tenant_id == tenant.id,
            TeamMember.team_id == team.id,
            TeamMember.user_id == user_id,
        )
    )
    if member is None:
        raise NotFound("the user is not in this team", error_id=ErrorId.MEMBER_NOT_FOUND)
    session.delete(member)
    audit(
        session,
        request,
        principal,
        "team.member-remove",
        tenant.id,
        target=f"team:{team.id}",
        user_id=user_id,
    )
    session.commit()
    return Response(status_code=204)
