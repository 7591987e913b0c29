"""Login, logout, the language switch and the start page."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import delete

from callvault.db.models import User, WebSession
from callvault.errors import Forbidden, InvalidInput
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


def safe_next(value: str | None, fallback: str = "/") -> str:
    """Only a local path: no scheme, no host, no protocol-relative ``//``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return fallback
    return value


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body())[:16384].decode("utf-8", errors="replace")
    return {key: values[0] for key, values in parse_qs(body).items()}


@router.get("/")
def home(viewer: ViewerDep) -> Response:
    if viewer.principal is None:
        return RedirectResponse("/login", status_code=303)
    if viewer.principal.is_operator:
        return RedirectResponse("/operator/tenants", status_code=303)
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
            raise Forbidden("the form is out of date; reload the page", error_id="csrf")
        token = request.cookies.get(SESSION_COOKIE, "")
        session.execute(
            delete(WebSession).where(
                WebSession.token_hash == hashlib.sha256(token.encode()).hexdigest()
            )
        )
        session.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/language")
async def switch_language(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    """A user's own language (stored with the user); anonymous visitors get a cookie."""
    form = await _form(request)
    language = form.get("language", "")
    if not is_language(language):
        raise InvalidInput("unknown language", error_id="invalid-input")
    principal = viewer.principal
    if principal is not None:
        if not csrf_matches(viewer, form.get("csrf_token")):
            raise Forbidden("the form is out of date; reload the page", error_id="csrf")
        if principal.user_id is not None:
            user = session.get(User, principal.user_id)
            if user is not None and user.tenant_id == principal.tenant_id:
                user.language = language
                session.commit()
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    response.set_cookie(LANGUAGE_COOKIE, language, max_age=_YEAR, samesite="lax", path="/")
    return response
