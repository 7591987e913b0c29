"""Per-user recording modes and the tenant's short code (SPEC section 3).

A user's mode decides what of a call is recorded; the short code is what the
user presses during a call to start, stop, pause or keep a recording,
depending on the mode. It takes one of two forms:

* ``*`` followed by one digit (default ``*1``), as in the Dutch manuals;
* a single key (``0``-``9``, ``*`` or ``#``), as in the German manual's
  "DTMF-Taste", picked from a keypad: every press of that key is one press
  of the code. With the single key ``*`` every ``*`` is the code, so the two
  forms never overlap.
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

DIGITS = "0123456789"
SINGLE_KEYS = DIGITS + "*#"
"""The keys a single-key code may be: a phone keypad's twelve (A-D are no keypad's)."""

ALLOWED_FORMS = "one key (0-9, * or #) or * followed by one digit, e.g. 5 or *1"
"""The allowed forms, in the words every refusal uses."""


class InvalidShortCode(ValueError):
    """A short code that is neither a single key nor ``*`` followed by one digit."""


@dataclass(frozen=True, slots=True)
class ShortCode:
    """The in-call code: ``*`` then ``key`` (a digit), or ``key`` alone when ``single``.

    ``ShortCode("1")`` is ``*1``; ``ShortCode("5", single=True)`` is the key 5,
    ``ShortCode("*", single=True)`` the key ``*``.
    """

    key: str = "1"
    single: bool = False

    def __post_init__(self) -> None:
        allowed = SINGLE_KEYS if self.single else DIGITS
        if len(self.key) != 1 or self.key not in allowed:
            what = (
                "a single key must be one of 0-9, * or #"
                if self.single
                else "the digit after * must be one of 0-9"
            )
            raise InvalidShortCode(f"{what}; got {self.key!r}")

    @classmethod
    def parse(cls, text: str) -> ShortCode:
        """``"*1"`` -> ``*1``; ``"5"``, ``"*"``, ``"#"`` -> that single key.

        Anything else raises ``InvalidShortCode`` naming the allowed forms and
        the input. This is the one place a stored or submitted code is checked.
        """
        if len(text) == 1 and text in SINGLE_KEYS:
            return cls(text, single=True)
        if len(text) == 2 and text[0] == "*" and text[1] in DIGITS:
            return cls(text[1])
        shown = text if len(text) <= 8 else text[:8] + "…"  # the message never echoes a flood
        raise InvalidShortCode(f"the short code must be {ALLOWED_FORMS}; got {shown!r}")

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys pressed, in order: ``("*", "1")`` or ``("5",)``."""
        return (self.key,) if self.single else ("*", self.key)

    def __str__(self) -> str:
        return "".join(self.keys)


DEFAULT_SHORT_CODE = ShortCode("1")
