"""The bodies of the announcements API (SPEC 3, B2BUA mode)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from callvault.portal.timefmt import UtcDateTime


class PromptOut(BaseModel):
    kind: Literal["start", "stop"]
    custom: bool = Field(description="the tenant's own upload; false: the shipped prompt plays")
    duration_ms: int
    language: str | None = Field(
        description="the shipped prompt's language (the tenant's); null for an upload"
    )
    original_name: str | None = Field(description="the uploaded file's name")
    sha256: str | None = Field(description="of the stored 8 kHz WAV")
    uploaded_at: UtcDateTime | None
    uploaded_by: str | None = Field(description="who uploaded it (user:<id> or operator:<id>)")
    audio_url: str = Field(description="the WAV to listen to (GET, same credentials)")
