"""Portal login sessions, password change and the caller's own account (``/me``).

``POST /session`` checks a login and password and sets the ``cv_session``
cookie (HttpOnly, Secure, SameSite=Lax, 12 hours); the answer carries the CSRF
token that cookie-authenticated unsafe requests must echo (see ``auth``).
An unknown login, a wrong password, a deactivated user and a user of a
suspended tenant all get the same 401 ``login-failed`` in about the same time
(so the answer tells nothing about the account). Every attempt is counted
before the password is checked, per (login, address) and per address, with
exponential backoff (``passwords.begin_attempt``); failures are audited, in
the tenant when the login is a user's, tenant-less otherwise.

A password change ends every other portal session of the account and
revokes all of its API tokens.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from callvault.db.models import Operator, Tenant, User, WebSession
from callvault.errors import ErrorId, Forbidden, Unauthorized
from callvault.portal.api.schemas import Strict
from callvault.portal.audit import audit, record, remote_addr
from callvault.portal.auth import (
    SESSION_COOKIE,
    CurrentPrincipal,
    Now,
    Principal,
    SessionDep,
    hash_token,
    operator_principal,
    revoke_credentials,
    user_principal,
)
from callvault.portal.passwords import (
    LoginThrottled,
    attempt_succeeded,
    begin_attempt,
    check_new_password,
    hash_password,
    normalise_login,
    verify_password,
)
from callvault.portal.roles import TenantMember

router = APIRouter(prefix="/api/v1", tags=["account"])

SESSION_LIFETIME = timedelta(hours=12)
Language = Literal["nl", "de", "en"]


class LoginIn(Strict):
    login: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(BaseModel):
    role: str
    name: str
    tenant_id: int | None
    user_id: int | None
    csrf_token: str | None = Field(description="echo in X-CSRF-Token; null for bearer tokens")
    language: str


class PasswordChangeIn(Strict):
    old: str = Field(min_length=1, max_length=1024)
    new: str = Field(min_length=1, max_length=1024)


class MeOut(BaseModel):
    role: str
    name: str
    login: str | None
    tenant_id: int | None
    tenant_name: str | None
    user_id: int | None
    language: str = Field(description="the language the portal uses for this account")
    own_language: str | None = Field(description="the user's own choice; null: the tenant's")
    playback_email: bool = Field(
        default=False, description="Playback: also asked by e-mail after each call"
    )


class MeIn(Strict):
    """Only the fields sent change (``language: null`` follows the tenant's again)."""

    language: Language | None = Field(
        default=None, description="null: follow the tenant's language; absent: unchanged"
    )
    playback_email: bool | None = Field(
        default=None, description="Playback: also ask by e-mail after each call; absent: unchanged"
    )


def _session_out(principal: Principal, csrf_token: str | None) -> SessionOut:
    return SessionOut(
        role=principal.role,
        name=principal.name,
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        csrf_token=csrf_token,
        language=principal.language,
    )


def _refusal(session: Session, user: User | None) -> str | None:
    """Why a right password of this user still may not log in (for the audit log only)."""
    if user is None:
        return None
    if not user.active:
        return "inactive"
    tenant = session.get(Tenant, user.tenant_id)
    return "tenant-suspended" if tenant is None or tenant.suspended else None


@router.post("/session", response_model=SessionOut)
def log_in(
    body: LoginIn, request: Request, response: Response, session: SessionDep, at: Now
) -> SessionOut:
    login = normalise_login(body.login)
    address = remote_addr(request)
    try:
        begin_attempt(session, login, address, at)
    except LoginThrottled:
        record(session, request, f"login:{login}", "login.throttled", None)
        session.commit()
        raise
    operator = session.scalar(select(Operator).where(Operator.login == login))
    user = None if operator else session.scalar(select(User).where(User.login == login))
    stored = operator.password_hash if operator else (user.password_hash if user else None)
    verified = verify_password(stored, body.password)
    tenant_id = user.tenant_id if user else None
    refused = _refusal(session, user) if verified.ok else None
    if not verified.ok or refused:
        details = {"refused": refused} if refused else {}
        record(session, request, f"login:{login}", "login.failed", tenant_id, **details)
        session.commit()
        # the same answer for every reason: a login cannot be probed for its state
        raise Unauthorized("the login or the password is wrong", error_id=ErrorId.LOGIN_FAILED)
    if operator is not None:
        principal = operator_principal(operator)
        if verified.new_hash:
            operator.password_hash = verified.new_hash
    else:
        assert user is not None
        principal = user_principal(session, user)
        if verified.new_hash:
            user.password_hash = verified.new_hash
    attempt_succeeded(session, login, address)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=hash_token(token),
            csrf_token=csrf,
            operator_id=operator.id if operator else None,
            user_id=user.id if user else None,
            tenant_id=tenant_id,
            created_at=at,
            expires_at=at + SESSION_LIFETIME,
            remote_addr=address,
        )
    )
    audit(session, request, principal, "login.success", tenant_id)
    session.commit()
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
    )
    return _session_out(principal, csrf)


