"""The devices where a user turned on notifications (``PushSubscription``).

A browser's ``PushSubscription`` (endpoint and keys, RFC 8030/8291) is stored
for the logged-in user. The endpoint is unique: the same browser subscribing
again updates its row; a browser that changed hands (another login on the
same device) moves to the new user, so the old one's questions stop
arriving there. Keys are checked to be a P-256 point and a 16-byte secret,
so nothing is stored that could never be encrypted to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callvault.db.models import PushSubscription, User
from callvault.errors import Conflict, ErrorId, InvalidInput, NotFound
from callvault.push.endpoints import endpoint_problem
from callvault.push.vapid import b64url_decode

DEVICES_MAX = 20  # per user: phones, tablets and browsers; more is a runaway script
DEVICE_NAME_MAX = 100
USER_AGENT_MAX = 300
P256DH_MAX = 200  # columns
AUTH_MAX = 100
AUTH_BYTES = 16  # RFC 8291 section 3.2


@dataclass(frozen=True)
class Subscribed:
    subscription: PushSubscription
    created: bool  # False: the device's row was updated


def _check_keys(p256dh: str, auth: str) -> None:
    try:
        if len(p256dh) > P256DH_MAX or len(auth) > AUTH_MAX:
            raise ValueError("too long")
        point = b64url_decode(p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        if len(point) != 65 or len(b64url_decode(auth)) != AUTH_BYTES:
            raise ValueError("wrong size")
    except ValueError as exc:
        raise InvalidInput(
            "keys.p256dh must be a P-256 public key and keys.auth 16 bytes, both base64url",
            error_id=ErrorId.PUSH_KEYS_INVALID,
        ) from exc


def subscribe(
    session: Session,
    user: User,
    *,
    endpoint: str,
    p256dh: str,
    auth: str,
    device_name: str,
    user_agent: str | None,
    at: datetime,
    allow_http_loopback: bool = False,
) -> Subscribed:
    """Store (or update) the device's subscription for ``user`` (flushed, not committed)."""
    problem = endpoint_problem(endpoint, allow_http_loopback=allow_http_loopback)
    if problem is not None:
        raise InvalidInput(problem, error_id=ErrorId.PUSH_ENDPOINT_INVALID)
    _check_keys(p256dh, auth)
    name = " ".join(device_name.split())[:DEVICE_NAME_MAX]
    agent = user_agent[:USER_AGENT_MAX] if user_agent else None
    row = session.scalar(
        select(PushSubscription).where(PushSubscription.endpoint == endpoint).with_for_update()
    )
    created = row is None or row.user_id != user.id
    if created and count_devices(session, user.id) >= DEVICES_MAX:
        raise Conflict(
            f"at most {DEVICES_MAX} devices may receive notifications; remove one first",
            error_id=ErrorId.PUSH_DEVICES_LIMIT,
        )
    if row is None:
        row = PushSubscription(endpoint=endpoint, created_at=at, failures=0)
        session.add(row)
    elif created:  # another login on this browser: the device is now this user's
        row.created_at, row.last_sent_at = at, None
    row.tenant_id, row.user_id = user.tenant_id, user.id
    row.p256dh, row.auth, row.device_name, row.user_agent = p256dh, auth, name, agent
    row.failures = 0
    session.flush()
    return Subscribed(row, created)


def count_devices(session: Session, user_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(PushSubscription)
            .where(PushSubscription.user_id == user_id)
        )
        or 0
    )


def devices_of(session: Session, tenant_id: int, user_id: int) -> list[PushSubscription]:
    """The user's subscribed devices, oldest first."""
    return list(
        session.scalars(
            select(PushSubscription)
            .where(PushSubscription.tenant_id == tenant_id, PushSubscription.user_id == user_id)
            .order_by(PushSubscription.created_at, PushSubscription.id)
        )
    )


def device_of(
    session: Session, tenant_id: int, user_id: int, subscription_id: int
) -> PushSubscription:
    """One of the user's own devices; anyone else's is 404, as if it did not exist."""
    row = session.get(PushSubscription, subscription_id)
    if row is None or row.tenant_id != tenant_id or row.user_id != user_id:
        raise NotFound("no such device", error_id=ErrorId.PUSH_SUBSCRIPTION_NOT_FOUND)
    return row


def unsubscribe(session: Session, row: PushSubscription) -> None:
    session.delete(row)
    session.flush()
