"""Who may use LiveCenter and which running calls they see (SPEC section 7).

The same visibility as Reports (``portal/visibility.py``): the operator and the
tenant's admins see every call of the tenant, a listener their own and their
teams' members', a user their own. LiveCenter needs the operator's listening
enablement for the tenant (``tenants/enablement.py``); record now needs it too
(the manual: "sofern diese Funktion ... freigeschaltet wurde") and is for the
tenant's admins and listeners only.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy.orm import Session

from callvault.db.models import Tenant
from callvault.errors import ErrorId, Forbidden, NotFound
from callvault.live.board import LiveBoard, LiveCallView
from callvault.policy.modes import Mode
from callvault.portal.auth import Principal, Role
from callvault.portal.visibility import UserIds, visible_user_ids
from callvault.siprec.call import RecordedCall
from callvault.tenants.enablement import is_enabled

RECORD_ROLES: tuple[Role, ...] = ("admin", "listener")  # as ``roles.LiveRecorderTenant``


def require_live(session: Session, principal: Principal, tenant: Tenant) -> UserIds:
    """403 unless the operator enabled LiveCenter for the tenant; the users whose
    calls the principal may see (None: all). Roles are checked by the route
    (``roles.LiveTenant``, ``roles.LiveRecorderTenant``)."""
    if not is_enabled(session, tenant.id, "listening"):
        raise Forbidden(
            "the operator has not enabled LiveCenter for this organisation",
            error_id=ErrorId.LISTENING_NOT_ENABLED,
        )
    return visible_user_ids(session, principal, tenant.id)


def visible(view: LiveCallView, users: UserIds) -> bool:
    return users is None or any(p.user_id in users for p in view.parties)


def visible_views(board: LiveBoard, tenant_id: int, users: UserIds) -> list[LiveCallView]:
    return [view for view in board.views(tenant_id) if visible(view, users)]


def visible_call(
    board: LiveBoard, tenant_id: int, call_id: str, users: UserIds
) -> tuple[RecordedCall, LiveCallView]:
    """A running call of the tenant the caller sees; 404 for any other."""
    call = board.find(tenant_id, call_id)
    view = board.view(tenant_id, call_id) if call is not None else None
    if call is None or view is None or not visible(view, users):
        raise NotFound("no such call in progress", error_id=ErrorId.LIVE_CALL_NOT_FOUND)
    return call, view


def recordable_users(call: RecordedCall, tenant_id: int) -> Collection[int]:
    """The tenant's users in the call whom record now may record: on the recording
    list, not on *never*, the other party not on their blacklist."""
    return [
        slot.user_id
        for slot, _ in call.slots
        if slot.tenant_id == tenant_id
        and slot.mode is not Mode.NEVER
        and slot.contact_rule != "blacklist"
    ]
