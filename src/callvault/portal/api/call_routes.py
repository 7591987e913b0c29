"""The operator's call routes for the B2BUA: ``/api/v1/routes`` (SPEC section 2, mode 2).

A route sends the calls of a ``pbx`` or ``trunk`` source whose number starts
with ``prefix`` to ``target``, for one tenant the source may record for. Only
the operator sees or changes routes (anyone else: 403 ``role-required``, as
for sources, whose ids they name); an unknown id is 404. Every change is
audited (``route.create`` / ``route.delete``, operator level like the
sources: no tenant's log shows the operator's hops) and then
``on_directory_change()`` lets the running server reload its ``RouteTable``.
Validation lives in ``callvault.b2bua.route_store``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from callvault.b2bua.route_store import add_route, get_route, list_routes, route_facts
from callvault.b2bua.routes import MAX_PREFIX, MAX_TARGET
from callvault.db.models import CallRoute
from callvault.portal.api.schemas import Strict
from callvault.portal.audit import audit
from callvault.portal.auth import MAX_ID, DbId, SessionDep, as_utc
from callvault.portal.roles import OperatorOnly
from callvault.portal.timefmt import UtcDateTime

router = APIRouter(prefix="/api/v1/routes", tags=["routes"])

_Id = Field(ge=1, le=MAX_ID)


class RouteIn(Strict):
    tenant_id: int = _Id
    source_id: int = Field(ge=1, le=MAX_ID, description="a recording source of kind pbx or trunk")
    prefix: str = Field(
        default="",
        max_length=MAX_PREFIX,
        description='"" for any call, else +?[0-9*#]{1,31}: the E.164 number or user part',
    )
    target: str = Field(
        min_length=1,
        max_length=MAX_TARGET,
        description="sip:HOST[:PORT][;transport=udp|tcp|tls], e.g. sip:192.0.2.10:5060",
    )


class RouteOut(BaseModel):
    id: int
    tenant_id: int
    source_id: int
    prefix: str
    target: str
    created_at: UtcDateTime
    created_by: str


def route_out(row: CallRoute) -> RouteOut:
    return RouteOut(
        id=row.id, created_at=as_utc(row.created_at), created_by=row.created_by, **route_facts(row)
    )


@router.get("", response_model=list[RouteOut])
def list_call_routes(
    _principal: OperatorOnly,
    session: SessionDep,
    tenant_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    source_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> list[RouteOut]:
    rows = list_routes(session, tenant_id=tenant_id, source_id=source_id)
    return [route_out(row) for row in rows]


@router.post("", status_code=201, response_model=RouteOut)
def create_call_route(
    body: RouteIn, principal: OperatorOnly, session: SessionDep, request: Request
) -> RouteOut:
    row = add_route(
        session,
        tenant_id=body.tenant_id,
        source_id=body.source_id,
        prefix=body.prefix,
        target=body.target,
        created_by=principal.actor(),
    )
    audit(
        session,
        request,
        principal,
        "route.create",
        None,
        target=f"route:{row.id}",
        route=route_facts(row),
    )
    session.commit()
    request.app.state.context.on_directory_change()
    return route_out(row)


@router.delete("/{route_id}", status_code=204)
def remove_call_route(
    route_id: DbId, principal: OperatorOnly, session: SessionDep, request: Request
) -> Response:
    row = get_route(session, route_id)
    audit(
        session,
        request,
        principal,
        "route.delete",
        None,
        target=f"route:{row.id}",
        route=route_facts(row),
    )
    session.delete(row)
    session.commit()
    request.app.state.context.on_directory_change()
    return Response(status_code=204)
