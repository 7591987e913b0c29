"""The bodies of LiveCenter's API (SPEC section 7)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from callvault.live.board import LiveCallView, LiveState
from callvault.portal.api.schemas import Strict
from callvault.portal.timefmt import UtcDateTime


class RecordNowIn(Strict):
    on: bool


class LivePartyOut(BaseModel):
    aor: str | None
    name: str | None
    number: str | None
    user_id: int | None
    side: Literal["user", "other"]


class PresenceOut(BaseModel):
    user_id: int
    name: str
    kind: Literal["listen", "coach"]
    since: UtcDateTime


class LiveCallOut(BaseModel):
    id: str
    parties: list[LivePartyOut]
    started_at: UtcDateTime
    answered_at: UtcDateTime | None
    state: LiveState
    modes: dict[str, str]  # recorded user id -> recording mode (the tenant's own users)
    bridged: bool
    record_now: bool
    presences: list[PresenceOut]


def call_out(view: LiveCallView) -> LiveCallOut:
    return LiveCallOut(
        id=view.id,
        parties=[
            LivePartyOut(aor=p.aor, name=p.name, number=p.number, user_id=p.user_id, side=p.side)
            for p in view.parties
        ],
        started_at=view.started_at,
        answered_at=view.answered_at,
        state=view.state,
        modes={str(user): mode for user, mode in view.modes.items()},
        bridged=view.bridged,
        record_now=view.record_now,
        presences=[
            PresenceOut(user_id=p.user_id, name=p.name, kind=p.kind, since=p.since)
            for p in view.presences
        ],
    )
