"""Administrative actions shared by the CLI and the demo."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.db.models import (
    LegalAcceptance,
    Operator,
    Tenant,
    TenantDomain,
    TenantNumber,
    User,
    UserAor,
    UserNumber,
)
from callvault.portal.auth import issue_token
from callvault.portal.passwords import hash_password, normalise_login
from callvault.tenants.legal import NOTICE_VERSION
from callvault.tenants.numbers import normalise_aor, normalise_number


class LoginTaken(ValueError):
    """The login name belongs to another account."""


def bootstrap_operator(
    session: Session,
    name: str = "operator",
    *,
    login: str | None = None,
    password: str | None = None,
) -> tuple[Operator, str | None]:
    """Create the operator once; return it and a fresh token only when it was created.

    With ``login`` and ``password`` the operator's portal login is set (again),
    so running bootstrap twice is harmless. Raises ``InvalidInput`` for a short
    password and ``LoginTaken`` when a user has that login.
    """
    operator = session.scalar(select(Operator).order_by(Operator.id).limit(1))
    token = None
    if operator is None:
        operator = Operator(name=name)
        session.add(operator)
        session.flush()
        token = issue_token(session, "bootstrap", operator_id=operator.id)
    if login is not None and password is not None:
        normalised = normalise_login(login)
        if session.scalar(select(User.id).where(User.login == normalised)) is not None:
            raise LoginTaken(f"the login {normalised!r} belongs to a user")
        operator.login, operator.password_hash = normalised, hash_password(password)
    session.commit()
    return operator, token


def create_tenant(
    session: Session, name: str, domains: list[str], numbers: list[str], country_code: str = "31"
) -> Tenant:
    tenant = Tenant(name=name, country_code=country_code)
    tenant.domains = [TenantDomain(domain=d.lower()) for d in domains]
    tenant.numbers = [TenantNumber(number=normalise_number(n)) for n in numbers]
    session.add(tenant)
    session.flush()
    return tenant


def create_user(
    session: Session,
    tenant: Tenant,
    name: str,
    *,
    extension: str | None = None,
    numbers: list[str] = (),  # type: ignore[assignment]
    aors: list[str] = (),  # type: ignore[assignment]
    role: str = "user",
    recorded: bool = False,
    mode: str = "on_demand_user",
) -> User:
    user = User(
        tenant_id=tenant.id,
        name=name,
        extension=extension,
        role=role,
        recorded=recorded,
        recording_mode=mode,
    )
    user.numbers = [UserNumber(tenant_id=tenant.id, number=normalise_number(n)) for n in numbers]
    user.aors = [UserAor(tenant_id=tenant.id, aor=normalise_aor(a)) for a in aors]
    session.add(user)
    session.flush()
    return user


def accept_legal_notice(session: Session, tenant: Tenant, admin: User, purpose: str = "") -> None:
    """What the admin's click in Settings › Recording does (used by the demo and tests)."""
    session.add(
        LegalAcceptance(
            tenant_id=tenant.id,
            user_id=admin.id,
            actor=f"{admin.name} (user:{admin.id})",
            text_version=NOTICE_VERSION,
            purpose=purpose or "quality monitoring and training of our service desk",
        )
    )
    session.flush()
