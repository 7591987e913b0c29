"""Administrative actions shared by the CLI and the demo.

Tenants and users are created by ``tenants.service`` (the API's path too);
``create_tenant`` and ``create_user`` are named here as well because tests
and benches seed with them from this module.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from callvault.db.models import Operator, Tenant, User
from callvault.portal.auth import issue_token
from callvault.portal.passwords import hash_password, normalise_login
from callvault.tenants.enablement import Feature, set_feature
from callvault.tenants.legal import NOTICE_VERSION, accept_notice
from callvault.tenants.service import create_tenant, create_user

__all__ = [
    "LoginTaken",
    "accept_legal_notice",
    "bootstrap_operator",
    "create_tenant",
    "create_user",
    "enable_feature",
]


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


def enable_feature(
    session: Session,
    tenant: Tenant,
    feature: Feature = "recording",
    *,
    reference: str = "seed",
    actor: str = "cli",
) -> None:
    """What the operator's switch does (used by the CLI, the demo and tests)."""
    set_feature(session, tenant.id, feature, True, actor=actor, reference=reference)


def accept_legal_notice(session: Session, tenant: Tenant, admin: User, purpose: str = "") -> None:
    """What the admin's click in Settings › Recording stores (used by the demo and tests).

    Like the click, it needs recording enabled by the operator first.
    """
    accept_notice(
        session,
        tenant.id,
        admin,
        NOTICE_VERSION,
        purpose or "quality monitoring and training of our service desk",
    )
