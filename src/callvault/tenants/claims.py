"""What a tenant may claim, and what its users may claim inside it (SPEC section 2).

The operator assigns each tenant SIP domains, numbers and number blocks; no
two tenants' claims overlap (checked here when the operator configures them).
A user's AORs must lie in the tenant's own domains and its numbers in the
tenant's own numbers or blocks. The portal API, the CLI and the seeding
helpers all go through ``set_tenant_claims`` and ``set_user_addresses``, so the
rules live in one place.

A number block is written ``+31201234*``: every E.164 number that starts with
the digits before the ``*``. A range such as ``+3120123450`` to
``+3120123459`` is the block ``+312012345*``.

Errors a tenant admin can meet never tell another tenant's data apart from
other invalid input: an AOR in another tenant's domain gets the same 422
``outside-tenant`` as one in nobody's domain. Errors for the operator (who
sees every tenant) name the tenant whose claim overlaps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from callvault.db.models import (
    AuditEvent,
    Tenant,
    TenantDomain,
    TenantNumber,
    TenantNumberBlock,
    User,
    UserAor,
    UserNumber,
)
from callvault.errors import Conflict, ErrorId, InvalidInput
from callvault.tenants.numbers import split_aor

ClaimRow = TypeVar("ClaimRow")

BLOCK_MARK = "*"
_BLOCK = re.compile(r"\+[1-9][0-9]{3,13}")  # country code and at least a few digits
_SEPARATORS = re.compile(r"[\s\-().]")


class ClaimOverlap(Conflict):
    """The operator gave a tenant a domain, number or block that another tenant holds."""

    error_id = ErrorId.TENANT_EXISTS  # the id clients knew before blocks existed


class ClaimInUse(Conflict):
    """The operator took away a domain, number or block that users of the tenant still use."""

    error_id = ErrorId.TENANT_CLAIM_IN_USE


class OutsideTenant(InvalidInput):
    """A user's AOR or number does not lie within the tenant's own claims."""

    error_id = ErrorId.OUTSIDE_TENANT


class AddressTaken(Conflict):
    """Another user of the same tenant has this AOR, number or extension."""

    error_id = ErrorId.USER_EXISTS


def normalise_block(raw: str) -> str:
    """``"+31 20 1234*"`` -> ``"+31201234*"``; ValueError for anything else."""
    text = _SEPARATORS.sub("", raw)
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.endswith(BLOCK_MARK) or not _BLOCK.fullmatch(text[:-1]):
        raise ValueError(
            f"{raw!r} is not a number block; write the common digits in E.164 form and a "
            "star, e.g. +31201234*"
        )
    return text


def block_prefix(block: str) -> str:
    return block.removesuffix(BLOCK_MARK)


def block_text(prefix: str) -> str:
    return prefix + BLOCK_MARK


@dataclass(frozen=True)
class TenantClaims:
    """One tenant's domains, numbers and block prefixes (``+31201234``)."""

    domains: frozenset[str]
    numbers: frozenset[str]
    prefixes: frozenset[str]

    @classmethod
    def of(cls, tenant: Tenant) -> TenantClaims:
        return cls(
            frozenset(d.domain.lower() for d in tenant.domains),
            frozenset(n.number for n in tenant.numbers),
            frozenset(b.prefix for b in tenant.blocks),
        )

    def owns_host(self, host: str) -> bool:
        return host.lower() in self.domains

    def owns_number(self, number: str) -> bool:
        return number in self.numbers or any(number.startswith(p) for p in self.prefixes)


def _overlaps(number_or_prefix: str, prefixes: Iterable[str]) -> str | None:
    """The first prefix that covers ``number_or_prefix`` or is covered by it."""
    for prefix in prefixes:
        if number_or_prefix.startswith(prefix) or prefix.startswith(number_or_prefix):
            return prefix
    return None


