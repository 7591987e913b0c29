"""The tenant-visible audit log: one row per access or change."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from callvault.db.models import AuditEvent
from callvault.portal.auth import Principal


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
    session.add(
        AuditEvent(
            tenant_id=tenant_id,
            actor=principal.actor(),
            action=action,
            target=target,
            remote_addr=request.client.host if request is not None and request.client else None,
            details=details,
        )
    )
