"""Who is who: matching SIPREC participants to tenants and users (SPEC section 2).

The tenant is resolved first — by the domain of the party's AOR, else by its
number within a tenant's numbers or number blocks (longest block wins; blocks
never overlap across tenants, see ``tenants/claims.py``) — and only then the
user *inside that tenant*, by AOR, extension or number. So a user row can
never pull another tenant's calls into its own tenant, whatever it holds.
Each party of a call is matched on its own; a call may hold parties of two
tenants. Numbers are compared in E.164 form.

``Directory`` is an immutable in-memory snapshot built from the database, so
matching a call costs a few dict look-ups on the event loop; the snapshot is
rebuilt when tenants or users change. ``TenantPolicy.active`` is true only
when the operator enabled recording, the admin accepted the legal notice and
the tenant is not suspended (SPEC 8).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased, selectinload

from callvault.db.models import (
    AnnouncementPrompt,
    LegalAcceptance,
    TeamMember,
    Tenant,
    TenantEnablement,
    User,
    UserContact,
)
from callvault.tenants.numbers import split_aor, to_e164


@dataclass(frozen=True)
class KnownUser:
    id: int
    tenant_id: int
    name: str
    recorded: bool
    mode: str
    # silent coaching (SPEC 7): who may coach, and whose call *98*<extension> names
    role: str = "user"  # admin | listener | user
    can_coach: bool = False
    active: bool = True
    extension: str | None = None


@dataclass(frozen=True)
class TenantPolicy:
    """A tenant's recording settings as calls need them."""

    active: bool  # recording enabled by the operator, notice accepted, tenant not suspended
    short_code: str = "*1"
    pause_mode: str = "cut"
    channels: str = "both"
    recording_enabled: bool = False  # by the operator, after the signed declaration
    listening_enabled: bool = False  # LiveCenter listening
    coaching_enabled: bool = False
    # B2BUA announcements (SPEC 3; callvault.announcements): the shipped prompts'
    # language, which prompts play, and the tenant's own uploads (kind -> blob key)
    language: str = "nl"
    announce_start: bool = True
    announce_stop: bool = True
    announce_after_transfer: bool = False  # the new party of a transfer hears the prompt again
    hide_code_from_other: bool = False  # the short code's tones never reach the other party
    supervisor_in_recording: bool = False  # a coaching supervisor's voice is recorded too
    # hash=False: the policy stays hashable (a dict is not)
    prompts: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Match:
    """The outcome of matching one party."""

    tenant_id: int | None
    user: KnownUser | None
    number: str | None


