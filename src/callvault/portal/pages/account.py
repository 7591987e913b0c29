"""Login, logout, the language switch and the start page."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, unquote, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import delete
from starlette.concurrency import run_in_threadpool

from callvault.db.models import User, WebSession
from callvault.errors import ErrorId, Forbidden, InvalidInput
from callvault.portal.auth import SessionDep
from callvault.portal.i18n import is_language
from callvault.portal.pages.render import PageRoute, render
from callvault.portal.pages.viewer import (
    LANGUAGE_COOKIE,
    SESSION_COOKIE,
    ViewerDep,
    csrf_matches,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

_YEAR = 365 * 24 * 3600


_MAX_NEXT = 2000


def safe_next(value: str | None, fallback: str = "/") -> str:
    """``value`` when it is a path on this site, else ``fallback`` (no open redirect).

    Browsers forgive a lot: they drop tabs and newlines anywhere in a URL, read
    ``\\`` as ``/`` and ``//host`` as another site. So a target must be one
    ``/`` followed by no ``/`` or ``\\``, contain no control character, space or
    backslash at all, and stay so once percent-decoded (``/%2f%2fhost``); and it
    must parse without a scheme or a host.
    """
    if not value or len(value) > _MAX_NEXT:
        return fallback
    decoded = value
    for _ in range(3):  # %252f%252f decodes twice to //
        if not _local_path(decoded):
            return fallback
        decoded, previous = unquote(decoded), decoded
        if decoded == previous:
            break
    else:
        return fallback  # still decoding after three rounds: not a link anyone means
    return value


def _local_path(value: str) -> bool:
    if not value.startswith("/") or value[1:2] in ("/", "\\"):
        return False
    if any(ch.isspace() or ch == "\\" or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in value):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body())[:16384].decode("utf-8", errors="replace")
    return {key: values[0] for key, values in parse_qs(body).items()}


@router.get("/")
def home(viewer: ViewerDep) -> Response:
    if viewer.principal is None:
        return RedirectResponse("/login", status_code=303)
    if viewer.principal.is_operator:
        return RedirectResponse("/operator/tenants", status_code=303)
    if viewer.principal.role == "user":  # the installed app's start: the recordings (SPEC 6)
        return RedirectResponse("/home", status_code=303)
    return RedirectResponse("/reports/calls", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, viewer: ViewerDep, next: str | None = None) -> Response:
    target = safe_next(next)
    if viewer.principal is not None:
        return RedirectResponse(target, status_code=303)
    return render(request, viewer, "login.html", page="login", next=target)


@router.post("/logout")
async def logout(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    form = await _form(request)
    if viewer.principal is not None:
        if not csrf_matches(viewer, form.get("csrf_token")):
            raise Forbidden(
                "the form is out of date; reload the page", error_id=ErrorId.CSRF_FAILED
            )
        token = request.cookies.get(SESSION_COOKIE, "")

        def end_session() -> None:  # database work off the event loop (issue 13)
            session.execute(
                delete(WebSession).where(
                    WebSession.token_hash == hashlib.sha256(token.encode()).hexdigest()
                )
            )
            session.commit()

        await run_in_threadpool(end_session)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/language")
async def switch_language(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    """A user's own language (stored with the user); anonymous visitors get a cookie."""
    form = await _form(request)
    language = form.get("language", "")
    if not is_language(language):
        raise InvalidInput("unknown language", error_id=ErrorId.INVALID_INPUT)
    principal = viewer.principal
    if principal is not None:
        if not csrf_matches(viewer, form.get("csrf_token")):
            raise Forbidden(
                "the form is out of date; reload the page", error_id=ErrorId.CSRF_FAILED
            )
        if principal.user_id is not None:
            user_id, tenant_id = principal.user_id, principal.tenant_id

            def store() -> None:  # database work off the event loop (issue 13)
                user = session.get(User, user_id)
                if user is not None and user.tenant_id == tenant_id:
                    user.language = language
                    session.commit()

            await run_in_threadpool(store)
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    response.set_cookie(LANGUAGE_COOKIE, language, max_age=_YEAR, samesite="lax", path="/")
    return response
