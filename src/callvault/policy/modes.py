"""Per-user recording modes and the tenant's short code (SPEC section 3).

A user's mode decides what of a call is recorded; the short code (``*`` and
one digit, default ``*1``) is what the user presses during a call to start,
stop, pause or keep a recording, depending on the mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Mode(StrEnum):
    """The six recording modes of SPEC section 3."""

    NEVER = "never"
    ALWAYS = "always"
    ALWAYS_PAUSE = "always_pause"  # "altijd met pauze": the code pauses and resumes
    ON_DEMAND_KEEP = "on_demand_keep"  # "op verzoek": captured, kept only if asked
    ON_DEMAND_USER = "on_demand_user"  # "op verzoek met start door gebruiker"
    PLAYBACK = "playback"  # personal recorder, SPEC section 6


DEFAULT_MODE = Mode.ON_DEMAND_USER
"""The mode of a user newly added to the recording list."""


class InvalidShortCode(ValueError):
    """A short code that is not ``*`` followed by one digit."""


@dataclass(frozen=True, slots=True)
class ShortCode:
    """The in-call code: ``*`` then ``digit`` (one of 0-9)."""

    digit: str = "1"

    def __post_init__(self) -> None:
        if len(self.digit) != 1 or self.digit not in "0123456789":
            raise InvalidShortCode(f"the short code's digit must be one of 0-9; got {self.digit!r}")

    @classmethod
    def parse(cls, text: str) -> ShortCode:
        """``"*1"`` -> ``ShortCode("1")``; anything else raises ``InvalidShortCode``."""
        if len(text) == 2 and text[0] == "*" and text[1] in "0123456789":
            return cls(text[1])
        raise InvalidShortCode(
            f"the short code must be * followed by one digit, e.g. *1; got {text!r}"
        )

    def __str__(self) -> str:
        return f"*{self.digit}"


DEFAULT_SHORT_CODE = ShortCode("1")
