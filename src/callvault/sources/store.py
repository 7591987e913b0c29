"""Registering, changing and removing recording sources in the database.

Shared by the operator's REST API (``portal/api/sources.py``), the CLI
(``callvault admin source``) and the seeding of the demo and the tests, so
all of them validate alike: at least one network or fingerprint, CIDRs and
fingerprints normalised (``identity``), known tenants, limits within
``LIMIT_BOUNDS``, a kind of ``SOURCE_KINDS`` (siprec, pbx, trunk). Errors are
``InvalidInput`` / ``Conflict`` with stable ids.
Auditing is the caller's (it knows the actor); nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from callvault.db.models import RecordingSourceRow, RecordingSourceTenant, Tenant
from callvault.errors import Conflict, ErrorId, InvalidInput
from callvault.sources.identity import normalise_fingerprints, normalise_networks
from callvault.sources.registry import LIMIT_BOUNDS, SOURCE_KINDS, SourceLimits

LOOPBACK_NETWORKS = ("127.0.0.1/32", "::1/128")


@dataclass(frozen=True)
class SourceSpec:
    """What the operator registers; validated by ``add_source`` / ``change_source``."""

    name: str
    networks: list[str] = field(default_factory=list)
    fingerprints: list[str] = field(default_factory=list)
    tenant_ids: list[int] = field(default_factory=list)
    require_tls: bool = False
    require_srtp: bool = False
    limits: SourceLimits = field(default_factory=SourceLimits)
    kind: str = "siprec"


def check_kind(kind: str) -> str:
    if kind not in SOURCE_KINDS:
        raise InvalidInput(
            f"a source's kind is one of {', '.join(SOURCE_KINDS)}, not {kind[:20]!r}",
            error_id=ErrorId.SOURCE_KIND_INVALID,
        )
    return kind


def check_limits(limits: SourceLimits) -> SourceLimits:
    for name, (low, high) in LIMIT_BOUNDS.items():
        value = getattr(limits, name)
        if not low <= value <= high:
            raise InvalidInput(
                f"{name} must be between {low} and {high}, not {value}",
                error_id=ErrorId.SOURCE_LIMIT_INVALID,
            )
    return limits


def _check_name(name: str) -> str:
    value = name.strip()
    if not 1 <= len(value) <= 200:
        raise InvalidInput(
            "a source's name has 1 to 200 characters", error_id=ErrorId.SOURCE_NAME_INVALID
        )
    return value


def _check_tenants(session: Session, tenant_ids: Iterable[int]) -> list[int]:
    wanted = sorted(set(tenant_ids))
    if not wanted:
        return []
    known = set(session.scalars(select(Tenant.id).where(Tenant.id.in_(wanted))))
    missing = [t for t in wanted if t not in known]
    if missing:
        raise InvalidInput(
            f"no such tenant: {', '.join(map(str, missing))}",
            error_id=ErrorId.SOURCE_TENANT_UNKNOWN,
        )
    return wanted


def _check_identity(networks: list[str], fingerprints: list[str]) -> None:
    if not networks and not fingerprints:
        raise InvalidInput(
            "a source needs at least one network or certificate fingerprint",
            error_id=ErrorId.SOURCE_IDENTITY_REQUIRED,
        )


def _flush(session: Session) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict("a source with this name exists", error_id=ErrorId.SOURCE_EXISTS) from exc


def add_source(session: Session, spec: SourceSpec, *, created_by: str) -> RecordingSourceRow:
    """Validate and add a source (flushed, not committed)."""
    networks = normalise_networks(spec.networks)
    fingerprints = normalise_fingerprints(spec.fingerprints)
    _check_identity(networks, fingerprints)
    limits = check_limits(spec.limits)
    row = RecordingSourceRow(
        name=_check_name(spec.name),
        networks=networks,
        fingerprints=fingerprints,
        require_tls=spec.require_tls,
        require_srtp=spec.require_srtp,
        kind=check_kind(spec.kind),
        created_by=created_by[:200],
        **asdict(limits),
    )
    row.tenants = [
        RecordingSourceTenant(tenant_id=t) for t in _check_tenants(session, spec.tenant_ids)
    ]
    session.add(row)
    _flush(session)
    return row


def source_facts(row: RecordingSourceRow) -> dict[str, Any]:
    """The changeable facts of a source, as the API shows them and audit rows record them."""
    return {
        "name": row.name,
        "kind": row.kind,
        "networks": list(row.networks),
        "fingerprints": list(row.fingerprints),
        "tenant_ids": sorted(link.tenant_id for link in row.tenants),
        "require_tls": row.require_tls,
        "require_srtp": row.require_srtp,
        **{name: getattr(row, name) for name in LIMIT_BOUNDS},
    }


def change_source(
    session: Session, row: RecordingSourceRow, wanted: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Apply the keys of ``wanted`` (those of ``source_facts``); return what changed.

    Lists replace the source's lists. The result is ``{key: {"old", "new"}}``.
    """
    unknown = set(wanted) - set(source_facts(row))
    if unknown:
        raise InvalidInput(f"unknown field {sorted(unknown)[0]}", error_id=ErrorId.INVALID_INPUT)
    before = source_facts(row)
    after = dict(before)
    if "name" in wanted:
        after["name"] = _check_name(wanted["name"])
    if "networks" in wanted:
        after["networks"] = normalise_networks(wanted["networks"])
    if "fingerprints" in wanted:
        after["fingerprints"] = normalise_fingerprints(wanted["fingerprints"])
    _check_identity(after["networks"], after["fingerprints"])
    if "tenant_ids" in wanted:
        after["tenant_ids"] = _check_tenants(session, wanted["tenant_ids"])
    if "kind" in wanted:
        after["kind"] = check_kind(wanted["kind"])
    for key in ("require_tls", "require_srtp", *LIMIT_BOUNDS):
        if key in wanted:
            after[key] = wanted[key]
    check_limits(SourceLimits(**{name: after[name] for name in LIMIT_BOUNDS}))
    changed = {
        key: {"old": before[key], "new": value}
        for key, value in after.items()
        if before[key] != value
    }
    for key in changed:
        if key == "tenant_ids":
            kept = [link for link in row.tenants if link.tenant_id in after["tenant_ids"]]
            have = {link.tenant_id for link in kept}
            row.tenants = kept + [
                RecordingSourceTenant(tenant_id=t) for t in after["tenant_ids"] if t not in have
            ]
        else:
            setattr(row, key, after[key])
    _flush(session)
    return changed


def list_sources(session: Session) -> list[RecordingSourceRow]:
    return list(
        session.scalars(
            select(RecordingSourceRow)
            .options(selectinload(RecordingSourceRow.tenants))
            .order_by(RecordingSourceRow.id)
        )
    )


def find_source(session: Session, ref: str) -> RecordingSourceRow | None:
    """A source by id (digits) or by name."""
    if ref.isdigit() and len(ref) < 10:
        return session.get(RecordingSourceRow, int(ref))
    return session.scalar(select(RecordingSourceRow).where(RecordingSourceRow.name == ref.strip()))


def register_loopback_source(
    session: Session,
    tenant_ids: Iterable[int],
    *,
    name: str = "loopback",
    created_by: str = "seed",
    limits: SourceLimits | None = None,
    kind: str = "siprec",
) -> RecordingSourceRow:
    """The demo's, the tests' and the bench's SRC: 127.0.0.1 and ::1, for these tenants."""
    spec = SourceSpec(
        name=name,
        networks=list(LOOPBACK_NETWORKS),
        tenant_ids=list(tenant_ids),
        limits=limits or SourceLimits(),
        kind=kind,
    )
    return add_source(session, spec, created_by=created_by)
