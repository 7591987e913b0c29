"""Settings › Recording: legal notice, recording list and modes, short code, contacts.

Everything here is a tenant admin's (or the operator's), except a user's own
contacts lists, which the user may keep. The announcement options (B2BUA mode,
SPEC 3: prompts at start and stop, again after a transfer, the short code kept
from the other party) are settings like the others; the prompts themselves are
``portal/announcements``. Nothing but the legal notice can be
changed before the notice was accepted (SPEC section 8). The notice can be
accepted only once the operator enabled recording, and only by the tenant's
admin in their own interactive portal session: not with an API token (which
the operator can mint for any user), not by the operator. Every change is
audited and takes effect for the next call at once (the SIP side's directory
is reloaded).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.db.models import LegalAcceptance, Tenant, User
from callvault.errors import Conflict, ErrorId, Forbidden, InvalidInput, NotFound
from callvault.policy.modes import ShortCode
from callvault.portal import contacts
from callvault.portal.api.schemas import Strict
from callvault.portal.audit import audit, changes
from callvault.portal.auth import (
    MAX_ID,
    CurrentPrincipal,
    Now,
    Principal,
    SessionDep,
    TenantScope,
    as_utc,
)
from callvault.portal.contacts import ContactIn, ContactOut
from callvault.portal.roles import AdminTenant, OwnAdminTenant
from callvault.portal.timefmt import TimezoneName, UtcDateTime, utc_text
from callvault.retention.plans import (
    BULK_MIN_RETENTION_DAYS,
    check_retention,
    plan_of,
    set_retention,
)
from callvault.tenants.enablement import is_enabled
from callvault.tenants.legal import NOTICE, NOTICE_VERSION, accept_notice

router = APIRouter(prefix="/api/v1/tenants/{tenant_id}", tags=["recording settings"])

ModeName = Literal[
    "never", "always", "always_pause", "on_demand_keep", "on_demand_user", "playback"
]
NEW_USER_MODE: ModeName = "on_demand_user"
UserId = Annotated[int, Path(ge=1, le=MAX_ID)]


class LegalNoticeOut(BaseModel):
    version: str
    recording_enabled: bool = Field(description="enabled by the operator; needed to accept")
    text: dict[str, str]
    accepted: bool
    accepted_version: str | None
    accepted_by: str | None
    accepted_at: str | None = Field(description="UTC, ISO 8601 with +00:00")
    purpose: str | None


class AcceptIn(Strict):
    version: str = Field(max_length=32)
    purpose: str = Field(min_length=10, max_length=2000, description="why calls are recorded")


_EMAIL = re.compile(r"^[^@\s<>\"(),;:]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,63}$")


class SettingsOut(BaseModel):
    active: bool = Field(
        description="calls are recorded: enabled by the operator, notice accepted, not suspended"
    )
    recording_enabled: bool
    short_code: str
    pause_mode: Literal["cut", "silence"]
    channels: Literal["both", "user", "other", "mix"]
    plan: str
    retention_days: int
    retention_min_days: int = Field(description="the plan's range for the retention slider")
    retention_max_days: int
    retention_changed_at: UtcDateTime | None
    stream_only: bool = Field(
        description="audio plays in the portal's player only: no download, no export, mailed "
        "as a link (never attached); needs store_in_portal"
    )
    bulk_download: bool
    delivery_email: str | None
    store_in_portal: bool = Field(
        description="false: a mailed recording's audio is deleted once the mail server "
        'accepted the message (the German manual\'s "do not store in the portal")'
    )
    language: Literal["nl", "de", "en"]
    timezone: str = Field(description="IANA time zone of reports, e-mails and export months")
    announce_start: bool = Field(description="B2BUA: the other party hears a prompt at the start")
    announce_stop: bool = Field(description="B2BUA: the other party hears a prompt at the stop")
    announce_after_transfer: bool = Field(
        description="B2BUA: the new party of a transfer hears the start prompt again"
    )
    hide_code_from_other: bool = Field(
        description="B2BUA: the short code's tones are kept from the other party's ear too"
    )
    supervisor_in_recording: bool = Field(
        default=False,
        description="silent coaching: the supervisor's voice is in the agent's recording too",
    )


class SettingsIn(Strict):
    short_code: str | None = Field(
        default=None,
        description="one key (0-9, * or #) pressed alone, or * followed by one digit",
    )
    pause_mode: Literal["cut", "silence"] | None = None
    channels: Literal["both", "user", "other", "mix"] | None = None
    retention_days: int | None = Field(default=None, ge=1, le=3650)
    stream_only: bool | None = None
    bulk_download: bool | None = None
    delivery_email: str | None = Field(
        default=None, max_length=320, description='where finished recordings are mailed; "" clears'
    )
    store_in_portal: bool | None = None
    language: Literal["nl", "de", "en"] | None = None
    timezone: TimezoneName | None = Field(default=None, max_length=64)
    announce_start: bool | None = None
    announce_stop: bool | None = None
    announce_after_transfer: bool | None = None
    hide_code_from_other: bool | None = None
    supervisor_in_recording: bool | None = None

    @field_validator("delivery_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return value
        value = value.strip()
        if not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    @field_validator("short_code")
    @classmethod
    def _code(cls, value: str | None) -> str | None:
        # one key (the German manual's keypad) or * + digit: ShortCode.parse is the
        # one check; its InvalidShortCode (a ValueError) names both forms
        return None if value is None else str(ShortCode.parse(value))


class ListedUserOut(BaseModel):
    user_id: int
    name: str
    extension: str | None
    mode: ModeName


class ListAddIn(Strict):
    user_id: int = Field(ge=1)
    mode: ModeName = NEW_USER_MODE


class ModeIn(Strict):
    mode: ModeName


def _latest_acceptance(session: Session, tenant_id: int) -> LegalAcceptance | None:
    return session.scalar(
        select(LegalAcceptance)
        .where(LegalAcceptance.tenant_id == tenant_id)
        .order_by(LegalAcceptance.accepted_at.desc(), LegalAcceptance.id.desc())
        .limit(1)
    )


def _require_accepted(session: Session, tenant: Tenant) -> None:
    if _latest_acceptance(session, tenant.id) is None:
        raise Conflict(
            "accept the legal notice before changing recording settings",
            error_id=ErrorId.LEGAL_NOTICE_REQUIRED,
        )


def _changed(request: Request) -> None:
    request.app.state.context.on_directory_change()


@router.get("/legal-notice", response_model=LegalNoticeOut)
def get_legal_notice(
    tenant: AdminTenant, principal: CurrentPrincipal, session: SessionDep
) -> LegalNoticeOut:
    latest = _latest_acceptance(session, tenant.id)
    return LegalNoticeOut(
        version=NOTICE_VERSION,
        recording_enabled=is_enabled(session, tenant.id, "recording"),
        text=NOTICE,
        accepted=latest is not None,
        accepted_version=latest.text_version if latest else None,
        accepted_by=latest.actor if latest else None,
        accepted_at=utc_text(latest.accepted_at) if latest else None,
        purpose=latest.purpose if latest else None,
    )


@router.post("/legal-notice/accept", response_model=LegalNoticeOut, status_code=201)
def accept_legal_notice(
    body: AcceptIn,
    tenant: OwnAdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
    at: Now,
) -> LegalNoticeOut:
    # the customer's own admin accepts, in person: the provider cannot accept on its
    # behalf, neither as operator nor with a token it minted for the admin
    if principal.session_id is None:
        raise Forbidden(
            "the legal notice is accepted by the admin in their own portal session, "
            "not with an API token",
            error_id=ErrorId.INTERACTIVE_SESSION_REQUIRED,
        )
    admin = session.get(User, principal.user_id)
    if admin is None or admin.tenant_id != tenant.id:
        raise NotFound("no such tenant", error_id=ErrorId.TENANT_NOT_FOUND)
    accept_notice(session, tenant.id, admin, body.version, body.purpose, at)
    audit(session, request, principal, "legal.accept", tenant.id, version=body.version)
    session.commit()
    _changed(request)
    return get_legal_notice(tenant, principal, session)


@router.get("/recording-settings", response_model=SettingsOut)
def get_settings(
    tenant: AdminTenant, principal: CurrentPrincipal, session: SessionDep
) -> SettingsOut:
    enabled = is_enabled(session, tenant.id, "recording")
    accepted = _latest_acceptance(session, tenant.id) is not None
    plan = plan_of(session, tenant)
    return SettingsOut(
        active=enabled and accepted and not tenant.suspended,
        recording_enabled=enabled,
        short_code=tenant.short_code,
        pause_mode=tenant.pause_mode,
        channels=tenant.channels,
        plan=tenant.plan,
        retention_days=tenant.retention_days,
        retention_min_days=plan.retention_min_days,
        retention_max_days=plan.retention_max_days,
        retention_changed_at=as_utc(tenant.retention_changed_at)
        if tenant.retention_changed_at
        else None,
        stream_only=tenant.stream_only,
        bulk_download=tenant.bulk_download,
        delivery_email=tenant.delivery_email,
        store_in_portal=tenant.store_in_portal,
        language=tenant.language,
        timezone=tenant.timezone,
        announce_start=tenant.announce_start,
        announce_stop=tenant.announce_stop,
        announce_after_transfer=tenant.announce_after_transfer,
        hide_code_from_other=tenant.hide_code_from_other,
        supervisor_in_recording=tenant.supervisor_in_recording,
    )


def _check_stream_only(tenant: Tenant, wanted: dict[str, Any], after: dict[str, Any]) -> None:
    """Stream-only and "do not store in the portal" exclude each other, set in either order.

    A stream-only tenant's recordings are mailed as a link to the portal, never
    attached (``mail.recordings``); without the portal's copy that link would
    lead nowhere. Checked only when a request touches either switch, so a
    tenant that has both from before can still change its other settings.
    """
    if "stream_only" not in wanted and "store_in_portal" not in wanted:
        return
    stream_only = after.get("stream_only", tenant.stream_only)
    if stream_only and not after.get("store_in_portal", tenant.store_in_portal):
        raise InvalidInput(
            "stream-only recordings are mailed as a link to the portal: "
            "they must be stored in the portal",
            error_id=ErrorId.STREAM_ONLY_NEEDS_PORTAL,
        )


@router.patch("/recording-settings", response_model=SettingsOut)
def change_settings(
    body: SettingsIn,
    tenant: AdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
    at: Now,
) -> SettingsOut:
    """Changes what is given; each change is audited with its old and new value."""
    _require_accepted(session, tenant)
    wanted: dict[str, Any] = body.model_dump(exclude_none=True)
    if not wanted:
        raise InvalidInput("nothing to change", error_id=ErrorId.NO_CHANGE)
    if wanted.get("delivery_email") == "":
        wanted["delivery_email"] = None
    before = {key: getattr(tenant, key) for key in wanted}
    after = before | wanted
    retention = wanted.get("retention_days", tenant.retention_days)
    if "retention_days" in wanted:
        check_retention(plan_of(session, tenant), retention)
    if after.get("bulk_download", tenant.bulk_download) and retention < BULK_MIN_RETENTION_DAYS:
        raise InvalidInput(
            f"bulk download needs a retention of at least {BULK_MIN_RETENTION_DAYS} days",
            error_id=ErrorId.BULK_NEEDS_180_DAYS,
        )
    _check_stream_only(tenant, wanted, after)
    changed = changes(before, after)
    for key in changed:
        if key != "retention_days":
            setattr(tenant, key, after[key])
    if "retention_days" in changed:
        # every recording's expiry moves, in one UPDATE, counted from today (SPEC 4)
        set_retention(session, tenant, retention, at)
    if changed:
        # new values at the top level, the old ones under "old"
        new_values = {key: diff["new"] for key, diff in changed.items()}
        old_values = {key: diff["old"] for key, diff in changed.items()}
        audit(
            session,
            request,
            principal,
            "settings.recording",
            tenant.id,
            **new_values,
            old=old_values,
        )
    session.commit()
    _changed(request)
    return get_settings(tenant, principal, session)


def _tenant_user(session: Session, tenant: Tenant, user_id: int) -> User:
    user = session.scalar(select(User).where(User.tenant_id == tenant.id, User.id == user_id))
    if user is None:
        raise NotFound("no such user", error_id=ErrorId.USER_NOT_FOUND)
    return user


def _listed(user: User) -> ListedUserOut:
    return ListedUserOut(
        user_id=user.id,
        name=user.name,
        extension=user.extension,
        mode=user.recording_mode,
    )


@router.get("/recording-list", response_model=list[ListedUserOut])
def get_recording_list(
    tenant: AdminTenant, principal: CurrentPrincipal, session: SessionDep
) -> list[ListedUserOut]:
    users = session.scalars(
        select(User).where(User.tenant_id == tenant.id, User.recorded.is_(True)).order_by(User.name)
    )
    return [_listed(u) for u in users]


@router.post("/recording-list", response_model=ListedUserOut, status_code=201)
def add_to_recording_list(
    body: ListAddIn,
    tenant: AdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> ListedUserOut:
    _require_accepted(session, tenant)
    user = _tenant_user(session, tenant, body.user_id)
    if user.recorded:
        raise Conflict("the user is on the recording list already", error_id=ErrorId.ALREADY_LISTED)
    user.recorded, user.recording_mode = True, body.mode
    audit(
        session,
        request,
        principal,
        "recording-list.add",
        tenant.id,
        target=f"user:{user.id}",
        mode=body.mode,
    )
    session.commit()
    _changed(request)
    return _listed(user)


@router.put("/recording-list/{user_id}", response_model=ListedUserOut)
def set_mode(
    user_id: UserId,
    body: ModeIn,
    tenant: AdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> ListedUserOut:
    _require_accepted(session, tenant)
    user = _tenant_user(session, tenant, user_id)
    if not user.recorded:
        raise NotFound("the user is not on the recording list", error_id=ErrorId.NOT_LISTED)
    old, user.recording_mode = user.recording_mode, body.mode
    audit(
        session,
        request,
        principal,
        "recording-list.mode",
        tenant.id,
        target=f"user:{user.id}",
        old=old,
        new=body.mode,
    )
    session.commit()
    _changed(request)
    return _listed(user)


@router.delete("/recording-list/{user_id}", status_code=204)
def remove_from_recording_list(
    user_id: UserId,
    tenant: AdminTenant,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> Response:
    """Stops future recording; the user's existing recordings stay."""
    user = _tenant_user(session, tenant, user_id)
    if not user.recorded:
        raise NotFound("the user is not on the recording list", error_id=ErrorId.NOT_LISTED)
    user.recorded = False
    audit(session, request, principal, "recording-list.remove", tenant.id, target=f"user:{user.id}")
    session.commit()
    _changed(request)
    return Response(status_code=204)


