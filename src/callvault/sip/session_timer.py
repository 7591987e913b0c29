"""Session timers for the UAS side (RFC 4028 sections 9 and 10).

``SessionTimer`` is a pure class: feed it each session-refreshing request
(INVITE, re-INVITE, UPDATE) with a timestamp; it returns the headers for our
2xx, or raises ``SessionIntervalTooSmall`` (answer 422 with its Min-SE), and
tells when the session expires if no refresh arrives.

``max_interval`` is a ceiling (per recording source): a request asking for
more is answered with the ceiling, as section 9 lets the UAS reduce the
interval in its 2xx, but never below the request's Min-SE (or 90 s without
one), so a Min-SE above the ceiling wins over it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sipmessage import Request

from callvault.errors import RemoteProtocolError

__all__ = ["MIN_SE_FLOOR", "SessionIntervalTooSmall", "SessionTimer"]

MIN_SE_FLOOR = 90  # RFC 4028 section 4: no Min-SE below 90 s

logger = logging.getLogger(__name__)

_SESSION_EXPIRES = re.compile(r"(\d{1,9})\s*(?:;(.*))?")


class SessionIntervalTooSmall(RemoteProtocolError):
    """422: the requested interval is below our Min-SE (RFC 4028 section 9)."""

    def __init__(self, requested: int, min_se: int) -> None:
        super().__init__(f"Session interval {requested}s is below Min-SE {min_se}s", 422)
        self.min_se = min_se

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [("Min-SE", str(self.min_se))]


def _parse_session_expires(value: str) -> tuple[int, str | None]:
    m = _SESSION_EXPIRES.fullmatch(value.strip())
    if m is None:
        raise RemoteProtocolError(f"Malformed Session-Expires {value[:40]!r}")
    refresher = None
    for param in (m.group(2) or "").split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "refresher":
            refresher = val.strip().lower()
            if refresher not in ("uac", "uas"):
                raise RemoteProtocolError(f"Bad refresher {refresher!r}")
    return int(m.group(1)), refresher


@dataclass
class SessionTimer:
    """Negotiated session interval and refresher for one dialog (UAS role)."""

    min_se: int = MIN_SE_FLOOR
    default_interval: int = 1800
    max_interval: int | None = None  # ceiling on what a peer may ask for
    interval: int | None = None
    refresher: str | None = None  # "uac" or "uas"
    last_refresh: float | None = None

    def __post_init__(self) -> None:
        if self.min_se < MIN_SE_FLOOR:
            raise ValueError(f"min_se must be at least {MIN_SE_FLOOR}")
        if self.max_interval is not None and self.max_interval < self.min_se:
            raise ValueError(f"max_interval {self.max_interval} is below min_se {self.min_se}")

    def _within_ceiling(self, interval: int, peer_min: int) -> int:
        """Reduce to the ceiling, but never below the request's Min-SE or 90 s (section 9)."""
        if self.max_interval is None or interval <= self.max_interval:
            return interval
        return max(self.max_interval, peer_min, MIN_SE_FLOOR)

    def negotiate(self, request: Request, now: float) -> list[tuple[str, str]]:
        """Process a session-refreshing request; return headers for our 2xx.

        Raises ``SessionIntervalTooSmall`` (422) or ``RemoteProtocolError`` (400).
        """
        se_value = request.headers.get("Session-Expires")
        supported = "timer" in (token.lower() for token in request.supported)
        peer_min_value = request.headers.get("Min-SE")
        peer_min = 0
        if peer_min_value is not None:
            if not peer_min_value.strip().isdigit():
                raise RemoteProtocolError("Malformed Min-SE header")
            peer_min = int(peer_min_value.strip())
        if se_value is None:
            if not supported:  # neither side asks for a session timer
                self.interval = self.refresher = None
                self.last_refresh = now
                return []
            interval = max(self.default_interval, self.min_se, peer_min)
            interval, refresher = self._within_ceiling(interval, peer_min), "uac"
        else:
            interval, wanted = _parse_session_expires(se_value)
            if interval < self.min_se:
                raise SessionIntervalTooSmall(interval, self.min_se)
            interval = self._within_ceiling(interval, peer_min)
            # A UAC without timer support cannot refresh: we must (section 9).
            refresher = (wanted or "uac") if supported else "uas"
        self.interval, self.refresher, self.last_refresh = interval, refresher, now
        logger.debug("session timer: %ss, refresher=%s", interval, refresher)
        headers = [("Session-Expires", f"{interval};refresher={refresher}")]
        if supported:
            headers.append(("Require", "timer"))
        return headers

    def refresh(self, now: float) -> None:
        """A refresh (re-INVITE/UPDATE answered 2xx) happened at ``now``."""
        self.last_refresh = now

    def expires_at(self, now: float) -> float | None:
        """When to give up on the session (BYE) absent a refresh (section 10).

        The deadline is the interval minus min(32, interval/3) after the last
        refresh (``now`` if none was recorded); None when no timer is active.
        """
        if self.interval is None:
            return None
        base = self.last_refresh if self.last_refresh is not None else now
        return base + self.interval - min(32.0, self.interval / 3)

    def refresh_due_at(self) -> float | None:
        """When we must send a refresh ourselves (refresher=uas), else None."""
        if self.interval is None or self.refresher != "uas" or self.last_refresh is None:
            return None
        return self.last_refresh + self.interval / 2
