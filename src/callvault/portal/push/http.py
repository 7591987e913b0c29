"""Web Push devices (SPEC 6, issue 9): the VAPID public key and the user's subscriptions.

- ``GET /api/v1/push/vapid-public-key``: the key browsers subscribe with
  (``applicationServerKey``), for anyone logged in.
- ``POST /api/v1/me/push-subscriptions``: this browser's ``PushSubscription``
  (``endpoint``, ``keys.p256dh``, ``keys.auth``) and a device name; 201 when
  new, 200 when the same endpoint is sent again (its keys and name updated).
  The endpoint must be ``https`` to a public host (``push.endpoints``).
- ``GET /api/v1/me/push-subscriptions``: the user's devices.
- ``DELETE /api/v1/me/push-subscriptions/{id}``: one of them; another
  user's id is 404.

Subscriptions are a tenant user's own (the operator has none: 403). Every
change is audited (``push.subscribe``, ``push.update``, ``push.unsubscribe``);
the endpoint itself, a capability URL, is never written to the audit log.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from callvault.db.models import PushSubscription, User
from callvault.errors import ErrorId, NotFound
from callvault.portal.api.schemas import Strict
from callvault.portal.audit import audit
from callvault.portal.auth import CurrentPrincipal, Now, Principal, SessionDep
from callvault.portal.roles import TenantMember
from callvault.portal.timefmt import UtcDateTime
from callvault.push.endpoints import ENDPOINT_MAX
from callvault.push.subscriptions import (
    AUTH_MAX,
    DEVICE_NAME_MAX,
    P256DH_MAX,
    device_of,
    devices_of,
    subscribe,
    unsubscribe,
)
from callvault.push.vapid import vapid_key

router = APIRouter(prefix="/api/v1", tags=["push"])

SubscriptionId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class VapidKeyOut(BaseModel):
    key: str = Field(description="base64url of the uncompressed P-256 point (65 bytes)")


class PushKeysIn(Strict):
    p256dh: str = Field(min_length=1, max_length=P256DH_MAX)
    auth: str = Field(min_length=1, max_length=AUTH_MAX)


class PushSubscriptionIn(Strict):
    endpoint: str = Field(min_length=1, max_length=ENDPOINT_MAX)
    keys: PushKeysIn
    device_name: str = Field(min_length=1, max_length=DEVICE_NAME_MAX, pattern=r"\S")


class PushSubscriptionOut(BaseModel):
    id: int
    device_name: str
    created_at: UtcDateTime
    last_sent_at: UtcDateTime | None = None


def _out(row: PushSubscription) -> PushSubscriptionOut:
    return PushSubscriptionOut(
        id=row.id,
        device_name=row.device_name,
        created_at=row.created_at,
        last_sent_at=row.last_sent_at,
    )


def _user(session: SessionDep, principal: Principal) -> User:
    user = session.get(User, principal.user_id) if principal.user_id is not None else None
    if user is None or user.tenant_id != principal.tenant_id:
        raise NotFound("no such user", error_id=ErrorId.USER_NOT_FOUND)
    return user


@router.get("/push/vapid-public-key", response_model=VapidKeyOut)
def vapid_public_key(_principal: CurrentPrincipal, request: Request, at: Now) -> VapidKeyOut:
    return VapidKeyOut(key=vapid_key(request.app.state.context.sessions, at).public_key_b64)


@router.post(
    "/me/push-subscriptions",
    response_model=PushSubscriptionOut,
    status_code=201,
    responses={200: {"model": PushSubscriptionOut, "description": "the device was updated"}},
)
def add_push_subscription(
    body: PushSubscriptionIn,
    principal: TenantMember,
    session: SessionDep,
    request: Request,
    response: Response,
    at: Now,
) -> PushSubscriptionOut:
    user = _user(session, principal)
    done = subscribe(
        session,
        user,
        endpoint=body.endpoint,
        p256dh=body.keys.p256dh,
        auth=body.keys.auth,
        device_name=body.device_name,
        user_agent=request.headers.get("user-agent"),
        at=at,
        allow_http_loopback=request.app.state.context.push_allow_http_loopback,
    )
    row = done.subscription
    audit(
        session,
        request,
        principal,
        "push.subscribe" if done.created else "push.update",
        user.tenant_id,
        target=f"push:{row.id}",
        device_name=row.device_name,
    )
    session.commit()
    if not done.created:
        response.status_code = 200
    return _out(row)


@router.get("/me/push-subscriptions", response_model=list[PushSubscriptionOut])
def list_push_subscriptions(
    principal: TenantMember, session: SessionDep
) -> list[PushSubscriptionOut]:
    user = _user(session, principal)
    return [_out(row) for row in devices_of(session, user.tenant_id, user.id)]


@router.delete("/me/push-subscriptions/{subscription_id}", status_code=204)
def remove_push_subscription(
    subscription_id: SubscriptionId,
    principal: TenantMember,
    session: SessionDep,
    request: Request,
) -> Response:
    user = _user(session, principal)
    row = device_of(session, user.tenant_id, user.id, subscription_id)
    name = row.device_name
    unsubscribe(session, row)
    audit(
        session,
        request,
        principal,
        "push.unsubscribe",
        user.tenant_id,
        target=f"push:{subscription_id}",
        device_name=name,
    )
    session.commit()
    return Response(status_code=204)
