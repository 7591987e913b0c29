"""The operator's enablement of recording, LiveCenter listening and coaching (SPEC 8).

Recording (and, separately, listening and coaching) is switched on for a
tenant by the provider's support only after the customer signed the
provider's declaration. Until recording is enabled the tenant admin cannot
accept the legal notice and nothing is recorded. Who switched a feature on or
off, when, and the declaration's reference are stored, and every switch writes
an audit row in the tenant's log. The operator API, the CLI and the seeding
helpers of the demo and tests all switch through ``set_feature``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.db.models import AuditEvent, TenantEnablement
from callvault.errors import ErrorId, InvalidInput

Feature = Literal["recording", "listening", "coaching"]
FEATURES: Final[tuple[Feature, ...]] = get_args(Feature)


@dataclass(frozen=True)
class FeatureState:
    feature: Feature
    enabled: bool
    reference: str | None = None
    enabled_by: str | None = None
    enabled_at: datetime | None = None
    disabled_by: str | None = None
    disabled_at: datetime | None = None


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _state(feature: Feature, row: TenantEnablement | None) -> FeatureState:
    if row is None:
        return FeatureState(feature, False)
    return FeatureState(
        feature,
        row.enabled,
        row.reference,
        row.enabled_by,
        _utc(row.enabled_at),
        row.disabled_by,
        _utc(row.disabled_at),
    )


def feature_states(session: Session, tenant_id: int) -> dict[Feature, FeatureState]:
    rows = {
        row.feature: row
        for row in session.scalars(
            select(TenantEnablement).where(TenantEnablement.tenant_id == tenant_id)
        )
    }
    return {feature: _state(feature, rows.get(feature)) for feature in FEATURES}


def is_enabled(session: Session, tenant_id: int, feature: Feature) -> bool:
    return bool(
        session.scalar(
            select(TenantEnablement.enabled).where(
                TenantEnablement.tenant_id == tenant_id, TenantEnablement.feature == feature
            )
        )
    )


def set_feature(
    session: Session,
    tenant_id: int,
    feature: Feature,
    enabled: bool,
    *,
    actor: str,
    reference: str | None = None,
    at: datetime | None = None,
    remote_addr: str | None = None,
) -> tuple[FeatureState, bool]:
    """Switch ``feature`` on (``reference`` required) or off; audited. Returns (state, changed).

    ``actor`` is an audit reference (``operator:1``, ``cli``). Switching on
    again with another reference records the new declaration.
    """
    if feature not in FEATURES:
        raise InvalidInput(f"unknown feature {feature!r}", error_id=ErrorId.INVALID_INPUT)
    reference = (reference or "").strip() or None
    if enabled and reference is None:
        raise InvalidInput(
            "enabling needs the reference of the customer's signed declaration",
            error_id=ErrorId.DECLARATION_REQUIRED,
        )
    at = at or datetime.now(UTC)
    row = session.scalar(
        select(TenantEnablement).where(
            TenantEnablement.tenant_id == tenant_id, TenantEnablement.feature == feature
        )
    )
    if row is None:
        row = TenantEnablement(tenant_id=tenant_id, feature=feature, enabled=False)
        session.add(row)
    before = _state(feature, row if row.id is not None else None)
    if enabled:
        if row.enabled and row.reference == reference:
            return before, False
        row.enabled, row.reference, row.enabled_by, row.enabled_at = True, reference, actor, at
        row.disabled_by = row.disabled_at = None
    else:
        if not row.enabled:
            if row.id is None:
                session.expunge(row)
            return before, False
        row.enabled, row.disabled_by, row.disabled_at = False, actor, at
    session.add(
        AuditEvent(
            tenant_id=tenant_id,
            actor=actor[:200],
            action=f"enablement.{'enable' if enabled else 'disable'}",
            target=f"tenant:{tenant_id}",
            remote_addr=remote_addr,
            details={"feature": feature, "reference": reference, "old_reference": before.reference},
            at=at,
        )
    )
    session.flush()
    return _state(feature, row), True


def as_feature(value: str) -> Feature:
    if value not in FEATURES:
        raise InvalidInput(
            f"unknown feature {value!r}; one of {', '.join(FEATURES)}",
            error_id=ErrorId.INVALID_INPUT,
        )
    return value