def check_tenant_claims(
    session: Session,
    tenant_id: int | None,
    domains: Sequence[str],
    numbers: Sequence[str],
    prefixes: Sequence[str],
) -> None:
    """Refuse (409 ``tenant-claim-overlap``) what overlaps another tenant's claims.

    ``tenant_id`` is the tenant being configured (None while it is created);
    its own current claims never count as overlapping.
    """

    def others(column: Any, model: Any) -> list[tuple[str, str]]:
        query = select(column, Tenant.name).join(Tenant, Tenant.id == model.tenant_id)
        if tenant_id is not None:
            query = query.where(model.tenant_id != tenant_id)
        return [(value, name) for value, name in session.execute(query)]

    wanted_domains = {d.lower() for d in domains}
    for domain, name in others(TenantDomain.domain, TenantDomain):
        if domain.lower() in wanted_domains:
            raise ClaimOverlap(f"the SIP domain {domain} belongs to the tenant {name!r}")
    their_numbers = others(TenantNumber.number, TenantNumber)
    their_prefixes = others(TenantNumberBlock.prefix, TenantNumberBlock)
    owner_of_prefix = dict(their_prefixes)
    for number in numbers:
        for other, name in their_numbers:
            if other == number:
                raise ClaimOverlap(f"the number {number} belongs to the tenant {name!r}")
        hit = next((p for p in owner_of_prefix if number.startswith(p)), None)
        if hit is not None:
            raise ClaimOverlap(
                f"the number {number} lies in the block {block_text(hit)} "
                f"of the tenant {owner_of_prefix[hit]!r}"
            )
    for prefix in prefixes:
        hit = _overlaps(prefix, owner_of_prefix)
        if hit is not None:
            raise ClaimOverlap(
                f"the block {block_text(prefix)} overlaps the block {block_text(hit)} "
                f"of the tenant {owner_of_prefix[hit]!r}"
            )
        for other, name in their_numbers:
            if other.startswith(prefix):
                raise ClaimOverlap(
                    f"the block {block_text(prefix)} holds the number {other} "
                    f"of the tenant {name!r}"
                )


def _check_users_fit(session: Session, tenant: Tenant, claims: TenantClaims) -> None:
    """Refuse (409 ``tenant-claim-in-use``) taking away what the tenant's users still use."""
    for aor in session.scalars(select(UserAor.aor).where(UserAor.tenant_id == tenant.id)):
        if not claims.owns_host(split_aor(aor)[1]):
            raise ClaimInUse(f"the user address {aor} lies in this domain; change the user first")
    for number in session.scalars(
        select(UserNumber.number).where(UserNumber.tenant_id == tenant.id)
    ):
        if not claims.owns_number(number):
            raise ClaimInUse(
                f"the user number {number} needs this number or block; change the user first"
            )


