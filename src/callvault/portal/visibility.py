"""Who sees which calls and recordings (SPEC section 1), decided in one place.

Operators and tenant admins see the whole tenant. A listener sees their own
calls and those of the members of every team they lead (``TeamMember.is_lead``
on that team). A user sees their own. A call is someone's when one of its
parties is that user; a recording is someone's when it was made for that user
or its call is theirs.

Everything here takes the tenant explicitly and scopes every subquery by it,
so an expression built for one tenant can never match another tenant's rows.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, and_, exists, false, or_, select
from sqlalchemy.orm import Session, aliased

from callvault.db.hints import unindexed
from callvault.db.models import Call, CallParty, Recording, TeamMember
from callvault.portal.auth import Principal

UserIds = list[int] | None
"""The users whose calls may be shown; None means the whole tenant."""


def sees_whole_tenant(principal: Principal) -> bool:
    return principal.role in ("operator", "admin")


def visible_user_ids(session: Session, principal: Principal, tenant_id: int) -> UserIds:
    """The users of ``tenant_id`` whose calls ``principal`` may see; None: all of them."""
    if principal.is_operator:
        return None
    if principal.tenant_id != tenant_id or principal.user_id is None:
        return []
    if sees_whole_tenant(principal):
        return None
    ids = {principal.user_id}
    if principal.role == "listener":
        lead = aliased(TeamMember)
        ids.update(
            session.scalars(
                select(TeamMember.user_id)
                .join(lead, lead.team_id == TeamMember.team_id)
                .where(
                    TeamMember.tenant_id == tenant_id,
                    lead.tenant_id == tenant_id,
                    lead.user_id == principal.user_id,
                    lead.is_lead.is_(True),
                )
            )
        )
    return sorted(ids)


def narrow(visible: UserIds, user_id: int | None) -> UserIds:
    """The user set after a ``user_id`` filter: that user if visible, else nobody."""
    if user_id is None:
        return visible
    if visible is None or user_id in visible:
        return [user_id]
    return []


def calls_of_users(tenant_id: int, user_ids: Collection[int]) -> Select[str]:
    """Ids of the calls of ``tenant_id`` where one of ``user_ids`` is a party.

    Walks ``ix_call_parties_tenant_user``; for a query that starts from these
    calls (the users have few) rather than from the time-ordered index.
    """
    return select(CallParty.call_id).where(
        CallParty.tenant_id == tenant_id, CallParty.user_id.in_(sorted(user_ids))
    )


def has_party(
    tenant_id: int, user_ids: Collection[int], call_id: SQLColumnExpression[str]
) -> ColumnElement[bool]:
    """The call ``call_id`` (a correlated column) has one of ``user_ids`` as a party.

    For queries that walk calls in time order, so one probe per call, answered
    from an index alone. For one user that is a look-up in
    ``ix_call_parties_tenant_user``, whose probes all land in that user's part
    of the index (at 1 M calls in SQLite, four times faster than looking each
    call up across the whole table's); for a team it is one look-up of the
    call's (two or so) parties in ``ix_call_parties_call_id`` (call_id,
    user_id; PostgreSQL's includes tenant_id, so it reads no table rows)
    instead of one per member. ``unindexed`` keeps the scope while hiding the
    tenant's indexes from SQLite's planner.
    """
    if not user_ids:
        return false()
    ids = sorted(user_ids)
    if len(ids) == 1:
        return exists(
            select(CallParty.call_id).where(  # indexed columns only: stays in the index
                CallParty.tenant_id == tenant_id,
                CallParty.user_id == ids[0],
                CallParty.call_id == call_id,
            )
        )
    return exists(
        select(CallParty.call_id).where(
            CallParty.call_id == call_id,
            # SQLite would seek (call_id, user) once per member: one seek, then compare
            unindexed(CallParty.user_id).in_(ids),
            unindexed(CallParty.tenant_id) == tenant_id,
        )
    )


def call_filter(tenant_id: int, user_ids: UserIds) -> ColumnElement[bool]:
    """The calls visible to someone who sees ``user_ids`` (None: the whole tenant)."""
    scope = Call.tenant_id == tenant_id
    if user_ids is None:
        return scope
    return and_(scope, has_party(tenant_id, user_ids, Call.id))


def recording_filter(tenant_id: int, user_ids: UserIds) -> ColumnElement[bool]:
    """The recordings visible to someone who sees ``user_ids`` (None: the whole tenant)."""
    scope = Recording.tenant_id == tenant_id
    if user_ids is None:
        return scope
    if not user_ids:
        return and_(scope, false())
    return and_(
        scope,
        or_(
            Recording.user_id.in_(sorted(user_ids)),
            has_party(tenant_id, user_ids, Recording.call_id),
        ),
    )
