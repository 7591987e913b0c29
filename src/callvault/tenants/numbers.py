"""Phone numbers and SIP addresses in the forms that parties are matched by."""

from __future__ import annotations

import re

_DIALABLE = re.compile(r"^\+?[0-9]{2,20}$")
_SEPARATORS = re.compile(r"[\s\-().]")


def to_e164(raw: str, country_code: str) -> str | None:
    """Return ``raw`` in E.164 (``+31201234567``) or None when it is not a number.

    Accepts ``+31 20 ...``, ``0031...`` and national ``020...`` (with the
    tenant's country code). Short numbers (extensions) are not E.164: None.
    """
    text = _SEPARATORS.sub("", raw)
    if text.startswith("tel:"):
        text = text[4:]
    if not _DIALABLE.match(text):
        return None
    if text.startswith("+"):
        return text if len(text) >= 8 else None
    if text.startswith("00"):
        return "+" + text[2:] if len(text) >= 9 else None
    if text.startswith("0") and len(text) >= 9:
        return f"+{country_code}{text[1:]}"
    if len(text) >= 10 and text.startswith(country_code):
        return "+" + text
    return None


def normalise_number(raw: str) -> str:
    """Normalise a number given by an admin; E.164 with the leading plus required."""
    text = _SEPARATORS.sub("", raw)
    if text.startswith("00"):
        text = "+" + text[2:]
    if not re.fullmatch(r"\+[1-9][0-9]{6,14}", text):
        raise ValueError(f"{raw!r} is not a phone number in E.164 form (+<country><number>)")
    return text


def split_aor(aor: str) -> tuple[str, str]:
    """``sip:alice@Example.com;transport=tcp`` -> ``("alice", "example.com")``."""
    text = aor.strip().strip("<>")
    for scheme in ("sips:", "sip:", "tel:"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
            break
    text = text.split(";", 1)[0].split("?", 1)[0]
    user, _, host = text.rpartition("@")
    if not _:
        return text, ""
    host = host.split(":", 1)[0].lower()
    return user, host


def normalise_aor(aor: str) -> str:
    user, host = split_aor(aor)
    if not user or not host:
        raise ValueError(f"{aor!r} is not an address of record (user@host)")
    return f"{user}@{host}"