def _contacts_owner(session: Session, tenant: Tenant, principal: Principal, user_id: int) -> User:
    user = _tenant_user(session, tenant, user_id)
    if principal.role not in ("operator", "admin") and principal.user_id != user.id:
        raise Forbidden(
            "only the user or an admin keeps these lists", error_id=ErrorId.ROLE_REQUIRED
        )
    return user


@router.get("/users/{user_id}/contacts", response_model=list[ContactOut])
def list_contacts(
    user_id: UserId, tenant: TenantScope, principal: CurrentPrincipal, session: SessionDep
) -> list[ContactOut]:
    return contacts.contacts_of(session, _contacts_owner(session, tenant, principal, user_id))


@router.post("/users/{user_id}/contacts", response_model=ContactOut, status_code=201)
def add_contact(
    user_id: UserId,
    body: ContactIn,
    tenant: TenantScope,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> ContactOut:
    user = _contacts_owner(session, tenant, principal, user_id)
    added = contacts.add_contact(session, request, principal, user, body)
    _changed(request)
    return added


@router.delete("/users/{user_id}/contacts/{contact_id}", status_code=204)
def remove_contact(
    user_id: UserId,
    contact_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    tenant: TenantScope,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
) -> Response:
    user = _contacts_owner(session, tenant, principal, user_id)
    contacts.remove_contact(session, request, principal, user, contact_id)
    _changed(request)
    return Response(status_code=204)
