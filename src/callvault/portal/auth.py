"""Who is calling: bearer tokens and portal session cookies resolved to a ``Principal``.

Machines send ``Authorization: Bearer <token>``; browsers carry the
``cv_session`` cookie set by ``POST /api/v1/session``. Both tokens are
256-bit random strings of which only the SHA-256 is stored (they are not
guessable, so a slow hash adds nothing). A cookie-authenticated request with
an unsafe method must also carry the session's CSRF token (header
``X-CSRF-Token``, or form field ``csrf_token`` for HTML form posts); bearer
tokens are not sent by browsers on their own and need none. An API token
counts until it is revoked or its ``expires_at`` passes; neither a token nor a
session of a deactivated user (``User.active`` false) is accepted.

The tenant is resolved here, once per request, and every repository call takes
it explicitly. Role checks are dependencies in ``roles`` (``AdminTenant``,
``OperatorOnly``, ...) so that no route copies an owner check.

For the pages (server-rendered portal):

- ``optional_principal(request, session=None)``: the principal or None when
  nobody is logged in (no, unknown or expired cookie). It does *not* check
  CSRF: a page handling a POST compares the submitted token with
  ``session_csrf(request)`` (or uses the ``CurrentPrincipal`` dependency,
  which does).
- ``session_csrf(request, session=None)``: the CSRF token of the request's
  portal session, None without one.
- ``OptionalPrincipal``: ``optional_principal`` as a FastAPI dependency.

``revoke_credentials`` ends an account's portal sessions and revokes its API
tokens (password change, deactivation).

The CSRF field is read from url-encoded forms only; multipart bodies never
get here (``app`` answers them 415: no route takes one).

The current time comes from ``now(request)``: ``app.state.clock`` when set
(tests move it), else the wall clock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast
from urllib.parse import parse_qs

from fastapi import Depends, Path, Request
from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from callvault.db.models import ApiToken, Operator, Tenant, User, WebSession
from callvault.errors import ErrorId, Forbidden, NotFound, Unauthorized

Role = Literal["operator", "admin", "listener", "user"]
MAX_ID = 2**31 - 1  # integer keys are 32-bit in PostgreSQL; larger ids cannot exist
DbId = Annotated[int, Path(ge=1, le=MAX_ID)]
SESSION_COOKIE = "cv_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_FORM_BYTES = 1 << 20


@dataclass(frozen=True)
class Principal:
    role: Role
    name: str
    tenant_id: int | None = None  # None for operators
    user_id: int | None = None
    operator_id: int | None = None
    language: str = "nl"  # the user's, else the tenant's, else nl; operators en
    session_id: int | None = None  # the WebSession row when logged in by cookie

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def actor(self) -> str:
        return f"operator:{self.operator_id}" if self.is_operator else f"user:{self.user_id}"


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def now(request: Request) -> datetime:
    clock = cast("Callable[[], datetime] | None", getattr(request.app.state, "clock", None))
    return as_utc(clock()) if clock is not None else datetime.now(UTC)


Now = Annotated[datetime, Depends(now)]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_token(
    session: Session,
    name: str,
    *,
    operator_id: int | None = None,
    user: User | None = None,
    expires_at: datetime | None = None,
    created_by: str | None = None,
) -> tuple[str, ApiToken]:
    """A new API token (shown once) and its row (flushed: the id is set)."""
    token = "cv_" + secrets.token_urlsafe(32)
    row = ApiToken(
        token_hash=hash_token(token),
        name=name[:200],
        operator_id=operator_id,
        tenant_id=user.tenant_id if user else None,
        user_id=user.id if user else None,
        expires_at=expires_at,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return token, row


def issue_token(
    session: Session,
    name: str,
    *,
    operator_id: int | None = None,
    user: User | None = None,
    expires_at: datetime | None = None,
    created_by: str | None = None,
) -> str:
    token, _row = issue_api_token(
        session,
        name,
        operator_id=operator_id,
        user=user,
        expires_at=expires_at,
        created_by=created_by,
    )
    return token


def token_active(row: ApiToken, at: datetime) -> bool:
    return not row.revoked and (row.expires_at is None or as_utc(row.expires_at) > at)


def _rowcount(result: Any) -> int:
    return cast("CursorResult[Any]", result).rowcount


def revoke_credentials(
    session: Session,
    at: datetime,
    *,
    user_id: int | None = None,
    operator_id: int | None = None,
    keep_session_id: int | None = None,
) -> tuple[int, int]:
    """End the account's portal sessions (but ``keep_session_id``) and revoke its API tokens.

    Returns (sessions ended, tokens revoked); the caller audits and commits.
    """
    if (user_id is None) == (operator_id is None):
        raise ValueError("name exactly one account")
    sessions = delete(WebSession).where(
        WebSession.user_id == user_id
        if user_id is not None
        else WebSession.operator_id == operator_id
    )
    if keep_session_id is not None:
        sessions = sessions.where(WebSession.id != keep_session_id)
    ended = _rowcount(session.execute(sessions.execution_options(synchronize_session=False)))
    owner = (
        ApiToken.user_id == user_id if user_id is not None else ApiToken.operator_id == operator_id
    )
    revoked = _rowcount(
        session.execute(
            update(ApiToken)
            .where(owner, ApiToken.revoked.is_(False))
            .values(revoked=True, revoked_at=at)
            .execution_options(synchronize_session=False)
        )
    )
    return ended, revoked


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.context.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def operator_principal(operator: Operator, session_id: int | None = None) -> Principal:
    return Principal(
        "operator", operator.name, operator_id=operator.id, language="en", session_id=session_id
    )


def user_principal(session: Session, user: User, session_id: int | None = None) -> Principal:
    """The principal of a tenant's user; 403 ``tenant-suspended`` for a suspended tenant.

    401 ``auth-invalid`` for a deactivated user.
    """
    if not user.active:
        raise Unauthorized("the account is deactivated", error_id=ErrorId.AUTH_INVALID)
    tenant = session.get(Tenant, user.tenant_id)
    if tenant is None or tenant.suspended:
        raise Forbidden("this tenant is suspended", error_id=ErrorId.TENANT_SUSPENDED)
    role = cast(Role, user.role if user.role in ("admin", "listener", "user") else "user")
    return Principal(
        role,
        user.name,
        tenant_id=user.tenant_id,
        user_id=user.id,
        language=user.language or tenant.language or "nl",
        session_id=session_id,
    )


def _bearer_principal(session: Session, header: str, at: datetime) -> Principal:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or len(token) > 200:
        raise Unauthorized("a bearer token is required", error_id=ErrorId.AUTH_REQUIRED)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token.strip())))
    if row is None or not token_active(row, at):
        raise Unauthorized("the token is not valid", error_id=ErrorId.AUTH_INVALID)
    if row.operator_id is not None:
        operator = session.get(Operator, row.operator_id)
        if operator is None:
            raise Unauthorized("the token is not valid", error_id=ErrorId.AUTH_INVALID)
        return operator_principal(operator)
    user = session.get(User, row.user_id) if row.user_id is not None else None
    if user is None:
        raise Unauthorized("the token is not valid", error_id=ErrorId.AUTH_INVALID)
    return user_principal(session, user)


def web_session_for(request: Request, session: Session, at: datetime) -> WebSession | None:
    """The live portal session behind the request's cookie, if any."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 200:
        return None
    row = session.scalar(select(WebSession).where(WebSession.token_hash == hash_token(token)))
    if row is None or as_utc(row.expires_at) <= at:
        return None
    return row


