"""Adding, listing and removing call routes in the database (SPEC section 2, mode 2).

Shared by the operator's REST API (``portal/api/call_routes.py``) and the CLI
(``callvault admin route``), so both validate alike: the source exists and
is a ``pbx`` or ``trunk``, it may record for the route's tenant, the prefix is
``""`` or ``+?[0-9*#]{1,31}``, the target parses (``routes.parse_target``,
stored in its canonical form), and a source has one route per prefix (409).
Errors are ``InvalidInput`` / ``Conflict`` / ``NotFound`` with stable ids.
Auditing (``route.create`` / ``route.delete``) is the caller's, with
``route_facts`` under ``route`` (an audit row's ``target`` is ``route:<id>``);
nothing here commits.
"""

from __future__ import annotations

import re
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callvault.b2bua.routes import InvalidRouteTarget, parse_target
from callvault.db.models import CallRoute, RecordingSourceRow, RecordingSourceTenant
from callvault.errors import Conflict, ErrorId, InvalidInput, NotFound
from callvault.sources.registry import B2BUA_KINDS

PREFIX: Final = re.compile(r"\+?[0-9*#]{1,31}")


def check_prefix(prefix: str) -> str:
    if prefix and not PREFIX.fullmatch(prefix):
        raise InvalidInput(
            f"a route's prefix is empty (any call) or +?[0-9*#]{{1,31}}, not {prefix[:40]!r}",
            error_id=ErrorId.ROUTE_PREFIX_INVALID,
        )
    return prefix


def check_target(target: str) -> str:
    """The target's canonical text (``sip:host:port;transport=t``)."""
    try:
        return parse_target(target).text
    except InvalidRouteTarget as exc:
        raise InvalidInput(
            f"bad route target: {exc}", error_id=ErrorId.ROUTE_TARGET_INVALID
        ) from None


def _check_source(session: Session, source_id: int, tenant_id: int) -> RecordingSourceRow:
    source = session.get(RecordingSourceRow, source_id)
    if source is None:
        raise InvalidInput(
            f"no such recording source: {source_id}", error_id=ErrorId.ROUTE_SOURCE_INVALID
        )
    if source.kind not in B2BUA_KINDS:
        raise InvalidInput(
            f"source {source.name!r} is of kind {source.kind}: routes are for pbx or trunk sources",
            error_id=ErrorId.ROUTE_SOURCE_INVALID,
        )
    allowed = session.get(RecordingSourceTenant, (source_id, tenant_id))
    if allowed is None:  # an unknown tenant is no source's either
        raise InvalidInput(
            f"source {source.name!r} may not record for tenant {tenant_id}",
            error_id=ErrorId.ROUTE_TENANT_INVALID,
        )
    return source


def _exists(prefix: str) -> Conflict:
    shown = repr(prefix) if prefix else "'' (any call)"
    return Conflict(
        f"the source already has a route with the prefix {shown}",
        error_id=ErrorId.ROUTE_EXISTS,
    )


def add_route(
    session: Session,
    *,
    tenant_id: int,
    source_id: int,
    prefix: str,
    target: str,
    created_by: str,
) -> CallRoute:
    """Validate and add a route (flushed, not committed)."""
    _check_source(session, source_id, tenant_id)
    prefix = check_prefix(prefix)
    canonical = check_target(target)
    taken = select(CallRoute.id).where(CallRoute.source_id == source_id, CallRoute.prefix == prefix)
    if session.scalar(taken) is not None:
        raise _exists(prefix)
    row = CallRoute(
        tenant_id=tenant_id,
        source_id=source_id,
        prefix=prefix,
        target=canonical,
        created_by=created_by[:200],
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # added at the same moment by another request
        raise _exists(prefix) from exc
    return row


def route_facts(row: CallRoute) -> dict[str, Any]:
    """A route as the API shows it and its audit rows record it."""
    return {
        "tenant_id": row.tenant_id,
        "source_id": row.source_id,
        "prefix": row.prefix,
        "target": row.target,
    }


def list_routes(
    session: Session, *, tenant_id: int | None = None, source_id: int | None = None
) -> list[CallRoute]:
    query = select(CallRoute).order_by(CallRoute.source_id, CallRoute.prefix, CallRoute.id)
    if tenant_id is not None:
        query = query.where(CallRoute.tenant_id == tenant_id)
    if source_id is not None:
        query = query.where(CallRoute.source_id == source_id)
    return list(session.scalars(query))


def get_route(session: Session, route_id: int) -> CallRoute:
    row = session.get(CallRoute, route_id)
    if row is None:
        raise NotFound("no such call route", error_id=ErrorId.ROUTE_NOT_FOUND)
    return row
