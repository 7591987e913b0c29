"""Who is who: matching SIPREC participants to tenants and users (SPEC section 2).

A party is the user whose AOR, number or extension (within the tenant's
domains) matches; numbers are compared in E.164 form. ``Directory`` is an
immutable in-memory snapshot built from the database, so matching a call
costs a few dict look-ups on the event loop; the snapshot is rebuilt when
tenants or users change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from callvault.db.models import LegalAcceptance, Tenant, User, UserContact
from callvault.tenants.numbers import split_aor, to_e164


@dataclass(frozen=True)
class KnownUser:
    id: int
    tenant_id: int
    name: str
    recorded: bool
    mode: str


@dataclass(frozen=True)
class TenantPolicy:
    """A tenant's recording settings as calls need them."""

    active: bool  # the legal notice was accepted
    short_code: str = "*1"
    pause_mode: str = "cut"
    channels: str = "both"


@dataclass(frozen=True)
class Match:
    """The outcome of matching one party."""

    tenant_id: int | None
    user: KnownUser | None
    number: str | None


@dataclass
class Directory:
    by_aor: dict[str, KnownUser] = field(default_factory=dict)
    by_number: dict[str, KnownUser] = field(default_factory=dict)
    by_extension: dict[tuple[int, str], KnownUser] = field(default_factory=dict)
    tenant_by_domain: dict[str, int] = field(default_factory=dict)
    tenant_by_number: dict[str, int] = field(default_factory=dict)
    country_codes: dict[int, str] = field(default_factory=dict)
    suspended: set[int] = field(default_factory=set)
    by_id: dict[int, KnownUser] = field(default_factory=dict)
    policies: dict[int, TenantPolicy] = field(default_factory=dict)
    contacts: dict[int, dict[str, list[str]]] = field(
        default_factory=dict
    )  # user -> list -> values

    @classmethod
    def load(cls, session: Session) -> Directory:
        directory = cls()
        tenants = session.scalars(
            select(Tenant).options(selectinload(Tenant.domains), selectinload(Tenant.numbers))
        ).all()
        accepted = set(session.scalars(select(LegalAcceptance.tenant_id).distinct()))
        for tenant in tenants:
            directory.policies[tenant.id] = TenantPolicy(
                tenant.id in accepted, tenant.short_code, tenant.pause_mode, tenant.channels
            )
            directory.country_codes[tenant.id] = tenant.country_code
            if tenant.suspended:
                directory.suspended.add(tenant.id)
            for domain in tenant.domains:
                directory.tenant_by_domain[domain.domain.lower()] = tenant.id
            for number in tenant.numbers:
                directory.tenant_by_number[number.number] = tenant.id
        users = session.scalars(
            select(User).options(selectinload(User.numbers), selectinload(User.aors))
        ).all()
        for user in users:
            known = KnownUser(
                user.id, user.tenant_id, user.name, user.recorded, user.recording_mode
            )
            directory.by_id[user.id] = known
            for aor in user.aors:
                directory.by_aor[aor.aor] = known
            for user_number in user.numbers:
                directory.by_number[user_number.number] = known
            if user.extension:
                directory.by_extension[(user.tenant_id, user.extension)] = known
        for contact in session.scalars(select(UserContact)):
            lists = directory.contacts.setdefault(contact.user_id, {})
            lists.setdefault(contact.list, []).append(contact.value)
        return directory

    def user(self, user_id: int) -> KnownUser | None:
        return self.by_id.get(user_id)

    def policy(self, tenant_id: int) -> TenantPolicy:
        return self.policies.get(tenant_id, TenantPolicy(active=False))

    def _numbers(self, user_part: str) -> list[str]:
        found: list[str] = []
        for code in sorted(set(self.country_codes.values())) or ["31"]:
            number = to_e164(user_part, code)
            if number and number not in found:
                found.append(number)
        return found

    def match(self, aor: str | None) -> Match:
        if not aor:
            return Match(None, None, None)
        user_part, host = split_aor(aor)
        numbers = self._numbers(user_part)
        number = numbers[0] if numbers else None
        known = self.by_aor.get(f"{user_part}@{host}")
        if known is None:
            for candidate in numbers:
                known = self.by_number.get(candidate)
                if known is not None:
                    number = candidate
                    break
        if known is None:
            tenant_id = self.tenant_by_domain.get(host)
            if tenant_id is not None:
                known = self.by_extension.get((tenant_id, user_part))
        if known is not None:
            return Match(known.tenant_id, known, number)
        tenant_id = self.tenant_by_domain.get(host)
        for candidate in numbers:
            if candidate in self.tenant_by_number:
                tenant_id, number = self.tenant_by_number[candidate], candidate
                break
        return Match(tenant_id, None, number)