def _cookie_principal(session: Session, row: WebSession) -> Principal | None:
    if row.operator_id is not None:
        operator = session.get(Operator, row.operator_id)
        return operator_principal(operator, row.id) if operator is not None else None
    user = session.get(User, row.user_id) if row.user_id is not None else None
    if user is None or not user.active:
        return None  # as if the session had ended
    return user_principal(session, user, row.id)


async def submitted_csrf(request: Request) -> str | None:
    """The CSRF token the client sent: the header, else (form posts only) the form field."""
    if request.method in SAFE_METHODS:
        return None
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if SESSION_COOKIE not in request.cookies:
        return None
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        # parsed here so that plain HTML forms work without python-multipart
        body = await request.body()
        if len(body) > _MAX_FORM_BYTES:
            return None
        values = parse_qs(body.decode("latin-1"), max_num_fields=1000).get(CSRF_FORM_FIELD)
        return values[0] if values else None
    return None


SubmittedCsrf = Annotated[str | None, Depends(submitted_csrf)]


def csrf_ok(expected: str | None, submitted: str | None) -> bool:
    return bool(
        expected and submitted and hmac.compare_digest(expected.encode(), submitted.encode())
    )


def current_principal(
    request: Request, session: SessionDep, at: Now, csrf: SubmittedCsrf
) -> Principal:
    header = request.headers.get("authorization")
    if header is not None:
        return _bearer_principal(session, header, at)
    if SESSION_COOKIE not in request.cookies:
        raise Unauthorized("log in or send a bearer token", error_id=ErrorId.AUTH_REQUIRED)
    row = web_session_for(request, session, at)
    principal = _cookie_principal(session, row) if row is not None else None
    if row is None or principal is None:
        raise Unauthorized("the session has ended; log in again", error_id=ErrorId.SESSION_EXPIRED)
    if request.method not in SAFE_METHODS and not csrf_ok(row.csrf_token, csrf):
        raise Forbidden(
            f"this request needs the session's CSRF token in the {CSRF_HEADER} header",
            error_id=ErrorId.CSRF_FAILED,
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


@contextmanager
def _db(request: Request, session: Session | None) -> Iterator[Session]:
    if session is not None:
        yield session
    else:
        with request.app.state.context.sessions() as own:
            yield own


def optional_principal(request: Request, session: Session | None = None) -> Principal | None:
    """The logged-in principal (cookie or bearer), or None; no CSRF check (see module doc).

    Raises 403 ``tenant-suspended`` for a user of a suspended tenant.
    """
    with _db(request, session) as db:
        header = request.headers.get("authorization")
        if header is not None:
            try:
                return _bearer_principal(db, header, now(request))
            except Unauthorized:
                return None
        row = web_session_for(request, db, now(request))
        return _cookie_principal(db, row) if row is not None else None


def session_csrf(request: Request, session: Session | None = None) -> str | None:
    """The CSRF token of the request's live portal session; None without one."""
    with _db(request, session) as db:
        row = web_session_for(request, db, now(request))
        return row.csrf_token if row is not None else None


def _optional_principal_dep(request: Request, session: SessionDep) -> Principal | None:
    return optional_principal(request, session)


OptionalPrincipal = Annotated[Principal | None, Depends(_optional_principal_dep)]


def tenant_scope(tenant_id: DbId, principal: CurrentPrincipal, session: SessionDep) -> Tenant:
    """The tenant named in the path, if this principal may see it; else 404."""
    if not principal.is_operator and principal.tenant_id != tenant_id:
        raise NotFound("no such tenant", error_id=ErrorId.TENANT_NOT_FOUND)
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", error_id=ErrorId.TENANT_NOT_FOUND)
    return tenant


TenantScope = Annotated[Tenant, Depends(tenant_scope)]
