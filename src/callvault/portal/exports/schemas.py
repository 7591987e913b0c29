"""The bodies of the bulk download API (SPEC 5)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from callvault.portal.api.schemas import Strict
from callvault.portal.auth import MAX_ID
from callvault.portal.timefmt import UtcDateTime

MailState = Literal["pending", "sent", "retrying", "failed", "not-sent"]


class ExportIn(Strict):
    month: str = Field(max_length=20, description="YYYY-MM in the organisation's time zone")
    user_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None, max_length=1000, description="only these users; leave out for everyone"
    )


class ExportFileOut(BaseModel):
    ordinal: int
    size_bytes: int
    sha256: str
    recordings: int
    url: str


class MailOut(BaseModel):
    state: MailState
    to: str | None = None
    reason: str | None = None


class ExportOut(BaseModel):
    id: str
    month: str
    user_ids: list[int] | None
    state: Literal["queued", "running", "ready", "failed", "expired"]
    error: str | None
    recordings: int
    bytes_total: int
    progress_done: int
    progress_total: int | None
    created_at: UtcDateTime
    ready_at: UtcDateTime | None
    expires_at: UtcDateTime | None
    files: list[ExportFileOut]
    mail: MailOut | None = Field(description="the link's e-mail, once the export is ready")
    page_url: str
