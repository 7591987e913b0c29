"""Error types shared by every layer, and their stable ids.

Two families, as in h11: a ``LocalProtocolError`` is our own bug or misuse of
an API (an illegal state transition); a ``RemoteProtocolError`` is bad input
from a peer and carries the SIP status to answer with. HTTP errors carry a
stable ``error_id`` that clients may rely on; the mapping lives here only.
"""

from __future__ import annotations


class LocalProtocolError(Exception):
    """We tried to do something the protocol forbids in the current state."""


class RemoteProtocolError(Exception):
    """The peer sent something we cannot accept.

    ``status`` is the SIP status code to answer with (400, 481, 488, ...);
    ``warning`` is the text for a ``Warning: 399`` header, when useful.
    """

    def __init__(self, message: str, status: int = 400, warning: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.warning = warning

    @property
    def reason(self) -> str:
        return str(self)


class ApiError(Exception):
    """An error answered over HTTP with a stable machine id."""

    status = 400
    error_id = "bad-request"

    def __init__(self, message: str, *, error_id: str | None = None, status: int | None = None):
        super().__init__(message)
        if error_id is not None:
            self.error_id = error_id
        if status is not None:
            self.status = status


class NotFound(ApiError):
    status = 404
    error_id = "not-found"


class Forbidden(ApiError):
    status = 403
    error_id = "forbidden"


class Unauthorized(ApiError):
    status = 401
    error_id = "unauthorized"


class Conflict(ApiError):
    status = 409
    error_id = "conflict"


class InvalidInput(ApiError):
    status = 422
    error_id = "invalid-input"
