"""The portal's server-rendered pages (SPEC section 9).

Pages read through the same functions as the JSON API and act through the
JSON API from the browser (``static/portal.js``), with the session's CSRF
token; nothing is loaded from outside the server.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from callvault.portal.pages import (
    account,
    admin,
    recordings,
    reports,
    settings,
    usage,
    users,
)

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)
for _module in (account, settings, reports, recordings, admin, users, usage):
    router.include_router(_module.router)