@dataclass
class Directory:
    # users are keyed by their tenant: a look-up happens only inside a resolved tenant
    by_aor: dict[tuple[int, str], KnownUser] = field(default_factory=dict)
    by_number: dict[tuple[int, str], KnownUser] = field(default_factory=dict)
    by_extension: dict[tuple[int, str], KnownUser] = field(default_factory=dict)
    tenant_by_domain: dict[str, int] = field(default_factory=dict)
    tenant_by_number: dict[str, int] = field(default_factory=dict)
    tenant_by_prefix: dict[str, int] = field(default_factory=dict)  # number blocks
    country_codes: dict[int, str] = field(default_factory=dict)
    suspended: set[int] = field(default_factory=set)
    by_id: dict[int, KnownUser] = field(default_factory=dict)
    policies: dict[int, TenantPolicy] = field(default_factory=dict)
    contacts: dict[int, dict[str, list[str]]] = field(
        default_factory=dict
    )  # user -> list -> values
    # a team lead (listener) -> the members of every team they lead (visibility.py's rule)
    led: dict[int, frozenset[int]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session) -> Directory:
        directory = cls()
        tenants = session.scalars(
            select(Tenant).options(
                selectinload(Tenant.domains),
                selectinload(Tenant.numbers),
                selectinload(Tenant.blocks),
            )
        ).all()
        accepted = set(session.scalars(select(LegalAcceptance.tenant_id).distinct()))
        enabled = {
            (tenant_id, feature)
            for tenant_id, feature in session.execute(
                select(TenantEnablement.tenant_id, TenantEnablement.feature).where(
                    TenantEnablement.enabled.is_(True)
                )
            )
        }
        prompts: dict[int, dict[str, str]] = {}
        for tenant_id, kind, blob_key in session.execute(
            select(
                AnnouncementPrompt.tenant_id, AnnouncementPrompt.kind, AnnouncementPrompt.blob_key
            )
        ):
            prompts.setdefault(tenant_id, {})[kind] = blob_key
        for tenant in tenants:
            recording = (tenant.id, "recording") in enabled
            directory.policies[tenant.id] = TenantPolicy(
                active=recording and tenant.id in accepted and not tenant.suspended,
                short_code=tenant.short_code,
                pause_mode=tenant.pause_mode,
                channels=tenant.channels,
                recording_enabled=recording,
                listening_enabled=(tenant.id, "listening") in enabled,
                coaching_enabled=(tenant.id, "coaching") in enabled,
                language=tenant.language,
                announce_start=tenant.announce_start,
                announce_stop=tenant.announce_stop,
                announce_after_transfer=tenant.announce_after_transfer,
                hide_code_from_other=tenant.hide_code_from_other,
                supervisor_in_recording=tenant.supervisor_in_recording,
                prompts=prompts.get(tenant.id, {}),
            )
            directory.country_codes[tenant.id] = tenant.country_code
            if tenant.suspended:
                directory.suspended.add(tenant.id)
            for domain in tenant.domains:
                directory.tenant_by_domain[domain.domain.lower()] = tenant.id
            for number in tenant.numbers:
                directory.tenant_by_number[number.number] = tenant.id
            for block in tenant.blocks:
                directory.tenant_by_prefix[block.prefix] = tenant.id
        users = session.scalars(
            select(User).options(selectinload(User.numbers), selectinload(User.aors))
        ).all()
        for user in users:
            known = KnownUser(
                user.id,
                user.tenant_id,
                user.name,
                user.recorded,
                user.recording_mode,
                role=user.role,
                can_coach=user.can_coach,
                active=user.active,
                extension=user.extension,
            )
            directory.by_id[user.id] = known
            for aor in user.aors:
                directory.by_aor[(user.tenant_id, aor.aor)] = known
            for user_number in user.numbers:
                directory.by_number[(user.tenant_id, user_number.number)] = known
            if user.extension:
                directory.by_extension[(user.tenant_id, user.extension)] = known
        for contact in session.scalars(select(UserContact)):
            lists = directory.contacts.setdefault(contact.user_id, {})
            lists.setdefault(contact.list, []).append(contact.value)
        lead = aliased(TeamMember)
        led: dict[int, set[int]] = {}
        for lead_id, member_id in session.execute(
            select(lead.user_id, TeamMember.user_id)
            .join(lead, lead.team_id == TeamMember.team_id)
            .where(lead.is_lead.is_(True), lead.tenant_id == TeamMember.tenant_id)
        ):
            led.setdefault(lead_id, set()).add(member_id)
        directory.led = {lead_id: frozenset(ids) for lead_id, ids in led.items()}
        return directory

    def user(self, user_id: int) -> KnownUser | None:
        return self.by_id.get(user_id)

    def members_led_by(self, user_id: int) -> frozenset[int]:
        """The members of the teams ``user_id`` leads (none for a non-lead)."""
        return self.led.get(user_id, frozenset())

    def policy(self, tenant_id: int) -> TenantPolicy:
        return self.policies.get(tenant_id, TenantPolicy(active=False))

    def _numbers(self, user_part: str, tenant_id: int | None = None) -> list[str]:
        """E.164 readings of ``user_part``: with the tenant's country code, else with each."""
        if tenant_id is not None:
            codes = [self.country_codes.get(tenant_id, "31")]
        else:
            codes = sorted(set(self.country_codes.values())) or ["31"]
        found: list[str] = []
        for code in codes:
            number = to_e164(user_part, code)
            if number and number not in found:
                found.append(number)
        return found

    def tenant_of_number(self, number: str) -> int | None:
        """The tenant owning ``number``: one of its numbers, else its longest covering block."""
        tenant_id = self.tenant_by_number.get(number)
        if tenant_id is not None:
            return tenant_id
        for end in range(len(number), 1, -1):
            tenant_id = self.tenant_by_prefix.get(number[:end])
            if tenant_id is not None:
                return tenant_id
        return None

    def match(self, aor: str | None) -> Match:
        """Resolve the party's tenant, then its user inside that tenant."""
        if not aor:
            return Match(None, None, None)
        user_part, host = split_aor(aor)
        tenant_id = self.tenant_by_domain.get(host) if host else None
        by_domain = tenant_id is not None
        if by_domain:
            numbers = self._numbers(user_part, tenant_id)
            number = numbers[0] if numbers else None
        else:
            numbers = self._numbers(user_part)
            number = numbers[0] if numbers else None
            for candidate in numbers:
                tenant_id = self.tenant_of_number(candidate)
                if tenant_id is not None:
                    number = candidate
                    break
        if tenant_id is None:
            return Match(None, None, number)
        known = None
        if by_domain:  # extensions are short: only meaningful within the tenant's own domain
            known = self.by_aor.get((tenant_id, f"{user_part}@{host}"))
            if known is None:
                known = self.by_extension.get((tenant_id, user_part))
        if known is None and number is not None:
            known = self.by_number.get((tenant_id, number))
        return Match(tenant_id, known, number)
