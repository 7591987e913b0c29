"""Request and response bodies of the REST API (pydantic)."""

from __future__ import annotations

import re
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from callvault.portal.timefmt import DEFAULT_TIMEZONE, TimezoneName, UtcDateTime
from callvault.tenants.claims import normalise_block
from callvault.tenants.numbers import normalise_aor, normalise_number

_DOMAIN = r"^[A-Za-z0-9]([A-Za-z0-9\-\.]{0,251}[A-Za-z0-9])?$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    domains: list[str] = Field(default_factory=list, max_length=100)
    numbers: list[str] = Field(default_factory=list, max_length=1000)
    blocks: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="number blocks: the common digits and a star, e.g. +31201234*",
    )
    country_code: str = Field(default="31", pattern=r"^[1-9][0-9]{0,3}$")
    timezone: TimezoneName = Field(default=DEFAULT_TIMEZONE, max_length=64)

    @field_validator("domains")
    @classmethod
    def check_domains(cls, value: list[str]) -> list[str]:
        out = []
        for domain in value:
            if not re.match(_DOMAIN, domain):
                raise ValueError(f"{domain!r} is not a domain name")
            out.append(domain.lower())
        if len(set(out)) != len(out):
            raise ValueError("domains repeat")
        return out

    @field_validator("numbers")
    @classmethod
    def check_numbers(cls, value: list[str]) -> list[str]:
        out = [normalise_number(n) for n in value]
        if len(set(out)) != len(out):
            raise ValueError("numbers repeat")
        return out

    @field_validator("blocks")
    @classmethod
    def check_blocks(cls, value: list[str]) -> list[str]:
        out = [normalise_block(b) for b in value]
        if len(set(out)) != len(out):
            raise ValueError("blocks repeat")
        return out


class TenantOut(BaseModel):
    id: int
    name: str
    domains: list[str]
    numbers: list[str]
    blocks: list[str] = Field(description="number blocks, e.g. +31201234*")
    country_code: str
    suspended: bool
    created_at: UtcDateTime
    timezone: str = DEFAULT_TIMEZONE


class UserIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    extension: str | None = Field(default=None, pattern=r"^[0-9*#]{1,16}$")
    numbers: list[str] = Field(default_factory=list, max_length=50)
    aors: list[str] = Field(default_factory=list, max_length=50)
    role: Literal["admin", "listener", "user"] = "user"
    email: str | None = Field(default=None, max_length=320)
    recorded: bool = False

    @field_validator("numbers")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        return [normalise_number(n) for n in value]

    @field_validator("aors")
    @classmethod
    def _aors(cls, value: list[str]) -> list[str]:
        return [normalise_aor(a) for a in value]


class UserPatchIn(Strict):
    active: bool | None = Field(default=None, description="false: the user can no longer log in")
    role: Literal["admin", "listener", "user"] | None = None
    can_coach: bool | None = Field(
        default=None,
        description="silent coaching (*98*<extension>, LiveCenter): admins and listeners only,"
        " where the operator enabled coaching",
    )


class UserOut(BaseModel):
    id: int
    tenant_id: int
    name: str
    extension: str | None
    numbers: list[str]
    aors: list[str]
    role: str
    email: str | None
    recorded: bool
    recording_mode: str
    active: bool = True
    can_coach: bool = False


class TokenOut(BaseModel):
    token: str


class PartyOut(BaseModel):
    participant_id: str
    aor: str | None
    name: str | None
    number: str | None
    user_id: int | None
    side: str
    joined_ms: int
    left_ms: int | None


class CallOut(BaseModel):
    id: str
    tenant_id: int
    direction: str
    from_name: str | None
    from_number: str | None
    from_aor: str | None
    to_name: str | None
    to_number: str | None
    to_aor: str | None
    started_at: UtcDateTime
    answered_at: UtcDateTime | None
    ended_at: UtcDateTime | None
    duration_ms: int
    recording_ids: list[str]


class SegmentOut(BaseModel):
    call_start_ms: int
    call_end_ms: int
    file_start_ms: int
    file_end_ms: int


class DtmfOut(BaseModel):
    stream_index: int
    digit: str
    at_ms: int
    duration_ms: int
    source: str


class RecordingOut(BaseModel):
    id: str
    tenant_id: int
    call_id: str
    user_id: int | None
    format: str
    sha256: str
    size_bytes: int
    duration_ms: int
    channels: int
    sample_rate: int
    codecs: list[str]
    started_at: UtcDateTime
    answered_at: UtcDateTime | None
    ended_at: UtcDateTime | None
    created_at: UtcDateTime
    parties: list[PartyOut]
    segments: list[SegmentOut]
    dtmf: list[DtmfOut]
    audio_url: str
    mode: str | None
    saved: bool
    kept_reason: str | None
    expires_at: UtcDateTime | None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class ErrorBody(BaseModel):
    id: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody
