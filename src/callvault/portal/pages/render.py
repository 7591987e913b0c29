"""Rendering pages: one Jinja2 environment, the frame's context, HTML errors.

Pages raise ``LoginRequired`` (303 to the login page) or the API's own
errors (``NotFound``, ``Forbidden``); ``PageRoute`` turns them into pages in
the viewer's language, so a foreign id looks the same as a missing one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from callvault.errors import ApiError
from callvault.portal.i18n import (
    LANGUAGE_NAMES,
    LANGUAGES,
    Language,
    catalogue,
    choose_language,
    from_accept_language,
    translate,
)
from callvault.portal.pages.viewer import LANGUAGE_COOKIE, LoginRequired, Viewer, current_viewer

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _clock(value: datetime | None) -> str:
    if value is None:
        return "–"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(ms: int | None) -> str:
    seconds = (ms or 0) // 1000
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _seconds(ms: int | None) -> str:
    return f"{(ms or 0) / 1000:.1f} s"


def _json(value: Any) -> Markup:
    # safe inside <script type="application/json">: no "</" can close the element
    return Markup(json.dumps(value, default=str).replace("</", "<\\/"))


_env.filters["clock"] = _clock
_env.filters["duration"] = _duration
_env.filters["seconds"] = _seconds
_env.filters["tojson_safe"] = _json


def render(
    request: Request,
    viewer: Viewer,
    template: str,
    *,
    status: int = 200,
    page: str = "",
    **context: Any,
) -> HTMLResponse:
    language: Language = viewer.language

    def t(key: str) -> str:
        return translate(language, key)

    html = _env.get_template(template).render(
        t=t,
        viewer=viewer,
        lang=language,
        languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        messages=catalogue(language),
        path=request.url.path,
        here=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
        page=page,
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _viewer_or_nobody(request: Request) -> Viewer:
    """The viewer for an error page; nobody when even that fails (a suspended tenant)."""
    with request.app.state.context.sessions() as session:
        try:
            return current_viewer(request, session)
        except ApiError:
            language = choose_language(
                request.cookies.get(LANGUAGE_COOKIE),
                from_accept_language(request.headers.get("accept-language")),
            )
            return Viewer(None, language, None)


def login_redirect(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)


class PageRoute(APIRoute):
    """A page route: login and API errors become a redirect or an HTML error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                return login_redirect(request)
            except ApiError as exc:
                if exc.status == 401:
                    return login_redirect(request)
                status = exc.status if exc.status in (403, 404, 410) else 404
                viewer = _viewer_or_nobody(request)
                kind = "403" if status == 403 else "404"
                return render(request, viewer, "error.html", status=status, kind=kind)

        return page_handler
