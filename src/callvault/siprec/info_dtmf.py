"""DTMF carried in SIP INFO bodies: ``application/dtmf-relay`` and ``application/dtmf``.

``application/dtmf-relay`` (Cisco/BroadWorks style)::

    Signal=5
    Duration=160

``application/dtmf`` carries the key alone. Duration is in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from callvault.errors import RemoteProtocolError

KEYS = frozenset("0123456789*#ABCD")
DEFAULT_DURATION_MS = 100


@dataclass(frozen=True)
class InfoDigit:
    digit: str
    duration_ms: int


def parse_info_dtmf(content_type: str | None, body: bytes) -> InfoDigit | None:
    """The digit of an INFO body, None when the body is not DTMF at all."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in ("application/dtmf-relay", "application/dtmf"):
        return None
    if len(body) > 1024:
        raise RemoteProtocolError("DTMF INFO body is too large", 413)
    try:
        text = body.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError("DTMF INFO body is not ASCII") from exc
    if media == "application/dtmf":
        return _digit(text, DEFAULT_DURATION_MS)
    fields: dict[str, str] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        name, sep, value = line.partition("=")
        if sep:
            fields[name.strip().lower()] = value.strip()
    if "signal" not in fields:
        raise RemoteProtocolError("dtmf-relay body has no Signal= line")
    duration = fields.get("duration", str(DEFAULT_DURATION_MS))
    if not duration.isdigit() or int(duration) > 60000:
        raise RemoteProtocolError(f"dtmf-relay Duration {duration!r} is not a number of ms")
    return _digit(fields["signal"], int(duration))


def _digit(text: str, duration_ms: int) -> InfoDigit:
    key = text.upper()
    if key == "10":  # some devices send the event code of '*' / '#'
        key = "*"
    elif key == "11":
        key = "#"
    if key not in KEYS:
        raise RemoteProtocolError(f"{text!r} is not a DTMF key")
    return InfoDigit(key, duration_ms)
