"""Playback's web app (SPEC section 6, issue 9): home screen, lists, notifications.

The portal installs on a phone like HIP's Recorder app: ``/manifest.webmanifest``
and the service worker ``/sw.js`` (scope ``/``, ``static/sw.js``) make it
installable; the worker shows the push question with Keep and Discard.

- ``/home``: the viewer's recordings, newest first, with the HIP manual's colour
  marks (light blue unsaved Playback with its time left, dark blue saved
  Playback, teal standard); swipe right or Keep keeps an unsaved one. The
  list is the API's (``GET /api/v1/me/recordings``), drawn by ``static/app.js``,
  so the page and the API cannot disagree; ``?mark=unsaved`` is the inbox.
- ``/lists``: the viewer's blacklist (never kept, never asked) and whitelist
  (always kept, never asked), kept through the contacts API the admin's user
  page uses too (``templates/_contact_lists.html``).
- ``/notifications``: push on this device, the subscribed devices, and "ask me
  by e-mail too" (``PATCH /api/v1/me``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.db.models import User, UserContact
from callvault.errors import ErrorId, NotFound
from callvault.portal.auth import SessionDep
from callvault.portal.pages.render import PageRoute, render
from callvault.portal.pages.viewer import ViewerDep, signed_in

STATIC: Final = Path(__file__).resolve().parent.parent / "static"
# the marks GET /api/v1/me/recordings filters by; anything else lists them all
MARKS: Final = ("unsaved", "saved", "standard")
LISTS: Final = ("blacklist", "whitelist")

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/sw.js")
def service_worker() -> FileResponse:
    """The worker from the site's root, so that its scope is the whole portal.

    ``no-cache``: the browser checks for a new worker on each visit (it does
    so at most daily otherwise), so a release reaches installed apps at once.
    """
    return FileResponse(
        STATIC / "sw.js",
        media_type="text/javascript",
        headers={"Service-Worker-Allowed": "/", "Cache-Control": "no-cache"},
    )


@router.get("/manifest.webmanifest")
def manifest() -> FileResponse:
    return FileResponse(
        STATIC / "manifest.webmanifest",
        media_type="application/manifest+json",
        headers={"Cache-Control": "no-cache"},
    )


_RECORDING_ID: Final = re.compile(r"[0-9a-f]{32}")


@router.get("/playback/{recording_id}", response_class=RedirectResponse)
def playback_question_page(recording_id: str) -> RedirectResponse:
    """The e-mailed question's link (``playback/ask.py``): the recording's page, which
    asks its own user to keep or discard it (and asks for a login first)."""
    if not _RECORDING_ID.fullmatch(recording_id):
        raise NotFound("no such recording", error_id=ErrorId.RECORDING_NOT_FOUND)
    return RedirectResponse(f"/recordings/{recording_id}", status_code=303)


@router.get("/home", response_class=HTMLResponse)
def home_page(request: Request, viewer: ViewerDep, mark: str = "") -> HTMLResponse:
    signed_in(viewer, "admin", "listener", "user")
    return render(
        request,
        viewer,
        "home.html",
        page="home",
        mark=mark if mark in MARKS else "",
        marks=MARKS,
    )


def contact_lists(session: Session, tenant_id: int, user_id: int) -> dict[str, list[UserContact]]:
    """A user's blacklist and whitelist, each in the order they were added."""
    lists: dict[str, list[UserContact]] = {name: [] for name in LISTS}
    for contact in session.scalars(
        select(UserContact)
        .where(UserContact.tenant_id == tenant_id, UserContact.user_id == user_id)
        .order_by(UserContact.id)
    ):
        lists.setdefault(contact.list, []).append(contact)
    return lists


def _own_user(session: Session, tenant_id: int | None, user_id: int | None) -> User:
    user = session.get(User, user_id) if user_id is not None else None
    if user is None or user.tenant_id != tenant_id:
        raise NotFound("no such user", error_id=ErrorId.USER_NOT_FOUND)
    return user


@router.get("/lists", response_class=HTMLResponse)
def lists_page(request: Request, viewer: ViewerDep, session: SessionDep) -> HTMLResponse:
    principal = signed_in(viewer, "admin", "listener", "user")
    user = _own_user(session, principal.tenant_id, principal.user_id)
    return render(
        request,
        viewer,
        "my_lists.html",
        page="lists",
        owner=user,
        contacts=contact_lists(session, user.tenant_id, user.id),
    )


@router.get("/notifications", response_class=HTMLResponse)
def notifications_page(request: Request, viewer: ViewerDep, session: SessionDep) -> HTMLResponse:
    principal = signed_in(viewer, "admin", "listener", "user")
    user = _own_user(session, principal.tenant_id, principal.user_id)
    return render(
        request,
        viewer,
        "devices.html",
        page="notifications",
        playback_email=user.playback_email,
        has_email=bool(user.email),
    )
