"""The Playback API's bodies: answers, the inbox, the home screen's list."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from callvault.playback.answers import TOKEN_MAX
from callvault.portal.api.schemas import Strict
from callvault.portal.timefmt import UtcDateTime

Mark = Literal["unsaved", "saved", "standard"]


class AnswerOut(BaseModel):
    recording_id: str
    answer: Literal["keep", "discard"]
    answered_at: UtcDateTime
    saved: bool
    expires_at: UtcDateTime | None = Field(description="keep: the plan's expiry; discard: null")
    audio_deleted: bool


class TokenAnswerIn(Strict):
    """A notification's Keep/Discard button: the token is the authority (no cookie)."""

    token: str = Field(min_length=1, max_length=TOKEN_MAX)
    answer: Literal["keep", "discard"]


class OtherParty(BaseModel):
    name: str | None
    number: str | None


class InboxItem(BaseModel):
    recording_id: str
    other_party: OtherParty
    started_at: UtcDateTime
    expires_at: UtcDateTime | None
    duration_ms: int


class InboxOut(BaseModel):
    count: int = Field(description="every open question, also beyond the items listed")
    items: list[InboxItem]


class HomeRecording(BaseModel):
    """One line of the home screen, with the manual's colour mark."""

    recording_id: str
    call_id: str
    user_id: int | None
    own: bool = Field(description="the caller's own recording (else a team member's)")
    mark: Mark = Field(description="unsaved: light blue; saved: dark blue; standard: teal")
    time_left_s: int | None = Field(description="unsaved: seconds until it is purged")
    other_party: OtherParty
    started_at: UtcDateTime
    expires_at: UtcDateTime | None
    duration_ms: int


class HomePage(BaseModel):
    items: list[HomeRecording]
    next_cursor: str | None
