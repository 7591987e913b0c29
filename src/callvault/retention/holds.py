"""Legal holds (SPEC section 4): a hold stops expiry, quota purges, discards and
termination until it is lifted.

A hold covers the whole tenant, one user's recordings or one recording, and
always says why. Lifted holds stay, with who lifted them and why. The purge
and termination ask ``recording_is_held`` / ``tenant_has_active_hold``; the
audio routes ask ``access`` (whose ``held()`` clause is the same rule in SQL).
The callers audit and commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.db.models import LegalHold, Recording, User
from callvault.errors import Conflict, ErrorId, InvalidInput, NotFound
from callvault.retention.access import is_held

HoldScope = Literal["tenant", "user", "recording"]
SCOPES: tuple[HoldScope, ...] = ("tenant", "user", "recording")


def active_holds(session: Session, tenant_id: int) -> list[LegalHold]:
    """The tenant's holds not lifted, oldest first."""
    return list(
        session.scalars(
            select(LegalHold)
            .where(LegalHold.tenant_id == tenant_id, LegalHold.lifted_at.is_(None))
            .order_by(LegalHold.placed_at, LegalHold.id)
        )
    )


def all_holds(session: Session, tenant_id: int) -> list[LegalHold]:
    """Every hold of the tenant, lifted ones included, newest first."""
    return list(
        session.scalars(
            select(LegalHold)
            .where(LegalHold.tenant_id == tenant_id)
            .order_by(LegalHold.placed_at.desc(), LegalHold.id.desc())
        )
    )


def tenant_has_active_hold(session: Session, tenant_id: int) -> bool:
    """Any hold of any scope is active: the tenant cannot be terminated."""
    found = session.scalar(
        select(LegalHold.id)
        .where(LegalHold.tenant_id == tenant_id, LegalHold.lifted_at.is_(None))
        .limit(1)
    )
    return found is not None


def recording_is_held(session: Session, recording: Recording) -> bool:
    """An active hold on its tenant, its user or itself covers the recording."""
    return is_held(session, recording)


def holds_on(session: Session, recording: Recording) -> list[LegalHold]:
    """The active holds that cover ``recording`` (for its page)."""
    return [
        h
        for h in active_holds(session, recording.tenant_id)
        if h.scope == "tenant"
        or (h.scope == "user" and h.user_id is not None and h.user_id == recording.user_id)
        or (h.scope == "recording" and h.recording_id == recording.id)
    ]


def place_hold(
    session: Session,
    tenant_id: int,
    scope: HoldScope,
    reason: str,
    *,
    actor: str,
    at: datetime,
    user_id: int | None = None,
    recording_id: str | None = None,
) -> LegalHold:
    """A new hold; a user or recording of another tenant is 404, as if it did not exist."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("a legal hold needs a reason", error_id=ErrorId.REASON_REQUIRED)
    if scope == "user":
        if user_id is None or recording_id is not None:
            raise InvalidInput(
                "a user hold names user_id only", error_id=ErrorId.HOLD_SCOPE_INVALID
            )
        if (
            session.scalar(select(User.id).where(User.tenant_id == tenant_id, User.id == user_id))
            is None
        ):
            raise NotFound("no such user", error_id=ErrorId.USER_NOT_FOUND)
    elif scope == "recording":
        if recording_id is None or user_id is not None:
            raise InvalidInput(
                "a recording hold names recording_id only", error_id=ErrorId.HOLD_SCOPE_INVALID
            )
        found = session.scalar(
            select(Recording.id).where(
                Recording.tenant_id == tenant_id, Recording.id == recording_id
            )
        )
        if found is None:
            raise NotFound("no such recording", error_id=ErrorId.RECORDING_NOT_FOUND)
    elif user_id is not None or recording_id is not None:
        raise InvalidInput(
            "a tenant hold names neither user_id nor recording_id",
            error_id=ErrorId.HOLD_SCOPE_INVALID,
        )
    hold = LegalHold(
        tenant_id=tenant_id,
        scope=scope,
        user_id=user_id,
        recording_id=recording_id,
        reason=reason,
        placed_by=actor[:200],
        placed_at=at,
    )
    session.add(hold)
    session.flush()
    return hold


def get_hold(session: Session, tenant_id: int, hold_id: int) -> LegalHold:
    hold = session.scalar(
        select(LegalHold).where(LegalHold.tenant_id == tenant_id, LegalHold.id == hold_id)
    )
    if hold is None:
        raise NotFound("no such legal hold", error_id=ErrorId.LEGAL_HOLD_NOT_FOUND)
    return hold


def lift_hold(
    session: Session, tenant_id: int, hold_id: int, reason: str, *, actor: str, at: datetime
) -> LegalHold:
    """Lifts a hold (kept, for the record); 409 ``legal-hold-lifted`` when it was already."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("lifting a legal hold needs a reason", error_id=ErrorId.REASON_REQUIRED)
    hold = get_hold(session, tenant_id, hold_id)
    if hold.lifted_at is not None:
        raise Conflict("this legal hold was lifted already", error_id=ErrorId.LEGAL_HOLD_LIFTED)
    hold.lifted_at, hold.lifted_by, hold.lift_reason = at, actor[:200], reason
    session.flush()
    return hold