@router.get("/session", response_model=SessionOut)
def who_am_i(principal: CurrentPrincipal, session: SessionDep) -> SessionOut:
    row = session.get(WebSession, principal.session_id) if principal.session_id else None
    return _session_out(principal, row.csrf_token if row else None)


@router.delete("/session", status_code=204)
def log_out(principal: CurrentPrincipal, session: SessionDep, request: Request) -> Response:
    """Ends the cookie session (a bearer token has none: nothing to end)."""
    if principal.session_id is not None:
        session.execute(delete(WebSession).where(WebSession.id == principal.session_id))
        audit(session, request, principal, "logout", principal.tenant_id)
        session.commit()
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


def _account(session: Session, principal: Principal) -> Operator | User:
    account: Operator | User | None
    if principal.is_operator:
        account = session.get(Operator, principal.operator_id)
    else:
        account = session.get(User, principal.user_id)
    if account is None:
        raise Unauthorized("the account is gone", error_id=ErrorId.AUTH_INVALID)
    return account


@router.post("/session/password", status_code=204)
def change_password(
    body: PasswordChangeIn,
    principal: CurrentPrincipal,
    session: SessionDep,
    request: Request,
    at: Now,
) -> Response:
    """Needs the old password; ends every other session and revokes every API token."""
    account = _account(session, principal)
    login = account.login or principal.actor()
    address = remote_addr(request)
    session.commit()  # begin_attempt commits: nothing of this request may be pending
    begin_attempt(session, login, address, at)
    if not verify_password(account.password_hash, body.old).ok:
        audit(session, request, principal, "password.change-failed", principal.tenant_id)
        session.commit()
        raise Forbidden("the old password is wrong", error_id=ErrorId.PASSWORD_WRONG)
    check_new_password(body.new)
    account.password_hash = hash_password(body.new)
    attempt_succeeded(session, login, address)
    ended, revoked = revoke_credentials(
        session,
        at,
        operator_id=account.id if isinstance(account, Operator) else None,
        user_id=account.id if isinstance(account, User) else None,
        keep_session_id=principal.session_id,
    )
    audit(
        session,
        request,
        principal,
        "password.change",
        principal.tenant_id,
        sessions_ended=ended,
        tokens_revoked=revoked,
    )
    session.commit()
    return Response(status_code=204)


def _me(session: Session, principal: Principal) -> MeOut:
    account = _account(session, principal)
    tenant = session.get(Tenant, principal.tenant_id) if principal.tenant_id else None
    return MeOut(
        role=principal.role,
        name=principal.name,
        login=account.login,
        tenant_id=principal.tenant_id,
        tenant_name=tenant.name if tenant else None,
        user_id=principal.user_id,
        language=principal.language,
        own_language=account.language if isinstance(account, User) else None,
        playback_email=account.playback_email if isinstance(account, User) else False,
    )


@router.get("/me", response_model=MeOut)
def get_me(principal: CurrentPrincipal, session: SessionDep) -> MeOut:
    return _me(session, principal)


@router.patch("/me", response_model=MeOut)
def change_me(body: MeIn, principal: TenantMember, session: SessionDep, request: Request) -> MeOut:
    """A user's own portal language and Playback's e-mail choice; the operator's is English."""
    user = _account(session, principal)
    assert isinstance(user, User)
    sent = body.model_fields_set
    if "language" in sent:
        old, user.language = user.language, body.language
        audit(
            session,
            request,
            principal,
            "user.language",
            principal.tenant_id,
            target=f"user:{user.id}",
            old=old,
            new=body.language,
        )
    if "playback_email" in sent and body.playback_email is not None:
        was, user.playback_email = user.playback_email, body.playback_email
        audit(
            session,
            request,
            principal,
            "user.playback_email",
            principal.tenant_id,
            target=f"user:{user.id}",
            old=was,
            new=body.playback_email,
        )
    session.commit()
    return _me(session, user_principal(session, user, principal.session_id))
