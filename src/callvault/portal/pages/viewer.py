"""Who is looking at a page: the portal login behind the ``cv_session`` cookie.

The pages use the same principal as the JSON API (``auth.optional_principal``)
so that a page never shows what the API would refuse; the page language is the
user's, else the tenant's (operators and visitors: the ``cv_lang`` cookie or
the browser's Accept-Language).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from callvault.db.models import Tenant, User
from callvault.errors import ErrorId, Forbidden
from callvault.portal.auth import (
    Principal,
    Role,
    SessionDep,
    optional_principal,
    session_csrf,
)
from callvault.portal.i18n import Language, choose_language, from_accept_language

SESSION_COOKIE = "cv_session"
LANGUAGE_COOKIE = "cv_lang"


class LoginRequired(Exception):
    """Nobody is logged in: send the browser to the login page, then back."""


@dataclass(frozen=True)
class Viewer:
    """The principal (or nobody), the page language and the CSRF token for scripts."""

    principal: Principal | None
    language: Language
    csrf_token: str | None
    tenant_name: str | None = None
    stream_only: bool = False

    @property
    def role(self) -> Role | None:
        return self.principal.role if self.principal else None

    @property
    def is_admin(self) -> bool:
        return self.role in ("admin", "operator")


def resolve_principal(request: Request, session: Session) -> Principal | None:
    return optional_principal(request, session)


def resolve_csrf(request: Request, session: Session) -> str | None:
    return session_csrf(request, session)


def csrf_matches(viewer: Viewer, submitted: str | None) -> bool:
    return bool(
        viewer.csrf_token
        and submitted
        and hmac.compare_digest(viewer.csrf_token.encode(), submitted.encode())
    )


def current_viewer(request: Request, session: SessionDep) -> Viewer:
    principal = resolve_principal(request, session)
    cookie_language = request.cookies.get(LANGUAGE_COOKIE)
    accept = from_accept_language(request.headers.get("accept-language"))
    if principal is None:
        return Viewer(None, choose_language(cookie_language, accept), None)
    csrf = resolve_csrf(request, session)
    if principal.is_operator:
        return Viewer(principal, choose_language(cookie_language, accept, "en"), csrf)
    user = session.get(User, principal.user_id) if principal.user_id is not None else None
    tenant = session.get(Tenant, principal.tenant_id) if principal.tenant_id is not None else None
    language = choose_language(
        getattr(principal, "language", None),
        user.language if user else None,
        tenant.language if tenant else None,
    )
    return Viewer(
        principal,
        language,
        csrf,
        tenant_name=tenant.name if tenant else None,
        stream_only=bool(tenant.stream_only) if tenant else False,
    )


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def signed_in(viewer: Viewer, *roles: Role) -> Principal:
    """The viewer's principal; login first when anonymous, 403 without one of ``roles``."""
    if viewer.principal is None:
        raise LoginRequired()
    if roles and viewer.principal.role not in roles:
        raise Forbidden(
            f"this page needs the role {' or '.join(roles)}", error_id=ErrorId.ROLE_REQUIRED
        )
    return viewer.principal
