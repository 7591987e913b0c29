"""A recording source's limits (SPEC section 2) and the bounds an operator may set.

No imports beyond the standard library: the CLI reads the defaults at start.
"""

from __future__ import annotations

from dataclasses import dataclass

# bounds the API and the CLI accept for each limit (RFC 4028: Min-SE is at least 90 s)
LIMIT_BOUNDS: dict[str, tuple[int, int]] = {
    "max_calls": (1, 100_000),
    "max_streams": (1, 1_000_000),
    "max_media_lines": (1, 64),
    "max_session_expires_s": (90, 86_400),
}


@dataclass(frozen=True)
class SourceLimits:
    max_calls: int = 200  # SIPREC sessions open at once
    max_streams: int = 400  # m-lines open at once, over all its calls
    max_media_lines: int = 4  # m-lines in one offer
    max_session_expires_s: int = 3600  # ceiling on RFC 4028 Session-Expires

    def session_expires(self, requested: int | None) -> int:
        """The Session-Expires to grant: the request's, never above the ceiling."""
        if requested is None or requested <= 0:
            return self.max_session_expires_s
        return min(requested, self.max_session_expires_s)

    def media_lines_allowed(self, count: int) -> bool:
        return count <= self.max_media_lines
