"""The tenant-visible audit log: one row per access or change (SPEC section 8).

``actor`` is a reference, not a name: ``user:<id>``, ``operator:<id>``,
``share:<id>`` (someone using a share link) or ``login:<name>`` (a login
attempt); the audit log endpoints turn it into a name when read.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from callvault.db.models import AuditEvent
from callvault.portal.auth import Principal


def remote_addr(request: Request | None) -> str | None:
    return request.client.host if request is not None and request.client else None


def record(
    session: Session,
    request: Request | None,
    actor: str,
    action: str,
    tenant_id: int | None,
    *,
    target: str | None = None,
    **details: Any,
) -> None:
    """One audit row for any actor, including those without an account."""
    session.add(
        AuditEvent(
            tenant_id=tenant_id,
            actor=actor[:200],
            action=action,
            target=target,
            remote_addr=remote_addr(request),
            details=details,
        )
    )


def audit(
    session: Session,
    request: Request | None,
    principal: Principal,
    action: str,
    tenant_id: int | None,
    *,
    target: str | None = None,
    **details: Any,
) -> None:
    record(session, request, principal.actor(), action, tenant_id, target=target, **details)


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{key: {"old": ..., "new": ...}}`` for every key whose value changed."""
    return {
        key: {"old": before.get(key), "new": value}
        for key, value in after.items()
        if before.get(key) != value
    }