def set_tenant_claims(
    session: Session,
    tenant: Tenant,
    *,
    domains: Sequence[str] | None = None,
    numbers: Sequence[str] | None = None,
    blocks: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Check and replace the tenant's domains / numbers / blocks (None: keep that list).

    Values must be normalised already (lower-case domains, E.164 numbers,
    ``+31201234*`` blocks). Returns ``{field: {"old": [...], "new": [...]}}``
    for each list that changed, for the audit row. The tenant may be new (not
    flushed yet).
    """
    current = TenantClaims.of(tenant)
    new_domains = list(domains) if domains is not None else [d.domain for d in tenant.domains]
    new_numbers = list(numbers) if numbers is not None else [n.number for n in tenant.numbers]
    new_prefixes = (
        [block_prefix(b) for b in blocks]
        if blocks is not None
        else [b.prefix for b in tenant.blocks]
    )
    check_tenant_claims(session, tenant.id, new_domains, new_numbers, new_prefixes)
    wanted = TenantClaims(frozenset(new_domains), frozenset(new_numbers), frozenset(new_prefixes))
    if tenant.id is not None and wanted != current:
        _check_users_fit(session, tenant, wanted)
    changed: dict[str, dict[str, Any]] = {}
    domain_rows = _kept_and_new(tenant.domains, "domain", new_domains, TenantDomain)
    if domain_rows is not None:
        changed["domains"] = {"old": [d.domain for d in tenant.domains], "new": new_domains}
        tenant.domains = domain_rows
    number_rows = _kept_and_new(tenant.numbers, "number", new_numbers, TenantNumber)
    if number_rows is not None:
        changed["numbers"] = {"old": [n.number for n in tenant.numbers], "new": new_numbers}
        tenant.numbers = number_rows
    block_rows = _kept_and_new(tenant.blocks, "prefix", new_prefixes, TenantNumberBlock)
    if block_rows is not None:
        changed["blocks"] = {
            "old": [block_text(b.prefix) for b in tenant.blocks],
            "new": [block_text(p) for p in new_prefixes],
        }
        tenant.blocks = block_rows
    return changed


def _kept_and_new(
    rows: Sequence[ClaimRow], field: str, wanted: Sequence[str], make: Callable[..., ClaimRow]
) -> list[ClaimRow] | None:
    """The rows for ``wanted`` values (None: no change). Rows whose value stays are
    kept: a delete and re-insert of the same unique value in one flush would collide."""
    old = [getattr(row, field) for row in rows]
    if list(wanted) == old:
        return None
    kept = [row for row in rows if getattr(row, field) in wanted]
    return kept + [make(**{field: value}) for value in wanted if value not in old]


def check_user_addresses(tenant: Tenant, aors: Sequence[str], numbers: Sequence[str]) -> None:
    """Refuse (422 ``outside-tenant``) an AOR or number outside the tenant's own claims.

    The answer is the same whether the value belongs to another tenant or to
    nobody, so that an admin cannot probe other tenants with it.
    """
    claims = TenantClaims.of(tenant)
    for aor in aors:
        if not claims.owns_host(split_aor(aor)[1]):
            raise OutsideTenant(f"{aor} is not within this tenant's SIP domains")
    for number in numbers:
        if not claims.owns_number(number):
            raise OutsideTenant(f"{number} is not within this tenant's numbers and number blocks")


def _release_stale(
    session: Session, tenant: Tenant, aors: Sequence[str], numbers: Sequence[str]
) -> None:
    """Free values that users of *other* tenants hold outside their own tenant's claims.

    Such rows date from before the claims were checked; they never match a
    call (the tenant is resolved first), and the value belongs to ``tenant``
    now that it lies within its claims. The other tenant's audit log says so.
    """
    stale: list[UserAor | UserNumber] = []
    if aors:
        stale += session.scalars(
            select(UserAor).where(UserAor.aor.in_(aors), UserAor.tenant_id != tenant.id)
        )
    if numbers:
        stale += session.scalars(
            select(UserNumber).where(
                UserNumber.number.in_(numbers), UserNumber.tenant_id != tenant.id
            )
        )
    for row in stale:
        value = row.aor if isinstance(row, UserAor) else row.number
        session.add(
            AuditEvent(
                tenant_id=row.tenant_id,
                actor="system",
                action="user.address-released",
                target=f"user:{row.user_id}",
                details={"value": value, "why": "outside the tenant's domains and numbers"},
            )
        )
        model = type(row)
        session.execute(delete(model).where(model.id == row.id))


def set_user_addresses(
    session: Session,
    tenant: Tenant,
    user: User,
    *,
    aors: Sequence[str] | None = None,
    numbers: Sequence[str] | None = None,
) -> None:
    """Check and set a user's AORs / numbers (normalised already; None: keep that list).

    422 ``outside-tenant`` for a value outside the tenant's claims; 409
    ``user-exists`` when another user *of the same tenant* has it.
    """
    new_aors = list(aors) if aors is not None else [a.aor for a in user.aors]
    new_numbers = list(numbers) if numbers is not None else [n.number for n in user.numbers]
    if len(set(new_aors)) != len(new_aors) or len(set(new_numbers)) != len(new_numbers):
        raise InvalidInput("an AOR or number is given twice", error_id=ErrorId.INVALID_INPUT)
    check_user_addresses(tenant, new_aors, new_numbers)
    others = select(User.id).where(User.tenant_id == tenant.id)
    if user.id is not None:
        others = others.where(User.id != user.id)
    if new_aors:
        taken = session.scalar(
            select(UserAor.aor).where(UserAor.aor.in_(new_aors), UserAor.user_id.in_(others))
        )
        if taken is not None:
            raise AddressTaken(f"{taken} belongs to another user of this tenant")
    if new_numbers:
        taken = session.scalar(
            select(UserNumber.number).where(
                UserNumber.number.in_(new_numbers), UserNumber.user_id.in_(others)
            )
        )
        if taken is not None:
            raise AddressTaken(f"{taken} belongs to another user of this tenant")
    _release_stale(session, tenant, new_aors, new_numbers)
    if aors is not None:
        kept_aors = [a for a in user.aors if a.aor in new_aors]
        user.aors = kept_aors + [
            UserAor(tenant_id=tenant.id, aor=a)
            for a in new_aors
            if a not in {k.aor for k in kept_aors}
        ]
    if numbers is not None:
        kept = [n for n in user.numbers if n.number in new_numbers]
        user.numbers = kept + [
            UserNumber(tenant_id=tenant.id, number=n)
            for n in new_numbers
            if n not in {k.number for k in kept}
        ]


def check_extension_free(session: Session, tenant: Tenant, user: User, extension: str) -> None:
    """409 ``user-exists`` when another user of the tenant has this extension."""
    query = select(User.id).where(User.tenant_id == tenant.id, User.extension == extension)
    if user.id is not None:
        query = query.where(User.id != user.id)
    if session.scalar(query) is not None:
        raise AddressTaken(f"the extension {extension} belongs to another user of this tenant")
