"""Creating tenants and users: the one path for the API, the users CSV, the CLI and the demo.

Every caller gets the same checks (``claims``: no domain, number or block of
another tenant; a user's AORs and numbers inside the tenant; a free
extension), the same normalisation (idempotent, so input the API validated
already passes unchanged) and, for a concurrent writer that took a value
between the check and the flush, the same 409. Audit rows are the caller's:
the API writes them with its request, the CLI and the demo have none.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callvault.db.models import Operator, Tenant, User
from callvault.errors import Conflict, ErrorId
from callvault.portal.passwords import hash_password, normalise_login
from callvault.tenants.claims import (
    check_extension_free,
    normalise_block,
    set_tenant_claims,
    set_user_addresses,
)
from callvault.tenants.numbers import normalise_aor, normalise_number


def create_tenant(
    session: Session,
    name: str,
    domains: Sequence[str] = (),
    numbers: Sequence[str] = (),
    country_code: str = "31",
    *,
    blocks: Sequence[str] = (),
    timezone: str | None = None,
) -> Tenant:
    """A tenant with its domains, numbers and blocks (flushed, not committed).

    ``ClaimOverlap`` (409 ``tenant-exists``) when another tenant has one of them.
    """
    tenant = Tenant(name=name, country_code=country_code)
    if timezone is not None:
        tenant.timezone = timezone
    set_tenant_claims(
        session,
        tenant,
        domains=[d.lower() for d in domains],
        numbers=[normalise_number(n) for n in numbers],
        blocks=[normalise_block(b) for b in blocks],
    )
    session.add(tenant)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent writer took the name or a claim
        raise Conflict(
            "a tenant with this name, domain or number exists", error_id=ErrorId.TENANT_EXISTS
        ) from exc
    return tenant


def new_user(
    session: Session,
    tenant: Tenant,
    name: str,
    *,
    extension: str | None = None,
    numbers: Sequence[str] = (),
    aors: Sequence[str] = (),
    role: str = "user",
    email: str | None = None,
    recorded: bool = False,
    mode: str | None = None,
) -> User:
    """A user of ``tenant``, added to the session but not flushed (the users CSV adds
    many in one go); its AORs and numbers must lie in the tenant's (``OutsideTenant``),
    its extension must be free (``AddressTaken``)."""
    user = User(
        tenant_id=tenant.id,
        name=name,
        extension=extension,
        role=role,
        email=email,
        recorded=recorded,
    )
    if mode is not None:
        user.recording_mode = mode
    if extension:
        check_extension_free(session, tenant, user, extension)
    set_user_addresses(
        session,
        tenant,
        user,
        aors=[normalise_aor(a) for a in aors],
        numbers=[normalise_number(n) for n in numbers],
    )
    session.add(user)
    return user


def create_user(
    session: Session,
    tenant: Tenant,
    name: str,
    *,
    extension: str | None = None,
    numbers: Sequence[str] = (),
    aors: Sequence[str] = (),
    role: str = "user",
    email: str | None = None,
    recorded: bool = False,
    mode: str | None = "on_demand_user",
    login: str | None = None,
    password: str | None = None,
) -> User:
    """``new_user``, flushed; with ``login`` and ``password`` also its portal login.

    409 ``user-exists`` when a concurrent request of the same tenant took a value.
    """
    user = new_user(
        session,
        tenant,
        name,
        extension=extension,
        numbers=numbers,
        aors=aors,
        role=role,
        email=email,
        recorded=recorded,
        mode=mode,
    )
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "the extension, a number or an AOR was taken meanwhile; try again",
            error_id=ErrorId.USER_EXISTS,
        ) from exc
    if login is not None and password is not None:
        set_credentials(session, user, login, password)
    return user


def login_unavailable() -> Conflict:
    # logins are unique across tenants: the answer must not tell whose it is
    return Conflict("this login cannot be used; choose another", error_id=ErrorId.LOGIN_UNAVAILABLE)


def set_credentials(session: Session, user: User, login: str, password: str) -> str | None:
    """Sets the user's portal login and password hash; returns the old login.

    ``InvalidInput`` for a password too short or long, 409 ``login-unavailable``
    when an operator or another user has the login. Ending the user's sessions
    and tokens is the caller's (``auth.revoke_credentials``).
    """
    normalised = normalise_login(login)
    password_hash = hash_password(password)
    taken = session.scalar(select(Operator.id).where(Operator.login == normalised)) is not None or (
        session.scalar(select(User.id).where(User.login == normalised, User.id != user.id))
        is not None
    )
    if taken:
        raise login_unavailable()
    old_login, user.login, user.password_hash = user.login, normalised, password_hash
    return old_login
