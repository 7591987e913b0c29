"""SQL schema (SQLAlchemy 2, typed). Portable: nothing SQLite-only.

Every tenant-owned row carries ``tenant_id`` so that every query can (and
must) be scoped by it. Calls and recordings have random string ids so that
ids cannot be guessed or enumerated across tenants.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    true,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
    }


class Operator(Base):
    __tablename__ = "operators"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    login: Mapped[str | None] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))


class WebSession(Base):
    """A portal login: the cookie holds the token, only its SHA-256 is stored."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    operator_id: Mapped[int | None] = mapped_column(
        ForeignKey("operators.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    remote_addr: Mapped[str | None] = mapped_column(String(64))


class LoginAttempt(Base):
    """For throttling: failed logins by name and by address."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_login_at", "login", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(200))
    remote_addr: Mapped[str | None] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    success: Mapped[bool] = mapped_column(Boolean, default=False)


class LoginThrottle(Base):
    """Failed-login backoff (``portal.passwords``): one row per (login, address) and per address.

    ``kind`` is ``pair`` (login and address) or ``address`` (login is ``""``).
    The counter and ``blocked_until`` change in one UPDATE, so concurrent
    attempts cannot all pass the same check.
    """

    __tablename__ = "login_throttle"
    __table_args__ = (UniqueConstraint("kind", "login", "remote_addr"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    login: Mapped[str] = mapped_column(String(200))
    remote_addr: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_failure_at: Mapped[datetime | None] = mapped_column()
    blocked_until: Mapped[datetime | None] = mapped_column()


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    country_code: Mapped[str] = mapped_column(String(4), default="31")
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # recording settings (SPEC section 3); recording is off until the legal notice is accepted
    language: Mapped[str] = mapped_column(String(2), default="nl", server_default="nl")
    # the Plan's name: its range bounds the retention slider (SPEC 4; retention/plans.py)
    plan: Mapped[str] = mapped_column(String(32), default="standard", server_default="standard")
    retention_days: Mapped[int] = mapped_column(Integer, default=7, server_default="7")
    retention_changed_at: Mapped[datetime | None] = mapped_column()
    stream_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    bulk_download: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    delivery_email: Mapped[str | None] = mapped_column(String(320))
    short_code: Mapped[str] = mapped_column(String(2), default="*1", server_default="*1")
    pause_mode: Mapped[str] = mapped_column(String(8), default="cut", server_default="cut")
    channels: Mapped[str] = mapped_column(String(8), default="both", server_default="both")
    # IANA name: reports, e-mails, manifests and export months use it; the API speaks UTC
    timezone: Mapped[str] = mapped_column(
        String(64), default="Europe/Amsterdam", server_default="Europe/Amsterdam"
    )
    # False (the German manual's "do not store in the portal"): a mailed recording's
    # audio is deleted once the mail server accepted the message
    store_in_portal: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # B2BUA announcements (SPEC 3): the other party hears a prompt when recording
    # starts and stops, in the tenant's language unless the tenant uploaded its own
    announce_start: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    announce_stop: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # after a transfer, tell the new party again ("erneut über die Aufzeichnung informieren")
    announce_after_transfer: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="0"
    )
    # the short code's tones are also kept from the other party's ear (B2BUA)
    hide_code_from_other: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # silent coaching (SPEC 7): the supervisor's voice is in the recording too (off by default)
    supervisor_in_recording: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="0"
    )
    domains: Mapped[list[TenantDomain]] = relationship(
        cascade="all, delete-orphan", order_by="TenantDomain.id"
    )
    numbers: Mapped[list[TenantNumber]] = relationship(
        cascade="all, delete-orphan", order_by="TenantNumber.id"
    )
    blocks: Mapped[list[TenantNumberBlock]] = relationship(
        cascade="all, delete-orphan", order_by="TenantNumberBlock.id"
    )


class TenantDomain(Base):
    __tablename__ = "tenant_domains"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    domain: Mapped[str] = mapped_column(String(255), unique=True)


class TenantNumber(Base):
    __tablename__ = "tenant_numbers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)  # E.164


class TenantNumberBlock(Base):
    """A number block assigned by the operator: every E.164 number starting with ``prefix``."""

    __tablename__ = "tenant_number_blocks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)  # "+31201234", shown "+31201234*"


class TenantEnablement(Base):
    """The operator's switch for one feature of a tenant (SPEC 8): recording, listening, coaching.

    On only after the customer signed the provider's declaration; ``reference``
    names that declaration. One row per tenant and feature, kept when switched off.
    """

    __tablename__ = "tenant_enablements"
    __table_args__ = (UniqueConstraint("tenant_id", "feature"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    feature: Mapped[str] = mapped_column(String(16))  # recording | listening | coaching
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    reference: Mapped[str | None] = mapped_column(String(200))  # the signed declaration
    enabled_by: Mapped[str | None] = mapped_column(String(200))  # actor reference
    enabled_at: Mapped[datetime | None] = mapped_column()
    disabled_by: Mapped[str | None] = mapped_column(String(200))
    disabled_at: Mapped[datetime | None] = mapped_column()


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "extension"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    extension: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16), default="user")  # admin | listener | user
    email: Mapped[str | None] = mapped_column(String(320))
    login: Mapped[str | None] = mapped_column(String(200), unique=True)  # portal login name
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2
    language: Mapped[str | None] = mapped_column(String(2))  # None: the tenant's
    recorded: Mapped[bool] = mapped_column(Boolean, default=False)  # on the recording list
    recording_mode: Mapped[str] = mapped_column(String(32), default="on_demand_user")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # False: no portal session or API token of this user is accepted (kept for the audit log)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Playback: also ask by e-mail after each call (besides push and the inbox)
    playback_email: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # silent coaching (SPEC 7): may join a call with *98*<extension> or from LiveCenter
    # (only where the operator enabled coaching for the tenant)
    can_coach: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    numbers: Mapped[list[UserNumber]] = relationship(
        cascade="all, delete-orphan", order_by="UserNumber.id"
    )
    aors: Mapped[list[UserAor]] = relationship(cascade="all, delete-orphan", order_by="UserAor.id")


class LegalAcceptance(Base):
    """Who accepted which version of the legal notice for a tenant, when, and why."""

    __tablename__ = "legal_acceptances"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(200))
    text_version: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(Text)
    accepted_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserContact(Base):
    """A user's blacklist / whitelist entry: a number (E.164) or an AOR."""

    __tablename__ = "user_contacts"
    __table_args__ = (UniqueConstraint("user_id", "value"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    list: Mapped[str] = mapped_column(String(16))  # blacklist | whitelist (0024: 8 was short)
    value: Mapped[str] = mapped_column(String(255))


class UserNumber(Base):
    __tablename__ = "user_numbers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)  # E.164


class UserAor(Base):
    __tablename__ = "user_aors"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    aor: Mapped[str] = mapped_column(String(255), unique=True)  # user@host, lower-case host


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex
    name: Mapped[str] = mapped_column(String(200))
    operator_id: Mapped[int | None] = mapped_column(
        ForeignKey("operators.id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()  # None: until revoked
    created_by: Mapped[str | None] = mapped_column(String(200))  # audit actor reference


class Team(Base):
    """A listener's team: listeners hear their members' recordings (and their own)."""

    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))


class TeamMember(Base):
    __tablename__ = "team_members"
    __table_args__ = (UniqueConstraint("team_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    is_lead: Mapped[bool] = mapped_column(Boolean, default=False)  # leads (listeners) hear members


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_tenant_started", "tenant_id", "started_at", "id"),
        Index("ix_calls_tenant_direction_started", "tenant_id", "direction", "started_at", "id"),
        # ending in id: a number's calls in the report's order (migration 0025)
        Index("ix_calls_tenant_from_number", "tenant_id", "from_number", "started_at", "id"),
        Index("ix_calls_tenant_to_number", "tenant_id", "to_number", "started_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    sip_call_id: Mapped[str] = mapped_column(String(255))
    recording_session_id: Mapped[str | None] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(
        String(16), default="unknown"
    )  # inbound|outbound|internal
    from_name: Mapped[str | None] = mapped_column(String(200))
    from_number: Mapped[str | None] = mapped_column(String(64))
    from_aor: Mapped[str | None] = mapped_column(String(255))
    to_name: Mapped[str | None] = mapped_column(String(200))
    to_number: Mapped[str | None] = mapped_column(String(64))
    to_aor: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    parties: Mapped[list[CallParty]] = relationship(
        cascade="all, delete-orphan", order_by="CallParty.id"
    )


class CallParty(Base):
    __tablename__ = "call_parties"
    __table_args__ = (
        Index("ix_call_parties_tenant_user", "tenant_id", "user_id", "call_id"),
        # a call's parties, the report's check of a team per walked call
        # (``visibility.has_party``): one look-up, in the index alone on PostgreSQL
        # (migration 0026). Not a key column: SQLite would then prefer this index
        # to ix_call_parties_tenant_user for one user, whose probes stay in one part
        Index("ix_call_parties_call_id", "call_id", "user_id", postgresql_include=["tenant_id"]),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    participant_id: Mapped[str] = mapped_column(String(255))
    aor: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(200))
    number: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    side: Mapped[str] = mapped_column(String(8))  # user | other
    joined_ms: Mapped[int] = mapped_column(Integer, default=0)
    left_ms: Mapped[int | None] = mapped_column(Integer)


class Recording(Base):
    __tablename__ = "recordings"
    __table_args__ = (
        Index("ix_recordings_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_recordings_expires_at", "expires_at"),
        # the purge walks audio not yet deleted by expiry; the quota purge the oldest first
        Index(
            "ix_recordings_audio_expires",
            "expires_at",
            sqlite_where=sql_text("audio_deleted_at IS NULL"),
            postgresql_where=sql_text("audio_deleted_at IS NULL"),
        ),
        Index("ix_recordings_tenant_started", "tenant_id", "started_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    blob_key: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(8), default="mp3")
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    sample_rate: Mapped[int] = mapped_column(Integer)
    codecs: Mapped[str] = mapped_column(String(255), default="")
    started_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    mode: Mapped[str | None] = mapped_column(String(32))
    saved: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    kept_reason: Mapped[str | None] = mapped_column(String(255))
    # the audio is gone (the row stays): expired | quota | discarded | mailed | erased
    audio_deleted_at: Mapped[datetime | None] = mapped_column()
    audio_deleted_reason: Mapped[str | None] = mapped_column(String(32))
    # recordings by e-mail (SPEC 5): when the mail server accepted it, or why it failed for good
    mailed_at: Mapped[datetime | None] = mapped_column()
    mail_error: Mapped[str | None] = mapped_column(String(500))
    # Playback's question (SPEC 6): when and how the user answered (keep | discard)
    answered_at: Mapped[datetime | None] = mapped_column()
    answer: Mapped[str | None] = mapped_column(String(8))
    segments: Mapped[list[Segment]] = relationship(
        cascade="all, delete-orphan", order_by="Segment.ordinal"
    )


class Segment(Base):
    __tablename__ = "segments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    ordinal: Mapped[int] = mapped_column(Integer)
    call_start_ms: Mapped[int] = mapped_column(Integer)
    call_end_ms: Mapped[int] = mapped_column(Integer)
    file_start_ms: Mapped[int] = mapped_column(Integer)
    file_end_ms: Mapped[int] = mapped_column(Integer)


class RecordingLabel(Base):
    __tablename__ = "recording_labels"
    __table_args__ = (
        UniqueConstraint("recording_id", "text"),
        Index("ix_recording_labels_tenant_text", "tenant_id", "text"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    # the recording's call and when it started, copied (neither ever changes): the
    # calls report reads a label's calls newest first from one index (migration 0026)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column()
    text: Mapped[str] = mapped_column(String(100))

    @classmethod
    def of(cls, recording: Recording, call: Call, text: str) -> RecordingLabel:
        """The label ``text`` on ``recording`` (of ``call``), with its copies of the call."""
        assert recording.call_id == call.id
        return cls(
            tenant_id=recording.tenant_id,
            recording_id=recording.id,
            call_id=call.id,
            started_at=call.started_at,
            text=text,
        )


# label filters compare lower(text): one index look-up within a tenant, which
# gives a label's calls newest first (Reports › Calls) and its recordings (the
# recordings list); PostgreSQL reads an index on an expression alone only if it
# also holds the column (``text``, included)
Index(
    "ix_recording_labels_tenant_lower_text",
    RecordingLabel.tenant_id,
    func.lower(RecordingLabel.text),
    RecordingLabel.started_at,
    RecordingLabel.call_id,
    RecordingLabel.recording_id,
    postgresql_include=["text"],
)


class RecordingComment(Base):
    __tablename__ = "recording_comments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ShareLink(Base):
    """One recording for someone without an account: expires, revocable, logged."""

    __tablename__ = "share_links"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    stream_only: Mapped[bool] = mapped_column(Boolean, default=True)
    uses: Mapped[int] = mapped_column(Integer, default=0)


class DtmfEvent(Base):
    __tablename__ = "dtmf_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    stream_index: Mapped[int] = mapped_column(Integer)
    digit: Mapped[str] = mapped_column(String(2))
    at_ms: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_tenant_at", "tenant_id", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    note: Mapped[str | None] = mapped_column(Text)


class RecordingSourceRow(Base):
    """An SBC/PBX allowed to send SIPREC (SPEC section 2): who it is, for whom, how much.

    ``networks`` holds CIDRs (``ipaddress`` form), ``fingerprints`` lower-case
    hex SHA-256 of the DER client certificate; at least one of the two is set.
    ``callvault.sources.registry`` turns these rows into the SIP side's snapshot.
    """

    __tablename__ = "recording_sources"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    networks: Mapped[list[str]] = mapped_column(JSON, default=list)
    fingerprints: Mapped[list[str]] = mapped_column(JSON, default=list)
    require_tls: Mapped[bool] = mapped_column(Boolean, default=False)
    require_srtp: Mapped[bool] = mapped_column(Boolean, default=False)
    max_calls: Mapped[int] = mapped_column(Integer, default=200)
    max_streams: Mapped[int] = mapped_column(Integer, default=400)
    max_media_lines: Mapped[int] = mapped_column(Integer, default=4)
    max_session_expires_s: Mapped[int] = mapped_column(Integer, default=3600)
    # siprec: an SBC/PBX forking media to us; pbx or trunk: a B2BUA leg (SPEC 2, mode 2)
    kind: Mapped[str] = mapped_column(String(8), default="siprec", server_default="siprec")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    tenants: Mapped[list[RecordingSourceTenant]] = relationship(
        cascade="all, delete-orphan", order_by="RecordingSourceTenant.tenant_id"
    )


class RecordingSourceTenant(Base):
    """A tenant a recording source may record for (deleting either deletes the link)."""

    __tablename__ = "recording_source_tenants"
    source_id: Mapped[int] = mapped_column(
        ForeignKey("recording_sources.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Job(Base):
    """A background job (``callvault.jobs``): survives restarts, retried with backoff.

    ``key`` is unique when set: a scheduled job's slot (``purge:2026-12-01``) or
    any job that must exist once. A worker owns a running job until
    ``locked_until``; past it, another worker may take it again.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_run_after", "state", "run_after"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str | None] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None] = mapped_column()
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)  # progress note, or why it failed
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class Plan(Base):
    """What the operator sells (SPEC 4): the retention slider's range, or a minute quota."""

    __tablename__ = "plans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    retention_min_days: Mapped[int] = mapped_column(Integer)
    retention_max_days: Mapped[int] = mapped_column(Integer)
    retention_default_days: Mapped[int] = mapped_column(Integer)
    # minutes of audio kept at most (HIP: 100.000); over it the oldest go first
    minute_quota: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="migration")


class LegalHold(Base):
    """Stops expiry, quota purges, discards and termination until lifted.

    ``scope`` is ``tenant`` (all of it), ``user`` (``user_id``'s recordings) or
    ``recording`` (``recording_id``). Lifted holds stay, for the record.
    """

    __tablename__ = "legal_holds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(16))  # tenant | user | recording
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    recording_id: Mapped[str | None] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(String(200))
    placed_at: Mapped[datetime] = mapped_column(default=utcnow)
    lifted_by: Mapped[str | None] = mapped_column(String(200))
    lifted_at: Mapped[datetime | None] = mapped_column()
    lift_reason: Mapped[str | None] = mapped_column(Text)


class DeletionReceipt(Base):
    """What one purge run, discard or termination destroyed.

    The per-file list (recording id, blob key, SHA-256, size) is a JSON-lines
    blob at ``blob_key`` (it can hold a million lines); ``sha256`` is that blob's.
    Kept after a tenant is terminated (``tenant_id`` then NULL, the name stays).
    """

    __tablename__ = "deletion_receipts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # purge | termination | discard | mailed
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="SET NULL"), index=True
    )
    tenant_name: Mapped[str | None] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    blob_key: Mapped[str | None] = mapped_column(String(255))
    sha256: Mapped[str | None] = mapped_column(String(64))


class Export(Base):
    """A bulk download (SPEC 5): one month of a tenant's recordings as ZIP files."""

    __tablename__ = "exports"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM in the tenant's time zone
    user_ids: Mapped[list[int] | None] = mapped_column(JSON)  # None: the whole organisation
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    requested_by_actor: Mapped[str] = mapped_column(String(200))
    # queued | running | ready | failed | expired
    state: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    recordings: Mapped[int] = mapped_column(Integer, default=0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    files: Mapped[list[ExportFile]] = relationship(
        cascade="all, delete-orphan", order_by="ExportFile.ordinal"
    )


class ExportFile(Base):
    __tablename__ = "export_files"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[str] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    blob_key: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    recordings: Mapped[int] = mapped_column(Integer)


class TerminationRequest(Base):
    """The operator's first step of terminating a tenant (``tenants/termination.py``):
    a one-time confirmation token (its hash), valid for minutes; it goes with the tenant."""

    __tablename__ = "termination_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()


class PushSubscription(Base):
    """A browser or phone where a user turned on notifications (Web Push, RFC 8030/8291).

    ``endpoint`` is the push service's URL for this device; ``p256dh`` and
    ``auth`` (base64url) are the keys messages are encrypted to. Removed when
    the push service answers 404/410, or by the user.
    """

    __tablename__ = "push_subscriptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(1000), unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(100))
    device_name: Mapped[str] = mapped_column(String(100))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sent_at: Mapped[datetime | None] = mapped_column()
    failures: Mapped[int] = mapped_column(Integer, default=0)


class ServerSecret(Base):
    """A server-wide secret, created once and shared by every process of the database.

    ``playback.action``: the HMAC key of Playback's answer tokens
    (``playback/answers.py``). Kept here rather than in a file under the
    data directory so that every portal and job process, on any host, agrees.
    """

    __tablename__ = "server_secrets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))  # base64url, no padding
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallRoute(Base):
    """Where the B2BUA sends a call (SPEC 2, mode 2): set by the operator per tenant.

    An INVITE from source ``source_id`` whose Request-URI number (E.164) or
    user part starts with ``prefix`` goes to ``target`` (``sip:host:port;
    transport=udp|tcp|tls``); the longest prefix wins, "" matches any.
    """

    __tablename__ = "call_routes"
    __table_args__ = (UniqueConstraint("source_id", "prefix"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[int] = mapped_column(
        ForeignKey("recording_sources.id", ondelete="CASCADE"), index=True
    )
    prefix: Mapped[str] = mapped_column(String(32), default="")
    target: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))


class AnnouncementPrompt(Base):
    """A tenant's own announcement (``kind`` start or stop), replacing the shipped one.

    The upload is validated and converted to 8 kHz mono 16-bit WAV, stored as
    blob ``blob_key``; ``duration_ms`` and ``sha256`` describe the converted file.
    """

    __tablename__ = "announcement_prompts"
    __table_args__ = (UniqueConstraint("tenant_id", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # start | stop
    blob_key: Mapped[str] = mapped_column(String(255))
    duration_ms: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    original_name: Mapped[str | None] = mapped_column(String(200))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    uploaded_by: Mapped[str] = mapped_column(String(200))


class DirectoryVersion(Base):
    """One row (id 1): bumped by triggers with every change of the directory's tables
    (migration 0023), so every node reloads within a second (``roles/directory.py``)."""

    __tablename__ = "directory_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
