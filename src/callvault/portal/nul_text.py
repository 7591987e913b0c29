"""Refuses text with a NUL character (U+0000) in a request: 422 ``invalid-input``.

PostgreSQL's text columns cannot hold NUL (SPEC section 10: PostgreSQL is a
supported engine), so such a string reached the database as a server error,
and SQLite would have stored it. No field of the API or the pages has a use
for it, so one check at the door answers the same on both engines: the path,
the query string and the text of JSON or form bodies. Other bodies (audio
uploads) are bytes, not text, and pass untouched.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callvault.errors import ErrorId

NUL = "\x00"
MESSAGE = "text may not contain the NUL character (U+0000)"
_TEXT_BODIES = ("application/json", "application/x-www-form-urlencoded")


def has_nul(value: Any) -> bool:
    """Whether a decoded JSON value holds NUL in any string, key or value, at any depth."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(item) for item in value)
    return False


def _body_has_nul(content_type: str, body: bytes) -> bool:
    if content_type.startswith("application/x-www-form-urlencoded"):
        text = body.decode("latin-1")
        return any(NUL in k or NUL in v for k, v in parse_qsl(text, keep_blank_values=True))
    if b"u0000" not in body.lower():  # JSON spells NUL \u0000; cheap test first
        return False
    try:
        return has_nul(json.loads(body))
    except ValueError:  # not JSON: the route's own validation answers
        return False


class RefuseNulText:
    """ASGI middleware: 422 for a request whose text holds NUL (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = unquote(scope.get("query_string", b"").decode("latin-1"))
        if NUL in scope["path"] or NUL in query:
            await self._refuse(scope, receive, send)
            return
        content_type = Headers(scope=scope).get("content-type", "").lower().lstrip()
        if not content_type.startswith(_TEXT_BODIES):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        while True:  # the whole text body: JSON and forms are small
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        if _body_has_nul(content_type, body):
            await self._refuse(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
        error = ErrorId.INVALID_INPUT
        body = {"error": {"id": error, "message": MESSAGE}}
        await JSONResponse(body, status_code=error.status)(scope, receive, send)
